package jwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/weftmesh/weft/internal/proxy/httpproxy"
	"github.com/weftmesh/weft/internal/proxy/upstream"
	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

const iss = "https://issuer.test"

type key struct {
	priv crypto.Signer
	alg  jose.SignatureAlgorithm
	kid  string
}

func newKey(t *testing.T, alg jose.SignatureAlgorithm, kid string) key {
	var k crypto.Signer
	var err error
	switch alg {
	case jose.RS256, jose.PS256:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, k, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	return key{priv: k, alg: alg, kid: kid}
}

func jwks(keys ...key) string {
	var ks jose.JSONWebKeySet
	for _, k := range keys {
		ks.Keys = append(ks.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"})
	}
	b, _ := json.Marshal(ks)
	return string(b)
}

func (k key) sign(t *testing.T, claims map[string]any) string {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv}, (&jose.SignerOptions{}).WithHeader("kid", k.kid))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	o, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := o.CompactSerialize()
	return c
}

func std(mod func(map[string]any)) map[string]any {
	m := map[string]any{"iss": iss, "sub": "bob", "aud": []string{"a1", "a2"}, "exp": time.Now().Unix() + 300, "azp": "cli",
		"org": map[string]any{"team": "blue"}}
	if mod != nil {
		mod(m)
	}
	return m
}

func filter(t *testing.T, p *jwtv3.JwtProvider) *Filter {
	t.Helper()
	f, err := Compile("jwt", &jwtv3.JwtAuthentication{
		Providers: map[string]*jwtv3.JwtProvider{"p": p},
		Rules: []*jwtv3.RequirementRule{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			RequirementType: &jwtv3.RequirementRule_Requires{Requires: &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{
				RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: []*jwtv3.JwtRequirement{
					{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "p"}},
					{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}},
				}}}}}}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func local(js string) *jwtv3.JwtProvider_LocalJwks {
	return &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: js}}}
}

func run(f *Filter, tok string) (*httpproxy.LocalReply, *httpproxy.FilterState, *http.Request) {
	r := httptest.NewRequest("GET", "/x", nil)
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	st := &httpproxy.FilterState{}
	return f.Decode(r, st), st, r
}

func TestAlgorithms(t *testing.T) {
	for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.EdDSA} {
		k := newKey(t, alg, "k-"+string(alg))
		f := filter(t, &jwtv3.JwtProvider{Issuer: iss, Audiences: []string{"a2"}, JwksSourceSpecifier: local(jwks(k)), ForwardPayloadHeader: "x-payload"})
		lr, st, r := run(f, k.sign(t, std(nil)))
		if lr != nil {
			t.Errorf("%s: %d %s", alg, lr.Status, lr.Body)
			continue
		}
		md := st.Metadata[IstioAuthnName]
		if md["request.auth.principal"] != iss+"/bob" || md["request.auth.presenter"] != "cli" {
			t.Errorf("%s: metadata %v", alg, md)
		}
		team := md["request.auth.claims"].(map[string]any)["org"].(map[string]any)["team"]
		if l, _ := team.([]any); len(l) != 1 || l[0] != "blue" {
			t.Errorf("%s: nested claim %v", alg, team)
		}
		if r.Header.Get("Authorization") != "" {
			t.Errorf("%s: token forwarded", alg)
		}
		if p, err := decodePayload(r.Header.Get("x-payload")); err != nil || p["sub"] != "bob" {
			t.Errorf("%s: payload header %v %v", alg, p, err)
		}
	}
}

func TestFailures(t *testing.T) {
	k := newKey(t, jose.ES256, "k1")
	f := filter(t, &jwtv3.JwtProvider{Issuer: iss, Audiences: []string{"a1"}, JwksSourceSpecifier: local(jwks(k))})
	now := time.Now().Unix()
	valid := k.sign(t, std(nil))
	parts := strings.Split(valid, ".")
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	for name, c := range map[string]struct {
		tok  string
		want Status
	}{
		"none":          {enc(map[string]string{"alg": "none"}) + "." + parts[1] + ".", StatusBadAlg},
		"expired":       {k.sign(t, std(func(m map[string]any) { m["exp"] = now - 120 })), StatusExpired},
		"not yet":       {k.sign(t, std(func(m map[string]any) { m["nbf"] = now + 120 })), StatusNotYetValid},
		"audience":      {k.sign(t, std(func(m map[string]any) { m["aud"] = "zz" })), StatusAudience},
		"issuer":        {k.sign(t, std(func(m map[string]any) { m["iss"] = "x" })), StatusUnknownIssuer},
		"wrong key":     {newKey(t, jose.ES256, "k1").sign(t, std(nil)), StatusVerificationFail},
		"unknown kid":   {newKey(t, jose.ES256, "k2").sign(t, std(nil)), StatusNoKey},
		"tampered":      {parts[0] + "." + enc(std(func(m map[string]any) { m["sub"] = "eve" })) + "." + parts[2], StatusVerificationFail},
		"two dots only": {"abc", StatusBadFormat},
		"bad exp type":  {k.sign(t, std(func(m map[string]any) { m["exp"] = "soon" })), StatusBadJSON},
	} {
		lr, _, _ := run(f, c.tok)
		if lr == nil || lr.Status != 401 || lr.Body != string(c.want) {
			t.Errorf("%s: %+v, want 401 %q", name, lr, c.want)
		}
	}
	if lr, st, _ := run(f, ""); lr != nil || st.Metadata != nil {
		t.Errorf("missing token: %+v %v", lr, st.Metadata)
	}
}

// TestRemoteJWKS fetches keys from a JWKS URI, caches them for the cache
// duration, refreshes after it (key rotation) and fails closed when the
// first fetch fails.
func TestRemoteJWKS(t *testing.T) {
	k1, k2 := newKey(t, jose.RS256, "r1"), newKey(t, jose.RS256, "r2")
	var current atomic.Value
	current.Store(jwks(k1))
	var fetches atomic.Int32
	fail := atomic.Bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if fail.Load() {
			http.Error(w, "down", 500)
			return
		}
		w.Write([]byte(current.Load().(string)))
	}))
	defer srv.Close()
	remote := &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: &jwtv3.RemoteJwks{
		HttpUri:       &corev3.HttpUri{Uri: srv.URL + "/jwks", HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "outbound|80||jwks"}, Timeout: durationpb.New(time.Second)},
		CacheDuration: durationpb.New(time.Minute)}}
	f := filter(t, &jwtv3.JwtProvider{Issuer: iss, JwksSourceSpecifier: remote})
	clock := time.Now()
	f.Now = func() time.Time { return clock }
	for i := 0; i < 3; i++ {
		if lr, _, _ := run(f, k1.sign(t, std(nil))); lr != nil {
			t.Fatalf("k1: %+v", lr)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d fetches for three requests within the cache duration", n)
	}
	current.Store(jwks(k2))
	if lr, _, _ := run(f, k2.sign(t, std(nil))); lr == nil {
		t.Error("rotated key accepted before the cache expired")
	}
	clock = clock.Add(2 * time.Minute)
	if lr, _, _ := run(f, k2.sign(t, std(nil))); lr != nil {
		t.Errorf("rotated key after refresh: %+v", lr)
	}
	fail.Store(true)
	clock = clock.Add(2 * time.Minute)
	if lr, _, _ := run(f, k2.sign(t, std(nil))); lr != nil {
		t.Errorf("a failed refresh dropped the cached keys: %+v", lr)
	}
	g := filter(t, &jwtv3.JwtProvider{Issuer: iss, JwksSourceSpecifier: remote})
	if lr, _, _ := run(g, k1.sign(t, std(nil))); lr == nil || lr.Body != string(StatusJwksFetchFail) {
		t.Errorf("first fetch failing: %+v", lr)
	}
}

func TestLocations(t *testing.T) {
	k := newKey(t, jose.ES256, "k")
	f := filter(t, &jwtv3.JwtProvider{Issuer: iss, JwksSourceSpecifier: local(jwks(k)), Forward: true,
		FromHeaders: []*jwtv3.JwtHeader{{Name: "x-jwt", ValuePrefix: "Tok "}}, FromParams: []string{"t"}})
	tok := k.sign(t, std(nil))
	r := httptest.NewRequest("GET", "/x", nil)
	r.Header.Set("x-jwt", "Tok "+tok)
	st := &httpproxy.FilterState{}
	if lr := f.Decode(r, st); lr != nil || st.Metadata == nil || r.Header.Get("x-jwt") == "" {
		t.Errorf("custom header: %+v %v forwarded=%q", lr, st.Metadata, r.Header.Get("x-jwt"))
	}
	r = httptest.NewRequest("GET", "/x?t="+tok, nil)
	st = &httpproxy.FilterState{}
	if lr := f.Decode(r, st); lr != nil || st.Metadata == nil {
		t.Errorf("param: %+v", lr)
	}
	r = httptest.NewRequest("GET", "/x", nil)
	r.Header.Set("Authorization", "Bearer garbage")
	if lr := f.Decode(r, &httpproxy.FilterState{}); lr != nil {
		t.Errorf("a token outside the configured locations was checked: %+v", lr)
	}
}

// decodePayload returns the claims of a token's payload segment.
func decodePayload(seg string) (map[string]any, error) {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

type clusterSet struct{ set *upstream.Set }

func (c clusterSet) Cluster(name string) *upstream.Cluster { return c.set.Get(name) }

// TestRemoteJWKSThroughCluster fetches keys through the http_uri cluster
// when the proxy has it: the URI's host need not resolve.
func TestRemoteJWKSThroughCluster(t *testing.T) {
	k := newKey(t, jose.ES256, "c1")
	var host atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host.Store(r.Host)
		w.Write([]byte(jwks(k)))
	}))
	defer srv.Close()
	set, commit, err := upstream.Build(map[string]*clusterv3.Cluster{"outbound|80||jwks.mesh.invalid": xdstest.StaticCluster("outbound|80||jwks.mesh.invalid", srv.Listener.Addr().String())}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	commit()
	f, err := Compile("jwt", &jwtv3.JwtAuthentication{
		Providers: map[string]*jwtv3.JwtProvider{"p": {Issuer: iss, JwksSourceSpecifier: &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: &jwtv3.RemoteJwks{
			HttpUri: &corev3.HttpUri{Uri: "http://jwks.mesh.invalid/keys", HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "outbound|80||jwks.mesh.invalid"},
				Timeout: durationpb.New(2 * time.Second)}}}}},
		Rules: []*jwtv3.RequirementRule{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			RequirementType: &jwtv3.RequirementRule_Requires{Requires: &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "p"}}}}},
	}, clusterSet{set})
	if err != nil {
		t.Fatal(err)
	}
	if lr, _, _ := run(f, k.sign(t, std(nil))); lr != nil {
		t.Fatalf("token: %+v", lr)
	}
	if h, _ := host.Load().(string); h != "jwks.mesh.invalid" {
		t.Errorf("JWKS request Host %q, want the URI's", h)
	}
	if lr, _, _ := run(f, ""); lr == nil || lr.Body != string(StatusMissing) {
		t.Errorf("required provider without token: %+v", lr)
	}
}
