package xdsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/weftmesh/weft/bench/backend"
	"github.com/weftmesh/weft/internal/proxy"
	"github.com/weftmesh/weft/internal/proxy/bootstrap"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startProxy runs a real weft-proxy in this process for node.
func startProxy(t *testing.T, xds, node string) {
	t.Helper()
	startProxyAs(t, xds, node, nil, "")
}

// startProxyAs runs a real weft-proxy in this process for node; with a
// CA, it has the identity of serviceAccount from that CA.
func startProxyAs(t *testing.T, xds, node string, c *CA, serviceAccount string) {
	t.Helper()
	cfg := bootstrap.Default()
	cfg.XDSAddress = xds
	cfg.Node.ID = node
	if c != nil {
		tok, err := c.TokenFile(serviceAccount)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Node.Namespace, cfg.Node.ServiceAccount = Namespace, serviceAccount
		cfg.CA.Address, cfg.CA.ServerName, cfg.CA.RootCertFile, cfg.CA.TokenFile = c.Addr(), ServerName, c.RootFile(), tok
	}
	cfg.AdminAddress = "127.0.0.1:0"
	cfg.ReadyAddress = ""
	cfg.StatsAddress = ""
	p, err := proxy.New(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for !p.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("proxy %s not ready", node)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func get(t *testing.T, url string) {
	t.Helper()
	var err error
	for range 50 { // the listener binds just after readiness
		var resp *http.Response
		if resp, err = http.Get(url); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || len(body) != backend.ResponseSize {
				t.Fatalf("GET %s: %d, %d bytes", url, resp.StatusCode, len(body))
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("GET %s: %v", url, err)
}

func TestScenarioConfigsThroughWeftProxy(t *testing.T) {
	be, err := backend.Start(backend.Config{HTTP: "127.0.0.1:0", TCPEcho: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Stop()
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()

	router := freeAddr(t)
	if err := s.Set("router~127.0.0.1~r.bench~bench.svc.cluster.local", "1", Router(router, be.Addr("http"), HTTP1)); err != nil {
		t.Fatal(err)
	}
	startProxy(t, s.Addr(), "router~127.0.0.1~r.bench~bench.svc.cluster.local")
	get(t, "http://"+router+"/")

	cl, sv := freeAddr(t), freeAddr(t)
	c, srv, err := Mesh(cl, sv, be.Addr("http"), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set("client", "1", c); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("server", "1", srv); err != nil {
		t.Fatal(err)
	}
	startProxy(t, s.Addr(), "client")
	startProxy(t, s.Addr(), "server")
	get(t, "http://"+cl+"/")

	tl := freeAddr(t)
	if err := s.Set("tcp", "1", TCP(tl, be.Addr("tcp-echo"))); err != nil {
		t.Fatal(err)
	}
	startProxy(t, s.Addr(), "tcp")
	var conn net.Conn
	for range 50 {
		if conn, err = net.Dial("tcp", tl); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("hello"))
	buf := make([]byte, 5)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("tcp echo through weft-proxy: %q %v", buf, err)
	}
}

func TestH2Router(t *testing.T) {
	r := Router("127.0.0.1:8080", "127.0.0.1:9090", HTTP2)
	if len(r.Clusters[0].GetTypedExtensionProtocolOptions()) != 1 {
		t.Fatal("HTTP2 cluster lacks protocol options")
	}
	if r.Clusters[0].GetName() != "outbound|9090||"+Host {
		t.Fatalf("cluster name %q", r.Clusters[0].GetName())
	}
}

// TestMeshMTLS runs the mesh path with mutual TLS between two in-process
// weft-proxies that get their identities from the harness's CA, and
// checks that the server sidecar really requires mTLS: a plain-text
// client, and a TLS client without a mesh certificate, are refused.
func TestMeshMTLS(t *testing.T) {
	be, err := backend.Start(backend.Config{HTTP: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Stop()
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	authority, err := StartCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer authority.Stop()

	cl, sv := freeAddr(t), freeAddr(t)
	c, srv, err := Mesh(cl, sv, be.Addr("http"), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set("client", "1", c); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("server", "1", srv); err != nil {
		t.Fatal(err)
	}
	startProxyAs(t, s.Addr(), "client", authority, ClientServiceAccount)
	startProxyAs(t, s.Addr(), "server", authority, ServerServiceAccount)
	for range 20 {
		get(t, "http://"+cl+"/")
	}

	// Plain text straight to the server sidecar: no filter chain matches.
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + sv + "/")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("plain-text request to the STRICT server sidecar answered %s", resp.Status)
	}
	// TLS trusting the mesh root but without a client certificate.
	roots := x509.NewCertPool()
	pem, err := os.ReadFile(authority.RootFile())
	if err != nil || !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("root file: %v", err)
	}
	tc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, InsecureSkipVerify: true}}}
	if resp, err := tc.Get("https://" + sv + "/"); err == nil {
		resp.Body.Close()
		t.Fatalf("TLS request without a client certificate answered %s", resp.Status)
	}
	// The server sidecar presents the server's workload identity.
	conn, err := tls.Dial("tcp", sv, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"istio"}})
	if err == nil {
		// The handshake may complete before the server checks for the
		// missing client certificate; the certificate it showed counts.
		certs := conn.ConnectionState().PeerCertificates
		conn.Close()
		if len(certs) == 0 || len(certs[0].URIs) != 1 || certs[0].URIs[0].String() != Principal(ServerServiceAccount) {
			t.Fatalf("server sidecar's certificate: %v", certs)
		}
	}
}

func TestMeshMTLSResources(t *testing.T) {
	c, srv, err := Mesh("127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.1:9090", true)
	if err != nil {
		t.Fatal(err)
	}
	tsm := c.Clusters[0].GetTransportSocketMatches()
	if len(tsm) != 2 || tsm[0].GetName() != "tlsMode-istio" {
		t.Fatalf("client cluster transport_socket_matches: %v", tsm)
	}
	fc := srv.Listeners[0].GetFilterChains()
	if len(fc) != 1 || fc[0].GetFilterChainMatch().GetTransportProtocol() != "tls" || fc[0].GetTransportSocket() == nil {
		t.Fatalf("server filter chains: %v", fc)
	}
	for _, r := range []Resources{c, srv} {
		for _, l := range r.Listeners {
			if err := l.ValidateAll(); err != nil {
				t.Error(err)
			}
		}
		for _, cl := range r.Clusters {
			if err := cl.ValidateAll(); err != nil {
				t.Error(err)
			}
		}
	}
}
