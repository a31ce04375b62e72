package xdsconf

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
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
	cfg := bootstrap.Default()
	cfg.XDSAddress = xds
	cfg.Node.ID = node
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
	if _, _, err := Mesh(cl, sv, be.Addr("http"), true); err == nil {
		t.Error("mTLS mesh config: no error while weft-proxy lacks mTLS")
	}

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
