package interop_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/net/http2"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy/httpproxy"
	"github.com/weftmesh/weft/internal/proxy/listener"
	"github.com/weftmesh/weft/internal/translate"
)

const issuer = "https://issuer.weft.test"

// authzPolicies are the policies of the adversarial test, for the
// workload app=httpbin listening on PORT and forwarding to BACKEND.
const authzPolicies = `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: httpbin, namespace: default}
spec:
  workloadSelector: {labels: {app: httpbin}}
  ingress:
  - port: {number: PORT, protocol: HTTP, name: http}
    captureMode: NONE
    bind: 127.0.0.1
    defaultEndpoint: BACKEND
---
# Plain text: the test client is not a mesh workload.
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: plaintext, namespace: default}
spec:
  selector: {matchLabels: {app: httpbin}}
  mtls: {mode: DISABLE}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  selector: {matchLabels: {app: httpbin}}
  jwtRules:
  - issuer: ISSUER
    audiences: [weft-test]
    jwks: 'JWKS'
    outputClaimToHeaders: [{header: x-jwt-sub, claim: sub}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-secret, namespace: default}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/public/secret", "/public/secret/*"]}}]
  - to: [{operation: {hosts: ["evil.weft.test"]}}]
  - when: [{key: "request.headers[x-block]", values: ["yes"]}]
  - to: [{operation: {methods: ["DELETE"], paths: ["/public/*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mesh-deny, namespace: istio-system}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: ["*.php"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: default}
spec:
  selector: {matchLabels: {app: httpbin}}
  rules:
  - to: [{operation: {paths: ["/public", "/public/*"]}}]
  - to: [{operation: {methods: ["GET"], paths: ["/api/*"]}}]
  - to: [{operation: {hosts: ["allowed.weft.test"], paths: ["/host/*"]}}]
  - from: [{source: {requestPrincipals: ["ISSUER/*"]}}]
    to: [{operation: {paths: ["/private/*"]}}]
  - to: [{operation: {paths: ["/claims/*"]}}]
    when: [{key: "request.auth.claims[groups]", values: ["admins"]}]
  - to: [{operation: {paths: ["/nested/*"]}}]
    when: [{key: "request.auth.claims[org][team]", values: ["blue"]}]
`

// recorder is the backend: it records what reaches it, and the proxy's
// observer: it records the response flags of each request.
type recorder struct {
	mu    sync.Mutex
	seen  []*http.Request
	flags []string // response flags and details, "flags|details"
}

func (rc *recorder) Observe(i *httpproxy.Info) {
	rc.mu.Lock()
	rc.flags = append(rc.flags, i.Flags+"|"+i.Details)
	rc.mu.Unlock()
}

func (rc *recorder) takeFlags() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	f := rc.flags
	rc.flags = nil
	return f
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	rc.seen = append(rc.seen, r)
	rc.mu.Unlock()
	io.WriteString(w, "backend")
}

func (rc *recorder) take() []*http.Request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	s := rc.seen
	rc.seen = nil
	return s
}

// signer makes test tokens.
type signer struct {
	key  *ecdsa.PrivateKey
	jwks string
}

func newSigner(t *testing.T) *signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ks := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}
	b, _ := json.Marshal(ks)
	return &signer{key: k, jwks: string(b)}
}

func (s *signer) sign(t *testing.T, claims map[string]any) string {
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: s.key}, (&jose.SignerOptions{}).WithHeader("kid", "k1").WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	obj, err := sg.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func claims(mod func(m map[string]any)) map[string]any {
	now := time.Now().Unix()
	m := map[string]any{"iss": issuer, "sub": "alice", "aud": "weft-test", "exp": now + 600, "nbf": now - 10, "groups": []string{"admins"}}
	if mod != nil {
		mod(m)
	}
	return m
}

// meshProxy starts weft-proxy's listeners compiled from the translated
// configuration of the httpbin workload, in front of a recording backend.
func meshProxy(t *testing.T, normalization string, s *signer) (addr string, rec *recorder) {
	rec = &recorder{}
	backend := httptest.NewServer(rec)
	t.Cleanup(backend.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	yaml := strings.NewReplacer("PORT", strconv.Itoa(port), "BACKEND", backend.Listener.Addr().String(), "ISSUER", issuer, "JWKS", s.jwks).Replace(authzPolicies)
	proxy := &model.Proxy{Type: model.ProxySidecar, Namespace: "default", Labels: map[string]string{"app": "httpbin"}, IPs: []string{"127.0.0.1"},
		Metadata: map[string]string{translate.MetadataInterceptionMode: "NONE", translate.MetadataPathNormalization: normalization}}
	res := translateYAML(t, "authz.yaml", yaml, proxy)
	if len(res.Diagnostics) > 0 {
		t.Fatalf("diagnostics: %v", res.Diagnostics)
	}
	m, ls := serveListeners(t, res, listener.Deps{Observer: rec}, "127.0.0.1_"+strconv.Itoa(port))
	return m.Addr(ls[0].Addr), rec
}

// rawRequest sends bytes as they are and reads one response.
func rawRequest(t *testing.T, addr, raw string) (int, string) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err.Error() // connection closed: nothing was served
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// adversarialCase is one request and what must happen to it. upstream is
// the path the backend must see when the request is allowed ("" for
// denied requests, which must never reach it).
type adversarialCase struct {
	name   string
	target string
	method string
	host   string
	header string // extra raw header lines
	status int
	// upstream is the request target the backend must receive; base
	// overrides status/upstream under BASE normalization when set.
	upstream   string
	baseStatus int
	baseUp     string
}

// TestAdversarialAuthorization sends request variants that try to get
// past DENY and ALLOW policies through real weft-proxy listeners compiled
// from translated configuration, under DECODE_AND_MERGE_SLASHES and under
// Istio's default BASE normalization. Every request that must be denied
// is denied and never reaches the backend; allowed requests reach it with
// exactly the normalized path that was authorized.
func TestAdversarialAuthorization(t *testing.T) {
	s := newSigner(t)
	other := newSigner(t)
	valid := s.sign(t, claims(nil))
	now := time.Now().Unix()
	b64 := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	parts := strings.Split(valid, ".")
	algNone := b64(map[string]string{"alg": "none", "typ": "JWT"}) + "." + parts[1] + "."
	tampered := parts[0] + "." + b64(claims(func(m map[string]any) { m["sub"] = "mallory" })) + "." + parts[2]
	hs := func() string { // HS256 with the public JWKS as secret (key confusion)
		sg, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(s.jwks)}, nil)
		b, _ := json.Marshal(claims(nil))
		o, _ := sg.Sign(b)
		c, _ := o.CompactSerialize()
		return c
	}()
	bearer := func(tok string) string { return "Authorization: Bearer " + tok + "\r\n" }
	tok := func(mod func(m map[string]any)) string { return s.sign(t, claims(mod)) }

	cases := []adversarialCase{
		// Plain allow and deny.
		{name: "allowed", target: "/public/x", status: 200, upstream: "/public/x"},
		{name: "not allowed", target: "/other", status: 403},
		{name: "denied exact", target: "/public/secret", status: 403},
		{name: "denied prefix", target: "/public/secret/x", status: 403},
		// Dot segments and their encodings.
		{name: "dot", target: "/public/./secret/x", status: 403},
		{name: "dotdot", target: "/public/x/../secret/x", status: 403},
		{name: "dotdot above root", target: "/../../public/secret/x", status: 403},
		{name: "encoded dotdot", target: "/public/x/%2E%2E/secret/x", status: 403},
		{name: "encoded dotdot lower", target: "/public/x/%2e%2e/secret/x", status: 403},
		{name: "encoded dot", target: "/public/%2e/secret/x", status: 403},
		{name: "dotdot escaping allowed prefix", target: "/public/../other", status: 403},
		{name: "normalized upstream", target: "/public/a/./b/../c", status: 200, upstream: "/public/a/c"},
		// Encoded unreserved characters.
		{name: "encoded letter", target: "/public/%73ecret/x", status: 403},
		{name: "encoded letters in allowed prefix", target: "/%70ublic/x", status: 200, upstream: "/public/x"},
		// Encoded slashes and backslashes: decoded by DECODE_AND_MERGE_SLASHES;
		// under BASE kept as they are, for RBAC and the upstream alike.
		{name: "%2F", target: "/public/secret%2Fx", status: 403, baseStatus: 200, baseUp: "/public/secret%2Fx"},
		{name: "%2f", target: "/public%2fsecret%2fx", status: 403},
		{name: "%2F on allowed prefix", target: "/public%2Fx", status: 200, upstream: "/public/x", baseStatus: 403},
		{name: "%5C", target: "/public/secret%5Cx", status: 403, baseStatus: 200, baseUp: "/public/secret%5Cx"},
		{name: "encoded dotdot slash", target: "/public/x/..%2Fsecret/x", status: 403, baseStatus: 200, baseUp: "/public/x/..%2Fsecret/x"},
		{name: "double-encoded slash", target: "/public/secret%252Fx", status: 200, upstream: "/public/secret%252Fx"},
		{name: "backslash", target: "/public\\secret\\x", status: 403},
		{name: "backslash dotdot", target: "/public/x\\..\\secret/x", status: 403},
		// Slashes.
		{name: "double slash", target: "/public//secret/x", status: 403, baseStatus: 200, baseUp: "/public//secret/x"},
		{name: "leading double slash", target: "//public/secret/x", status: 403},
		{name: "trailing slash", target: "/public/secret/", status: 403},
		// Case: policies are case-sensitive, as the upstream path is.
		{name: "upper case allowed prefix", target: "/PUBLIC/x", status: 403},
		{name: "upper case denied segment", target: "/public/SECRET/x", status: 200, upstream: "/public/SECRET/x"},
		{name: "upper case method", target: "/api/x", method: "get", status: 403},
		// Path parameters, query and fragments.
		{name: "path parameter", target: "/public/secret;a=b/x", status: 403},
		{name: "path parameter last", target: "/public/secret;jsessionid=1", status: 403},
		{name: "query", target: "/public/secret?x=/public/y", status: 403},
		{name: "query allowed", target: "/public/x?next=/public/secret", status: 200, upstream: "/public/x?next=/public/secret"},
		{name: "fragment", target: "/public/x#/../secret", status: 400},
		{name: "suffix deny", target: "/public/index.php", status: 403},
		{name: "suffix deny with parameter", target: "/public/index.php;x", status: 403},
		// Absolute-form targets.
		{name: "absolute form", target: "http://h.weft.test/public/secret/x", status: 403},
		{name: "absolute form dotdot", target: "http://h.weft.test/public/x/../secret", status: 403},
		{name: "absolute form allowed", target: "http://h.weft.test/public/x", status: 200, upstream: "/public/x"},
		// Hosts.
		{name: "denied host", target: "/public/x", host: "evil.weft.test", status: 403},
		{name: "denied host trailing dot", target: "/public/x", host: "evil.weft.test.", status: 403},
		{name: "denied host with port", target: "/public/x", host: "EVIL.weft.test:8080", status: 403},
		{name: "denied host dot and port", target: "/public/x", host: "evil.weft.test.:80", status: 403},
		{name: "allowed host", target: "/host/x", host: "allowed.weft.test", status: 200, upstream: "/host/x"},
		{name: "allowed host upper case", target: "/host/x", host: "ALLOWED.weft.test", status: 200, upstream: "/host/x"},
		{name: "allowed host other", target: "/host/x", host: "other.weft.test", status: 403},
		// Headers.
		{name: "denied header", target: "/public/x", header: "X-Block: yes\r\n", status: 403},
		{name: "denied header odd case", target: "/public/x", header: "x-bLoCk: yes\r\n", status: 403},
		{name: "denied header repeated", target: "/public/x", header: "X-Block: no\r\nX-Block: yes\r\n", status: 403},
		{name: "denied header in list", target: "/public/x", header: "X-Block: no, yes\r\n", status: 403},
		{name: "header other value", target: "/public/x", header: "X-Block: no\r\n", status: 200, upstream: "/public/x"},
		// Methods.
		{name: "method allowed", target: "/api/x", status: 200, upstream: "/api/x"},
		{name: "method not allowed", target: "/api/x", method: "POST", status: 403},
		{name: "method denied", target: "/public/x", method: "DELETE", status: 403},
		// JWT.
		{name: "jwt missing", target: "/private/x", status: 403},
		{name: "jwt valid", target: "/private/x", header: bearer(valid), status: 200, upstream: "/private/x"},
		{name: "jwt in query", target: "/private/x?access_token=" + valid, status: 200, upstream: "/private/x?access_token=" + valid},
		{name: "jwt alg none", target: "/private/x", header: bearer(algNone), status: 401},
		{name: "jwt HS256 key confusion", target: "/private/x", header: bearer(hs), status: 401},
		{name: "jwt wrong key", target: "/private/x", header: bearer(other.sign(t, claims(nil))), status: 401},
		{name: "jwt expired", target: "/private/x", header: bearer(tok(func(m map[string]any) { m["exp"] = now - 3600 })), status: 401},
		{name: "jwt expired within skew", target: "/private/x", header: bearer(tok(func(m map[string]any) { m["exp"] = now - 20 })), status: 200, upstream: "/private/x"},
		{name: "jwt not yet valid", target: "/private/x", header: bearer(tok(func(m map[string]any) { m["nbf"] = now + 3600 })), status: 401},
		{name: "jwt wrong audience", target: "/private/x", header: bearer(tok(func(m map[string]any) { m["aud"] = "other" })), status: 401},
		{name: "jwt wrong issuer", target: "/private/x", header: bearer(tok(func(m map[string]any) { m["iss"] = "https://evil.test" })), status: 401},
		{name: "jwt tampered payload", target: "/private/x", header: bearer(tampered), status: 401},
		{name: "jwt garbage", target: "/private/x", header: bearer("a.b.c"), status: 401},
		{name: "jwt invalid on open path", target: "/public/x", header: bearer(tampered), status: 401},
		{name: "jwt invalid in query", target: "/public/x?access_token=" + tampered, status: 401},
		{name: "jwt valid and invalid", target: "/private/x", header: bearer(valid) + bearer(tampered), status: 401},
		{name: "jwt in other header", target: "/private/x", header: "X-Token: " + valid + "\r\n", status: 403},
		{name: "jwt claim allowed", target: "/claims/x", header: bearer(valid), status: 200, upstream: "/claims/x"},
		{name: "jwt claim not allowed", target: "/claims/x", header: bearer(tok(func(m map[string]any) { m["groups"] = []string{"users"} })), status: 403},
		{name: "jwt string claim", target: "/claims/x", header: bearer(tok(func(m map[string]any) { m["groups"] = "admins" })), status: 200, upstream: "/claims/x"},
		{name: "jwt nested claim", target: "/nested/x", header: bearer(tok(func(m map[string]any) { m["org"] = map[string]any{"team": "blue"} })), status: 200, upstream: "/nested/x"},
		{name: "jwt nested claim other", target: "/nested/x", header: bearer(tok(func(m map[string]any) { m["org"] = map[string]any{"team": "red"} })), status: 403},
		{name: "jwt claims without token", target: "/claims/x", status: 403},
	}
	if len(cases) < 40 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, mode := range []string{"DECODE_AND_MERGE_SLASHES", "BASE"} {
		t.Run(mode, func(t *testing.T) {
			addr, rec := meshProxy(t, mode, s)
			bypasses := 0
			for _, c := range cases {
				status, upPath := c.status, c.upstream
				if mode == "BASE" && c.baseStatus != 0 {
					status, upPath = c.baseStatus, c.baseUp
				}
				method, host := c.method, c.host
				if method == "" {
					method = "GET"
				}
				if host == "" {
					host = "h.weft.test"
				}
				raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n", method, c.target, host, c.header)
				got, body := rawRequest(t, addr, raw)
				seen := rec.take()
				flags := rec.takeFlags()
				// Envoy sets no response flag for RBAC and JWT denials, only
				// response code details.
				switch {
				case got == 403 && (len(flags) != 1 || !strings.HasPrefix(flags[0], "|rbac_access_denied_matched_policy[")):
					t.Errorf("%s: 403 logged as %q, want no flag and rbac_access_denied_matched_policy[...]", c.name, flags)
				case got == 401 && (len(flags) != 1 || !strings.HasPrefix(flags[0], "|jwt_authn_access_denied{")):
					t.Errorf("%s: 401 logged as %q, want no flag and jwt_authn_access_denied{...}", c.name, flags)
				}
				if status != 200 {
					if len(seen) > 0 {
						bypasses++
						t.Errorf("BYPASS %s: %q reached the backend as %q (status %d)", c.name, c.target, seen[0].RequestURI, got)
					}
					if got != status && !(got >= 400 && got < 500 && status >= 400) {
						t.Errorf("%s: %q: status %d (%q), want %d", c.name, c.target, got, body, status)
					}
					continue
				}
				if got != 200 || len(seen) != 1 {
					t.Errorf("%s: %q: status %d (%q), %d backend requests; want 200 and 1", c.name, c.target, got, body, len(seen))
					continue
				}
				if seen[0].RequestURI != upPath {
					t.Errorf("%s: backend saw %q, want %q", c.name, seen[0].RequestURI, upPath)
				}
				if a := seen[0].Header.Get("Authorization"); a != "" {
					t.Errorf("%s: the token was forwarded (forwardOriginalToken is false)", c.name)
				}
				if strings.HasPrefix(c.name, "jwt valid") && seen[0].Header.Get("X-Jwt-Sub") != "alice" {
					t.Errorf("%s: outputClaimToHeaders: x-jwt-sub = %q, want alice", c.name, seen[0].Header.Get("X-Jwt-Sub"))
				}
			}
			if bypasses > 0 {
				t.Errorf("%d bypasses", bypasses)
			}
			t.Logf("%s: %d request variants", mode, len(cases))
		})
	}
}

// TestAdversarialAuthorizationH2C repeats path variants over HTTP/2 with
// prior knowledge, where the request target is the :path pseudo-header.
func TestAdversarialAuthorizationH2C(t *testing.T) {
	s := newSigner(t)
	addr, rec := meshProxy(t, "DECODE_AND_MERGE_SLASHES", s)
	client := &http.Client{Transport: &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, a string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}}
	for _, c := range []struct {
		path   string
		status int
		up     string
	}{
		{"/public/x", 200, "/public/x"},
		{"/public/./secret/x", 403, ""},
		{"/public/x/../secret", 403, ""},
		{"/public/secret%2Fx", 403, ""},
		{"/public//secret/x", 403, ""},
		{"/public/%73ecret", 403, ""},
		{"/public/secret;a/x", 403, ""},
		{"/public/a/../b", 200, "/public/b"},
	} {
		req, _ := http.NewRequest("GET", "http://h.weft.test/", nil)
		req.URL.Opaque = "//h.weft.test" + c.path // keep the path as is
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		seen := rec.take()
		rec.takeFlags()
		if resp.StatusCode != c.status || resp.ProtoMajor != 2 {
			t.Errorf("%s: %s %d, want HTTP/2 %d", c.path, resp.Proto, resp.StatusCode, c.status)
		}
		switch {
		case c.status != 200 && len(seen) > 0:
			t.Errorf("BYPASS %s reached the backend as %s", c.path, seen[0].RequestURI)
		case c.status == 200 && (len(seen) != 1 || seen[0].RequestURI != c.up):
			t.Errorf("%s: backend saw %v, want %s", c.path, seen, c.up)
		}
	}
}

// TestAdversarialPipelining sends an allowed and a denied request on one
// connection, and odd request forms: each request is authorized on its
// own.
func TestAdversarialPipelining(t *testing.T) {
	s := newSigner(t)
	addr, rec := meshProxy(t, "BASE", s)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /public/x HTTP/1.1\r\nHost: h\r\n\r\nGET /public/secret/x HTTP/1.1\r\nHost: h\r\n\r\nGET /public/./secret HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	br := bufio.NewReader(c)
	var codes []int
	for i := 0; i < 3; i++ {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	seen := rec.take()
	if fmt.Sprint(codes) != "[200 403 403]" || len(seen) != 1 || seen[0].RequestURI != "/public/x" {
		t.Errorf("pipelined: statuses %v, backend saw %d requests", codes, len(seen))
	}
	for _, raw := range []string{
		"GET /public/secret/x HTTP/1.0\r\n\r\n",
		"GET /public/secret/x HTTP/1.1\r\nHost: h\r\nContent-Length: 26\r\n\r\nGET /public/x HTTP/1.1\r\n\r\n",
		"POST /public/secret/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1a\r\nGET /public/x HTTP/1.1\r\n\r\n\r\n0\r\n\r\n",
	} {
		got, body := rawRequest(t, addr, raw)
		if n := len(rec.take()); n > 0 || got < 400 {
			t.Errorf("BYPASS %q: status %d (%q), %d backend requests", raw, got, body, n)
		}
	}
	// Go's server answers OPTIONS * itself; it must not reach the backend.
	rawRequest(t, addr, "OPTIONS * HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	if n := len(rec.take()); n > 0 {
		t.Errorf("OPTIONS * reached the backend")
	}
}
