package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"golang.org/x/net/http2"

	"github.com/weftmesh/weft/internal/proxy/bootstrap"
	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

// drainConfig is one HTTP listener on addr routing everything to the
// slow backend.
func drainConfig(addr, backend string) xdstest.Resources {
	return xdstest.Resources{
		Clusters:  []*clusterT{xdstest.StaticCluster("outbound|80||slow.default.svc.cluster.local", backend)},
		Routes:    []*routeT{xdstest.RouteConfig("80", "outbound|80||slow.default.svc.cluster.local")},
		Listeners: []*listenerv3.Listener{xdstest.HTTPListener("0.0.0.0_80", addr, xdstest.HCM("outbound_0.0.0.0_80", "80"))},
	}
}

type result struct {
	resp *http.Response
	body string
	err  error
}

func roundTrip(rt http.RoundTripper, url string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", url, nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			ch <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		ch <- result{resp: resp, body: string(b), err: err}
	}()
	return ch
}

func wait(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("request did not finish")
	}
	return result{}
}

func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

// An in-flight HTTP/1.1 request finishes during a drain and is answered
// with Connection: close; new connections are refused; readiness fails;
// Drain returns as soon as the connection is gone.
func TestDrainLetsInFlightRequestFinish(t *testing.T) {
	slow := newSlowBackend(t)
	lis := xdstest.FreeAddr(t)
	h := newHarnessWith(t, drainConfig(lis, slow.addr()), func(c *bootstrap.Config) {
		c.DrainTimeout = bootstrap.Duration(time.Minute) // only an empty proxy ends the drain early
	})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	inflight := roundTrip(tr, "http://"+lis+"/slow")
	slow.waitArrived(t)

	drained := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		h.p.Drain(ctx)
		close(drained)
	}()
	waitFor(t, "the listener to refuse connections", func() bool { return refused(lis) })
	if h.p.Ready() {
		t.Error("still ready while draining")
	}
	select {
	case <-drained:
		t.Fatal("Drain returned with a request in flight")
	default:
	}
	close(slow.release)
	r := wait(t, inflight)
	if r.err != nil || r.resp.StatusCode != 200 || r.body != "finished" {
		t.Fatalf("in-flight request: %v %v %q", r.err, r.resp, r.body)
	}
	if !r.resp.Close {
		t.Errorf("response during drain lacks Connection: close: %v", r.resp.Header)
	}
	select {
	case <-drained:
	case <-time.After(20 * time.Second):
		t.Fatal("Drain did not return after the last connection closed")
	}
}

// An HTTP/2 (h2c) connection gets GOAWAY: its in-flight stream finishes
// and the connection closes, ending the drain.
func TestDrainH2C(t *testing.T) {
	slow := newSlowBackend(t)
	lis := xdstest.FreeAddr(t)
	h := newHarnessWith(t, drainConfig(lis, slow.addr()), func(c *bootstrap.Config) {
		c.DrainTimeout = bootstrap.Duration(time.Minute)
	})
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, n, a string, _ *tls.Config) (net.Conn, error) {
		return net.Dial(n, a)
	}}
	defer tr.CloseIdleConnections()
	inflight := roundTrip(tr, "http://"+lis+"/slow")
	slow.waitArrived(t)
	drained := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		h.p.Drain(ctx)
		close(drained)
	}()
	waitFor(t, "the listener to refuse connections", func() bool { return refused(lis) })
	close(slow.release)
	r := wait(t, inflight)
	if r.err != nil || r.resp.StatusCode != 200 || r.body != "finished" || r.resp.ProtoMajor != 2 {
		t.Fatalf("in-flight h2 request: %v %v %q", r.err, r.resp, r.body)
	}
	select {
	case <-drained:
	case <-time.After(20 * time.Second):
		t.Fatal("h2 connection not closed after GOAWAY")
	}
}

// A listener removed by xDS drains: a slow request in flight on it
// completes, while the address stops accepting connections.
func TestRemovedListenerDrains(t *testing.T) {
	slow := newSlowBackend(t)
	keep, gone := xdstest.FreeAddr(t), xdstest.FreeAddr(t)
	res := drainConfig(keep, slow.addr())
	res.Listeners = append(res.Listeners, xdstest.HTTPListener("0.0.0.0_81", gone, xdstest.HCM("outbound_0.0.0.0_81", "80")))
	h := newHarnessWith(t, res, func(*bootstrap.Config) {})
	waitFor(t, "both listeners", func() bool { return h.p.ListenerAddr(gone) != "" })

	c, err := net.Dial("tcp", gone)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: slow\r\n\r\n")
	slow.waitArrived(t)

	res.Listeners = res.Listeners[:1]
	h.push(res)
	waitFor(t, "the removed listener to refuse connections", func() bool { return refused(gone) })
	close(slow.release)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("in-flight request on the removed listener: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "finished" {
		t.Fatalf("in-flight request on the removed listener: %d %q", resp.StatusCode, body)
	}
	// Then the drained connection is closed.
	if n, err := br.ReadByte(); err == nil {
		t.Errorf("connection still open after its request finished (read %q)", n)
	}
	// The kept listener still serves.
	if status, body, _ := get(t, "http://"+keep+"/after"); status != 200 || body != "finished" {
		t.Errorf("kept listener: %d %q", status, body)
	}
}

// A tcp_proxy connection of a removed listener keeps working for the
// drain duration, then is closed.
func TestRemovedTCPListenerDrains(t *testing.T) {
	echoAddr, _ := echoServer(t)
	slow := newSlowBackend(t)
	keep, tcpLis := xdstest.FreeAddr(t), xdstest.FreeAddr(t)
	res := drainConfig(keep, slow.addr())
	res.Clusters = append(res.Clusters, xdstest.StaticCluster("outbound|7000||echo.default.svc.cluster.local", echoAddr))
	res.Listeners = append(res.Listeners, xdstest.TCPListener("0.0.0.0_7000", tcpLis, "outbound|7000||echo.default.svc.cluster.local"))
	h := newHarnessWith(t, res, func(c *bootstrap.Config) { c.DrainTimeout = bootstrap.Duration(time.Second) })
	waitFor(t, "the tcp listener", func() bool { return h.p.ListenerAddr(tcpLis) != "" })

	c, err := net.Dial("tcp", tcpLis)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	echoLine := func(s string) (string, error) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, s); err != nil {
			return "", err
		}
		return br.ReadString('\n')
	}
	if l, err := echoLine("one\n"); err != nil || l != "one\n" {
		t.Fatalf("before removal: %q %v", l, err)
	}
	res.Listeners = res.Listeners[:1]
	h.push(res)
	waitFor(t, "the removed listener to refuse connections", func() bool { return refused(tcpLis) })
	if l, err := echoLine("two\n"); err != nil || l != "two\n" {
		t.Fatalf("draining connection cut at removal: %q %v", l, err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("connection not closed at the end of the drain")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("connection still open long after the drain duration")
	}
}

// /quitquitquit (Quit) makes Run drain: the in-flight request completes,
// then Run returns.
func TestQuitDrainsThenRunReturns(t *testing.T) {
	slow := newSlowBackend(t)
	lis := xdstest.FreeAddr(t)
	cp := xdstest.NewServer(t, "127.0.0.1:0")
	cp.Set(t, nodeID, "v1", drainConfig(lis, slow.addr()))
	cfg := bootstrap.Default()
	cfg.XDSAddress = cp.Addr
	cfg.Node = bootstrap.Node{ID: nodeID, Cluster: "Kubernetes", Namespace: "default"}
	cfg.AdminAddress, cfg.ReadyAddress, cfg.StatsAddress = "127.0.0.1:0", "", ""
	cfg.DrainTimeout = bootstrap.Duration(time.Minute)
	p, err := New(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	waitFor(t, "ready", p.Ready)

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	inflight := roundTrip(tr, "http://"+lis+"/slow")
	slow.waitArrived(t)
	resp, err := http.Post("http://"+p.Addr("admin")+"/quitquitquit", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitFor(t, "the listener to refuse connections", func() bool { return refused(lis) })
	select {
	case err := <-done:
		t.Fatalf("Run returned with a request in flight: %v", err)
	default:
	}
	close(slow.release)
	if r := wait(t, inflight); r.err != nil || r.resp.StatusCode != 200 || r.body != "finished" {
		t.Fatalf("in-flight request: %v %v %q", r.err, r.resp, r.body)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return once the last connection closed")
	}
}
