// Package mtls holds end-to-end tests of automatic mesh mTLS: weftd with
// its CA (internal/weftd, in process), two weft-proxy sidecars (client and
// server, in process, each with a workload identity obtained from weftd
// with a bootstrap token) and a real backend, all on loopback addresses.
// Nothing in the TLS path is mocked.
package mtls

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weftmesh/weft/internal/cli"
	"github.com/weftmesh/weft/internal/proxy"
	"github.com/weftmesh/weft/internal/proxy/bootstrap"
	"github.com/weftmesh/weft/internal/proxy/upstream"
	"github.com/weftmesh/weft/internal/weftd"
)

const (
	clientID = "spiffe://cluster.local/ns/default/sa/productpage"
	serverID = "spiffe://cluster.local/ns/default/sa/reviews"
	svcHost  = "reviews.default.svc.cluster.local"
	svcPort  = 9080
	appPort  = 19080
)

// mesh is one running test mesh.
type mesh struct {
	t         testing.TB
	weftd     *weftd.Server
	admin     string // weftd admin host:port
	clientIP  string
	serverIP  string
	gatewayIP string
	dir       string
	client    *proxy.Proxy
	server    *proxy.Proxy
	backend   *backend
	forwarder *http.Client // the client application: HTTP_PROXY = client sidecar
}

// backend is the server application: it answers with the
// x-forwarded-client-cert it received and logs the client identity.
type backend struct {
	t        testing.TB
	requests atomic.Int64
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.requests.Add(1)
	xfcc := r.Header.Get("X-Forwarded-Client-Cert")
	if r.URL.Path == "/log" {
		b.t.Logf("backend: request from %s, client identity %q (x-forwarded-client-cert %q)", r.RemoteAddr, xfccURI(xfcc), xfcc)
	}
	io.WriteString(w, xfcc)
}

// xfccURI returns the URI field of the last element of an XFCC header.
func xfccURI(h string) string {
	elems := strings.Split(h, ",")
	for _, kv := range strings.Split(elems[len(elems)-1], ";") {
		if v, ok := strings.CutPrefix(kv, "URI="); ok {
			return v
		}
	}
	return ""
}

const meshYAML = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec:
  address: {{SERVER}}
  serviceAccount: reviews
  labels: {app: reviews, version: v1, security.istio.io/tlsMode: istio}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: reviews, namespace: default}
spec:
  workloadSelector: {labels: {app: reviews}}
  ingress:
  - port: {number: 9080, name: http, protocol: HTTP}
    bind: {{SERVER}}
    captureMode: NONE
    defaultEndpoint: 0.0.0.0:19080
  - port: {number: 9081, name: http2, protocol: HTTP2}
    bind: {{SERVER}}
    captureMode: NONE
    defaultEndpoint: 0.0.0.0:19081
  - port: {number: 9000, name: tcp, protocol: TCP}
    bind: {{SERVER}}
    captureMode: NONE
    defaultEndpoint: 0.0.0.0:19000
  - port: {number: 9082, name: web}
    bind: {{SERVER}}
    captureMode: NONE
    defaultEndpoint: 0.0.0.0:19080
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews-h2, namespace: default}
spec:
  hosts: [reviews-h2.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9081, name: http2, protocol: HTTP2}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews-tcp, namespace: default}
spec:
  hosts: [reviews-tcp.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews-auto, namespace: default}
spec:
  hosts: [reviews-auto.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9082, name: web}]
  workloadSelector: {labels: {app: reviews}}
`

// startMesh starts weftd (CA workload certificates living ttl), the
// backend and both sidecars, and waits until a request crosses the mesh.
// extraYAML is added to weftd's configuration directory.
func startMesh(t testing.TB, ttl time.Duration, extraYAML string) *mesh {
	return startMeshWith(t, ttl, func(string) string { return extraYAML })
}

// startMeshWith is startMesh with extra configuration that may name the
// gateway's address.
func startMeshWith(t testing.TB, ttl time.Duration, extra func(gatewayIP string) string) *mesh {
	t.Helper()
	return startMeshOpts(t, ttl, extra, true)
}

// startMeshWithoutServer starts everything but the server sidecar, which
// the caller runs (and waits for).
func startMeshWithoutServer(t testing.TB) *mesh {
	t.Helper()
	return startMeshOpts(t, time.Hour, func(string) string { return "" }, false)
}

func startMeshOpts(t testing.TB, ttl time.Duration, extra func(gatewayIP string) string, withServer bool) *mesh {
	t.Helper()
	block := 100 + rand.IntN(100)
	m := &mesh{t: t, clientIP: fmt.Sprintf("127.0.%d.1", block), serverIP: fmt.Sprintf("127.0.%d.2", block), gatewayIP: fmt.Sprintf("127.0.%d.3", block)}
	extraYAML := extra(m.gatewayIP)

	dir := t.TempDir()
	m.dir = dir
	confDir := filepath.Join(dir, "config")
	os.MkdirAll(confDir, 0o755)
	yaml := strings.ReplaceAll(meshYAML, "{{SERVER}}", m.serverIP)
	if err := os.WriteFile(filepath.Join(confDir, "mesh.yaml"), []byte(yaml+extraYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := weftd.DefaultConfig()
	cfg.ConfigDir = confDir
	cfg.ListenAddress, cfg.AdminPort, cfg.XDSPort, cfg.SecureXDSPort = "127.0.0.1", 0, 0, 0
	cfg.CA.Dir = filepath.Join(dir, "ca")
	cfg.CA.WorkloadTTL = weftd.Duration(ttl)
	cfg.Debounce, cfg.MaxDebounce = weftd.Duration(20*time.Millisecond), weftd.Duration(200*time.Millisecond)
	s, err := weftd.New(cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	m.weftd, m.admin = s, s.AdminAddr()

	m.backend = &backend{t: t}
	ln, err := net.Listen("tcp", net.JoinHostPort(m.serverIP, fmt.Sprint(appPort)))
	if err != nil {
		t.Skipf("cannot listen on loopback address %s: %v", m.serverIP, err)
	}
	hs := &http.Server{Handler: m.backend}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })

	if withServer {
		m.server = m.startProxyAs("sidecar", "default", "reviews", "reviews-v1", m.serverIP, map[string]string{"app": "reviews", "version": "v1"}, "")
	}
	fwd := net.JoinHostPort(m.clientIP, "15080")
	m.client = m.startProxyAs("sidecar", "default", "productpage", "productpage-v1", m.clientIP, map[string]string{"app": "productpage", "version": "v1"}, fwd)
	m.forwarder = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: fwd}), MaxIdleConnsPerHost: 16,
	}}
	if withServer {
		m.eventually("a request through the mesh succeeds", func() error {
			_, err := m.get("/")
			return err
		})
	}
	return m
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startProxy runs a sidecar for service account sa with an identity from
// weftd: a bootstrap token from the admin API, the root bundle fetched
// from the admin API (ca.rootURL), certificates over the CA's TLS port.
func (m *mesh) startProxyAs(kind, ns, sa, workload, ip string, labels map[string]string, forward string, opts ...func(*bootstrap.Config)) *proxy.Proxy {
	t := m.t
	t.Helper()
	dir := m.dir
	resp, err := http.Post("http://"+m.admin+"/api/v1/tokens?namespace="+ns+"&serviceAccount="+sa, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ Identity, Token string }
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	tokenFile := filepath.Join(dir, sa+".token")
	if err := os.WriteFile(tokenFile, []byte(tok.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := bootstrap.Default()
	cfg.XDSAddress = m.weftd.XDSAddr()
	cfg.AdminAddress, cfg.ReadyAddress, cfg.StatsAddress = "127.0.0.1:0", "", "127.0.0.1:0"
	cfg.ForwardProxyAddress = forward
	cfg.Node = bootstrap.Node{
		ID:      fmt.Sprintf("%s~%s~%s.%s~%s.svc.cluster.local", kind, ip, workload, ns, ns),
		Cluster: "Kubernetes", Namespace: ns, Workload: workload, Labels: labels, ServiceAccount: sa,
		InstanceIPs: []string{ip}, Metadata: map[string]string{"INTERCEPTION_MODE": "NONE"},
	}
	cfg.CA = bootstrap.CA{Address: m.weftd.SecureAddr(), ServerName: "localhost", RootURL: "http://" + m.admin + "/api/v1/ca/root", TokenFile: tokenFile}
	for _, o := range opts {
		o(&cfg)
	}
	p, err := proxy.New(cfg, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return p
}

// get sends a request as the client application (through its sidecar).
func (m *mesh) get(path string) (string, error) {
	resp, err := m.forwarder.Get(fmt.Sprintf("http://%s:%d%s", svcHost, svcPort, path))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return string(b), nil
}

// plainGet sends a plaintext request straight to the server sidecar,
// bypassing the mesh (no client certificate), with a forged XFCC header.
func (m *mesh) plainGet() (int, string, error) {
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s:%d/plain", m.serverIP, svcPort), nil)
	req.Header.Set("X-Forwarded-Client-Cert", "By=spiffe://evil;URI=spiffe://cluster.local/ns/default/sa/admin")
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func (m *mesh) eventually(what string, f func() error) {
	m.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	m.t.Fatalf("timed out waiting until %s: %v", what, err)
}

func (m *mesh) apply(yaml string) {
	m.t.Helper()
	resp, err := http.Post("http://"+m.admin+"/api/v1/apply", "application/yaml", strings.NewReader(yaml))
	if err != nil {
		m.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		m.t.Fatalf("apply: %d %s", resp.StatusCode, b)
	}
}

// metrics returns the server sidecar's Prometheus text.
func metrics(t *testing.T, p *proxy.Proxy) string {
	t.Helper()
	resp, err := http.Get("http://" + p.Addr("stats") + "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// secretSerial returns the serial and SPIFFE ID of the "default" secret
// in the proxy's /config_dump, checking that its private key is redacted.
func secretSerial(t *testing.T, p *proxy.Proxy) (serial, id string) {
	t.Helper()
	resp, err := http.Get("http://" + p.Addr("admin") + "/config_dump")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	dump := &adminv3.ConfigDump{}
	if err := protojson.Unmarshal(b, dump); err != nil {
		t.Fatalf("config_dump: %v", err)
	}
	for _, a := range dump.Configs {
		sd := &adminv3.SecretsConfigDump{}
		if a.UnmarshalTo(sd) != nil {
			continue
		}
		for _, ds := range sd.DynamicActiveSecrets {
			sec := &tlsv3.Secret{}
			if err := ds.Secret.UnmarshalTo(sec); err != nil {
				t.Fatal(err)
			}
			tc := sec.GetTlsCertificate()
			if tc == nil {
				continue
			}
			if k := tc.GetPrivateKey(); k.GetInlineString() != "[redacted]" || len(k.GetInlineBytes()) > 0 {
				t.Fatalf("config_dump shows the private key: %v", k)
			}
			if strings.Contains(string(b), "PRIVATE KEY") {
				t.Fatal("config_dump contains a PEM private key")
			}
			blk, _ := pem.Decode(tc.GetCertificateChain().GetInlineBytes())
			if blk == nil {
				t.Fatal("config_dump: default secret without certificate chain")
			}
			cert, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if len(cert.URIs) == 1 {
				id = cert.URIs[0].String()
			}
			return ds.VersionInfo, id
		}
	}
	t.Fatalf("config_dump has no SDS secret \"default\":\n%s", b)
	return "", ""
}

// TestMeshTrafficIsMutualTLS: client sidecar → server sidecar is mTLS
// with the right identities: the backend sees the client's SPIFFE ID in
// x-forwarded-client-cert (added by the server sidecar, which verified
// it), the server's metrics say mutual_tls with the source principal, and
// both proxies show their identity (not their key) in /config_dump.
func TestMeshTrafficIsMutualTLS(t *testing.T) {
	m := startMesh(t, time.Hour, "")
	body, err := m.get("/log")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, "By="+serverID+";") || xfccURI(body) != clientID {
		t.Fatalf("backend got x-forwarded-client-cert %q; want By=%s and URI=%s", body, serverID, clientID)
	}
	text := metrics(t, m.server)
	want := []string{`reporter="destination"`, `source_principal="` + clientID + `"`, `destination_principal="` + serverID + `"`, `connection_security_policy="mutual_tls"`, `response_code="200"`}
	found := false
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "istio_requests_total{") {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(line, w)
		}
		found = found || ok
	}
	if !found {
		t.Fatalf("server sidecar has no istio_requests_total with %v:\n%s", want, text)
	}
	// The client side reads destination_principal from the server's
	// certificate, as Istio does.
	if ct := metrics(t, m.client); !hasSeries(ct, "istio_requests_total{", `reporter="source"`, `destination_principal="`+serverID+`"`, `response_code="200"`) {
		t.Errorf("client sidecar has no istio_requests_total with reporter=source, destination_principal=%s:\n%s", serverID, ct)
	}
	if _, id := secretSerial(t, m.server); id != serverID {
		t.Errorf("server config_dump identity = %q, want %s", id, serverID)
	}
	if _, id := secretSerial(t, m.client); id != clientID {
		t.Errorf("client config_dump identity = %q, want %s", id, clientID)
	}
	// The server sidecar's mTLS chain wants a mesh certificate: a TLS
	// client offering Istio's ALPN without one is refused.
	conn, err := tls.Dial("tcp", net.JoinHostPort(m.serverIP, fmt.Sprint(svcPort)), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"istio-peer-exchange", "istio", "http/1.1"}}) //nolint:gosec // test client
	if err == nil {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if err == nil {
			_, err = bufio.NewReader(conn).ReadByte()
		}
		conn.Close()
	}
	if err == nil {
		t.Error("a TLS client without a certificate got an answer from the mTLS chain")
	}
}

// TestPlaintextStrictAndPermissive: a plaintext client straight to the
// server sidecar is accepted under PERMISSIVE (Istio's default), without
// the x-forwarded-client-cert it forged, and rejected once a namespace
// PeerAuthentication says STRICT, while mesh traffic continues.
func TestPlaintextStrictAndPermissive(t *testing.T) {
	m := startMesh(t, time.Hour, "")
	code, body, err := m.plainGet()
	if err != nil || code != http.StatusOK {
		t.Fatalf("plaintext under PERMISSIVE: %d %q %v; want 200", code, body, err)
	}
	if body != "" {
		t.Errorf("plaintext request reached the backend with x-forwarded-client-cert %q; it must be removed", body)
	}
	// A plain-text keep-alive connection opened under PERMISSIVE.
	keep := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	keepURL := fmt.Sprintf("http://%s:%d/keepalive", m.serverIP, svcPort)
	if resp, err := keep.Get(keepURL); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("keep-alive plaintext request under PERMISSIVE: %v", err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	m.apply(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
`)
	m.eventually("plaintext is rejected under STRICT", func() error {
		if code, _, err := m.plainGet(); err == nil {
			return fmt.Errorf("plaintext request answered %d", code)
		}
		return nil
	})
	for i := 0; i < 3; i++ {
		if code, _, err := m.plainGet(); err == nil {
			t.Fatalf("plaintext request under STRICT answered %d", code)
		}
	}
	before := m.backend.requests.Load()
	if resp, err := keep.Get(keepURL); err == nil {
		resp.Body.Close()
		t.Errorf("a plaintext keep-alive connection from before STRICT still got %d", resp.StatusCode)
	}
	if n := m.backend.requests.Load() - before; n != 0 {
		t.Errorf("%d plaintext requests reached the backend under STRICT", n)
	}
	body, err = m.get("/log")
	if err != nil {
		t.Fatalf("mesh request under STRICT: %v", err)
	}
	if xfccURI(body) != clientID {
		t.Errorf("mesh request under STRICT: backend saw client %q, want %s", xfccURI(body), clientID)
	}

	m.apply(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: PERMISSIVE}
`)
	m.eventually("plaintext is accepted again under PERMISSIVE", func() error {
		code, _, err := m.plainGet()
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("status %d", code)
		}
		return nil
	})
}

// TestRotationUnderLoadFailsNoRequest: with 3 s workload certificates
// both sidecars rotate several times during steady load; every request
// opens a new mTLS connection (maxRequestsPerConnection: 1), so
// handshakes use the rotated certificates; not one request may fail.
func TestRotationUnderLoadFailsNoRequest(t *testing.T) {
	if testing.Short() {
		t.Skip("rotation under load takes ~10 s")
	}
	m := startMesh(t, 3*time.Second, `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy:
    connectionPool:
      http: {maxRequestsPerConnection: 1}
`)
	serverSerial0, _ := secretSerial(t, m.server)
	clientSerial0, _ := secretSerial(t, m.client)
	serials := map[string]bool{serverSerial0: true}

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				body, err := m.get("/")
				switch {
				case err != nil:
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				case xfccURI(body) != clientID:
					failed.Add(1)
					firstErr.CompareAndSwap(nil, "backend saw client "+xfccURI(body))
				default:
					ok.Add(1)
				}
			}
		}()
	}
	for ctx.Err() == nil {
		s, _ := secretSerial(t, m.server)
		serials[s] = true
		time.Sleep(250 * time.Millisecond)
	}
	wg.Wait()
	clientSerial1, _ := secretSerial(t, m.client)
	t.Logf("requests: %d ok, %d failed; server certificates seen: %d; backend requests %d", ok.Load(), failed.Load(), len(serials), m.backend.requests.Load())
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed during rotation; first: %v", failed.Load(), ok.Load()+failed.Load(), firstErr.Load())
	}
	if ok.Load() < 50 {
		t.Errorf("only %d requests succeeded: the load was not steady", ok.Load())
	}
	if len(serials) < 3 {
		t.Errorf("server sidecar used %d certificates in 9 s with a 3 s TTL; want at least 3 (rotations)", len(serials))
	}
	// Each request was its own mTLS connection, so handshakes ran
	// throughout the rotations.
	if cl := m.client.Cluster("outbound|9080||" + svcHost); cl == nil || int64(cl.Stats.CxTotal.Load()) < ok.Load() {
		t.Errorf("client sidecar opened fewer upstream connections than requests: maxRequestsPerConnection 1 not in effect")
	} else {
		t.Logf("client sidecar: %d upstream mTLS connections", cl.Stats.CxTotal.Load())
	}
	if clientSerial1 == clientSerial0 {
		t.Errorf("client sidecar's certificate did not rotate (serial %s)", clientSerial0)
	}
}

// TestProxyConfigSecretReadsTheProxy: `weft proxy-config secret PROXY
// --proxy-admin ADDR` shows the proxy's own certificate and bundle.
func TestProxyConfigSecretReadsTheProxy(t *testing.T) {
	m := startMesh(t, time.Hour, "")
	var out, errb bytes.Buffer
	code := cli.Run(context.Background(), &cli.Env{In: strings.NewReader(""), Out: &out, Err: &errb},
		[]string{"proxy-config", "secret", "productpage-v1.default", "--proxy-admin", m.client.Addr("admin")})
	if code != 0 {
		t.Fatalf("weft proxy-config secret: exit %d: %s", code, errb.String())
	}
	t.Logf("weft proxy-config secret --proxy-admin:\n%s", out.String())
	var sawDefault, sawRoot bool
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "default" {
			sawDefault = strings.Contains(line, "Cert Chain") && strings.Contains(line, clientID)
		}
		if len(f) > 0 && f[0] == "ROOTCA" {
			sawRoot = strings.Contains(line, "CA")
		}
	}
	if !sawDefault || !sawRoot {
		t.Errorf("want rows for default (Cert Chain, %s) and ROOTCA (CA); got:\n%s", clientID, out.String())
	}
	out.Reset()
	if code := cli.Run(context.Background(), &cli.Env{Out: &out, Err: &errb},
		[]string{"proxy-config", "secret", "x", "--proxy-admin", m.client.Addr("admin"), "-o", "json"}); code != 0 {
		t.Fatalf("-o json: exit %d: %s", code, errb.String())
	}
	if strings.Contains(out.String(), "PRIVATE KEY") || !strings.Contains(out.String(), "[redacted]") {
		t.Errorf("-o json must show the key as [redacted]:\n%s", out.String())
	}
}

// TestImpostorServerIsRejected: the client sidecar accepts only the
// identities of the destination's workloads (the WorkloadEntry says
// reviews): a server sidecar running as another service account, with a
// certificate from the same CA, is refused and no request reaches the
// backend.
func TestImpostorServerIsRejected(t *testing.T) {
	m := startMeshWithoutServer(t)
	m.server = m.startProxyAs("sidecar", "default", "ratings", "reviews-v1", m.serverIP, map[string]string{"app": "reviews", "version": "v1"}, "")
	m.eventually("the impostor's listener is up", func() error {
		code, _, err := m.plainGet()
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("status %d", code)
		}
		return err
	})
	var cl *upstream.Cluster
	m.eventually("the client sidecar has the reviews cluster", func() error {
		if cl = m.client.Cluster("outbound|9080||" + svcHost); cl == nil || len(cl.Hosts()) == 0 {
			return fmt.Errorf("no cluster or endpoints yet")
		}
		return nil
	})
	before := m.backend.requests.Load()
	for i := 0; i < 3; i++ {
		if body, err := m.get("/"); err == nil {
			t.Fatalf("request reached a server with the wrong identity: %q", body)
		} else if !strings.Contains(err.Error(), "status 503") {
			t.Errorf("want 503 (upstream connect failure), got %v", err)
		}
	}
	if n := m.backend.requests.Load() - before; n != 0 {
		t.Errorf("%d mesh requests reached the impostor's backend", n)
	}
	if cl.Stats.CxConnectFail.Load() == 0 {
		t.Error("no failed upstream connection counted: the handshake did not fail")
	}
}

// hasSeries reports whether a line of the Prometheus text starts with
// prefix and contains every label of want.
func hasSeries(text, prefix string, want ...string) bool {
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(line, w)
		}
		if ok {
			return true
		}
	}
	return false
}
