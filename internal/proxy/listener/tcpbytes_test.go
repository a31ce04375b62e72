package listener

import (
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/weftmesh/weft/internal/proxy/httpproxy"
	"github.com/weftmesh/weft/internal/proxy/upstream"
	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

// oneCluster is a ClusterSource with a single cluster.
type oneCluster struct{ c *upstream.Cluster }

func (o oneCluster) Cluster(name string) *upstream.Cluster {
	if o.c != nil && o.c.Name == name {
		return o.c
	}
	return nil
}

// tcpRecorder is a TCPObserver keeping the last closed connection.
type tcpRecorder struct {
	mu             sync.Mutex
	closed         chan struct{}
	sent, received int64
	flags          string
}

func (r *tcpRecorder) TCPOpened(string, *upstream.Host, *httpproxy.ConnInfo) {}

func (r *tcpRecorder) TCPClosed(_ string, _ *upstream.Host, _ *httpproxy.ConnInfo, flags string, sent, received int64) {
	r.mu.Lock()
	r.sent, r.received, r.flags = sent, received, flags
	r.mu.Unlock()
	close(r.closed)
}

// TestTCPProxyCountsInspectedBytes: a tcp_proxy behind the
// http_inspector (Istio's inbound protocol sniffing) reads the first
// bytes before choosing the chain; they reach the upstream and count as
// received, like every other byte (Envoy's downstream_cx_rx_bytes_total
// and istio_tcp_received_bytes_total).
func TestTCPProxyCountsInspectedBytes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		b, _ := io.ReadAll(c)
		got <- string(b)
		c.Write([]byte("ok\n"))
		c.Close()
	}()
	cl, err := upstream.Compile(xdstest.StaticCluster("c", ln.Addr().String()), nil)
	if err != nil {
		t.Fatal(err)
	}
	l := xdstest.TCPListener("l", "127.0.0.1:7000", "c")
	l.ListenerFilters = append(l.ListenerFilters, &listenerv3.ListenerFilter{Name: "envoy.filters.listener.http_inspector"})
	compiled, err := Compile(l, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if !compiled.inspectHTTP {
		t.Fatal("the http_inspector does not make the listener inspect")
	}
	rec := &tcpRecorder{closed: make(chan struct{})}
	m := NewManager(oneCluster{cl}, slog.New(slog.DiscardHandler))
	m.TCPObserver = rec

	// A real TCP pair, so that half-closes work as in production.
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer front.Close()
	go func() {
		c, err := front.Accept()
		if err == nil {
			m.ServeConn(c, compiled)
		}
	}()
	c, err := net.Dial("tcp", front.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	const msg = "hello over tcp\n"
	c.Write([]byte(msg))
	c.(*net.TCPConn).CloseWrite()
	reply, _ := io.ReadAll(c)
	c.Close()
	if s := <-got; s != msg {
		t.Fatalf("upstream read %q, want %q", s, msg)
	}
	<-rec.closed
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.received != int64(len(msg)) || rec.sent != int64(len(reply)) || rec.flags != "" {
		t.Errorf("TCPClosed received %d sent %d flags %q; want received %d (the inspected bytes too), sent %d, no flags",
			rec.received, rec.sent, rec.flags, len(msg), len(reply))
	}
	if n := m.TCP.BytesReceived.Load(); n != int64(len(msg)) {
		t.Errorf("tcp bytes received stat %d, want %d", n, len(msg))
	}
}
