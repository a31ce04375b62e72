package upstream

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// h1Cluster is a static HTTP/1.1 cluster for addr with the given
// max_requests_per_connection (0: unlimited) and idle timeout (0: the
// default).
func h1Cluster(t *testing.T, addr string, maxPerConn uint32, idle time.Duration) *Cluster {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	var p uint32
	fmt.Sscan(port, &p)
	c := &clusterv3.Cluster{
		Name: "outbound|80||h1", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}, ConnectTimeout: durationpb.New(time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "outbound|80||h1", Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: p}}}}}},
		}}}}},
	}
	if maxPerConn > 0 || idle > 0 {
		common := &corev3.HttpProtocolOptions{}
		if maxPerConn > 0 {
			common.MaxRequestsPerConnection = wrapperspb.UInt32(maxPerConn)
		}
		if idle > 0 {
			common.IdleTimeout = durationpb.New(idle)
		}
		opts, err := anypb.New(&httpv3.HttpProtocolOptions{CommonHttpProtocolOptions: common})
		if err != nil {
			t.Fatal(err)
		}
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": opts}
	}
	cl, err := Compile(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cl.h1 == nil {
		t.Fatal("HTTP/1.1 cluster without the lean pool")
	}
	t.Cleanup(cl.Close)
	return cl
}

// h1Backend is an HTTP/1.1 server that counts its connections.
type h1Backend struct {
	*httptest.Server
	opened atomic.Int64
	closed atomic.Int64
}

func newH1Backend(t *testing.T, h http.HandlerFunc) *h1Backend {
	b := &h1Backend{}
	b.Server = httptest.NewUnstartedServer(h)
	b.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			b.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			b.closed.Add(1)
		}
	}
	b.Start()
	t.Cleanup(b.Close)
	return b
}

func (b *h1Backend) addr() string { return b.Listener.Addr().String() }

// get sends one request through cl and returns the status and body.
func get(t *testing.T, cl *Cluster, req *http.Request) (int, string, http.Header) {
	t.Helper()
	var local net.Addr
	resp, err := cl.RoundTripLocal(req, &local)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	if local == nil {
		t.Error("no upstream local address recorded")
	}
	return resp.StatusCode, string(b), resp.Header
}

func newReq(t *testing.T, method, addr, path string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// eventually polls cond (connection closes are asynchronous on the
// server side) and fails with msg if it never holds.
func eventually(t *testing.T, msg string, cond func() bool) {
	t.Helper()
	for range 200 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal(msg)
}

func TestH1PoolKeepAliveReusesOneConnection(t *testing.T) {
	b := newH1Backend(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Method+" "+r.URL.RequestURI())
	})
	cl := h1Cluster(t, b.addr(), 0, 0)
	for i := range 20 {
		path := fmt.Sprintf("/p/%d?q=%d", i, i)
		st, body, _ := get(t, cl, newReq(t, "GET", b.addr(), path, nil))
		if st != 200 || body != "GET "+path {
			t.Fatalf("request %d: %d %q", i, st, body)
		}
	}
	// HEAD and 204 responses have no body and must leave the connection reusable.
	if st, body, _ := get(t, cl, newReq(t, "HEAD", b.addr(), "/", nil)); st != 200 || body != "" {
		t.Fatalf("HEAD: %d %q", st, body)
	}
	if n := b.opened.Load(); n != 1 {
		t.Fatalf("20 sequential keep-alive requests opened %d connections, want 1", n)
	}
	if n := cl.Stats.CxTotal.Load(); n != 1 {
		t.Fatalf("upstream_cx_total %d, want 1", n)
	}
	if n := cl.Stats.CxActive.Load(); n != 1 {
		t.Fatalf("upstream_cx_active %d, want 1 (idle in the pool)", n)
	}
	cl.Close()
	if n := cl.Stats.CxActive.Load(); n != 0 {
		t.Fatalf("upstream_cx_active after Close %d, want 0", n)
	}
	if n := cl.Stats.CxDestroy.Load(); n != 1 {
		t.Fatalf("upstream_cx_destroy after Close %d, want 1", n)
	}
}

func TestH1PoolConcurrentRequests(t *testing.T) {
	b := newH1Backend(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Write(body)
	})
	cl := h1Cluster(t, b.addr(), 0, 0)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				want := fmt.Sprintf("g%d-i%d-%s", g, i, strings.Repeat("x", i*100))
				resp, err := cl.RoundTrip(newReq(t, "POST", b.addr(), "/", strings.NewReader(want)))
				if err != nil {
					t.Error(err)
					return
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(got) != want {
					t.Errorf("echo: %v, %d bytes, want %d", err, len(got), len(want))
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := b.opened.Load(); n > 8 {
		t.Fatalf("8 concurrent clients opened %d connections", n)
	}
}

func TestH1PoolServerConnectionClose(t *testing.T) {
	b := newH1Backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	cl := h1Cluster(t, b.addr(), 0, 0)
	for range 3 {
		if st, body, _ := get(t, cl, newReq(t, "GET", b.addr(), "/", nil)); st != 200 || body != "bye" {
			t.Fatalf("%d %q", st, body)
		}
	}
	if n := b.opened.Load(); n != 3 {
		t.Fatalf("Connection: close responses: %d connections, want 3", n)
	}
	if a, d := cl.Stats.CxActive.Load(), cl.Stats.CxDestroy.Load(); a != 0 || d != 3 {
		t.Fatalf("upstream_cx_active %d, upstream_cx_destroy %d; want 0 and 3", a, d)
	}
}

// rawBackend serves each connection with fn (one goroutine per
// connection) and counts the connections.
type rawBackend struct {
	ln     net.Listener
	opened atomic.Int64
}

func newRawBackend(t *testing.T, fn func(c net.Conn, br *bufio.Reader)) *rawBackend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.opened.Add(1)
			go func() {
				defer c.Close()
				fn(c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return b
}

func (b *rawBackend) addr() string { return b.ln.Addr().String() }

func TestH1PoolHTTP10Response(t *testing.T) {
	// An HTTP/1.0 response without a length ends at EOF: read to the end,
	// the connection is not reused.
	b := newRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nold server")
	})
	cl := h1Cluster(t, b.addr(), 0, 0)
	for range 2 {
		if st, body, _ := get(t, cl, newReq(t, "GET", b.addr(), "/", nil)); st != 200 || body != "old server" {
			t.Fatalf("%d %q", st, body)
		}
	}
	if n := b.opened.Load(); n != 2 {
		t.Fatalf("HTTP/1.0 responses: %d connections, want 2", n)
	}
}

func TestH1PoolMaxRequestsPerConnection(t *testing.T) {
	var mu sync.Mutex
	var closeHeaders []string
	b := newH1Backend(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		closeHeaders = append(closeHeaders, fmt.Sprint(r.Close))
		mu.Unlock()
		io.WriteString(w, "ok")
	})
	cl := h1Cluster(t, b.addr(), 3, 0)
	for range 9 {
		get(t, cl, newReq(t, "GET", b.addr(), "/", nil))
	}
	if n := b.opened.Load(); n != 3 {
		t.Fatalf("max_requests_per_connection 3, 9 requests: %d connections, want 3", n)
	}
	if got := strings.Join(closeHeaders, ","); got != "false,false,true,false,false,true,false,false,true" {
		t.Fatalf("Connection: close on requests: %s", got)
	}
	if n := cl.Stats.CxMaxRequests.Load(); n != 3 {
		t.Fatalf("upstream_cx_max_requests %d, want 3", n)
	}
	// max_requests_per_connection 1 disables keep-alive.
	one := h1Cluster(t, b.addr(), 1, 0)
	before := b.opened.Load()
	for range 3 {
		get(t, one, newReq(t, "GET", b.addr(), "/", nil))
	}
	if n := b.opened.Load() - before; n != 3 {
		t.Fatalf("max_requests_per_connection 1: %d connections for 3 requests", n)
	}
}

// closingBackend answers one request per connection advertising
// keep-alive, then closes the connection: the next request on the
// pooled connection fails before any response byte.
func closingBackend(t *testing.T) *rawBackend {
	return newRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, _ := io.ReadAll(req.Body)
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body)+2, "ok"+string(body))
	})
}

func TestH1PoolRetriesStaleConnection(t *testing.T) {
	b := closingBackend(t)
	cl := h1Cluster(t, b.addr(), 0, 0)
	get(t, cl, newReq(t, "GET", b.addr(), "/", nil))
	// Wait until the pooled connection's peer has closed it (its
	// goroutine returned): the next request then reuses a dead connection.
	time.Sleep(50 * time.Millisecond)
	if st, body, _ := get(t, cl, newReq(t, "GET", b.addr(), "/", nil)); st != 200 || body != "ok" {
		t.Fatalf("after a stale connection: %d %q", st, body)
	}
	// A replayable body is sent again.
	time.Sleep(50 * time.Millisecond)
	if st, body, _ := get(t, cl, newReq(t, "POST", b.addr(), "/", strings.NewReader("payload"))); st != 200 || body != "okpayload" {
		t.Fatalf("replayed body: %d %q", st, body)
	}
	if n := b.opened.Load(); n != 3 {
		t.Fatalf("%d connections, want 3 (the first, then two retries on new ones)", n)
	}
	// A body that cannot be replayed is not retried.
	time.Sleep(50 * time.Millisecond)
	req := newReq(t, "POST", b.addr(), "/", io.NopCloser(strings.NewReader("once")))
	req.ContentLength = 4
	resp, err := cl.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("a non-replayable request on a stale connection succeeded; want the error")
	}
}

// TestH1PoolChecksLongIdleConnection: a request whose body cannot be
// sent again is not put on a connection that sat idle longer than
// staleCheckAfter and was closed by the upstream meanwhile (keep-alive
// timeouts close connections after seconds): the pool sees the close and
// dials a new connection instead of failing the request.
func TestH1PoolChecksLongIdleConnection(t *testing.T) {
	b := closingBackend(t)
	cl := h1Cluster(t, b.addr(), 0, 0)
	get(t, cl, newReq(t, "GET", b.addr(), "/", nil))
	time.Sleep(staleCheckAfter + 200*time.Millisecond)
	req := newReq(t, "POST", b.addr(), "/", io.NopCloser(strings.NewReader("once")))
	req.ContentLength = 4
	if st, body, _ := get(t, cl, req); st != 200 || body != "okonce" {
		t.Fatalf("non-replayable request after a long idle: %d %q", st, body)
	}
	if n := b.opened.Load(); n != 2 {
		t.Fatalf("%d connections, want 2 (the closed idle one was not used)", n)
	}
}

func TestH1PoolEarlyCloseDiscardsConnection(t *testing.T) {
	big := strings.Repeat("y", 1<<20)
	b := newH1Backend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, big) })
	cl := h1Cluster(t, b.addr(), 0, 0)
	resp, err := cl.RoundTrip(newReq(t, "GET", b.addr(), "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	io.ReadFull(resp.Body, buf)
	resp.Body.Close()
	if _, err := resp.Body.Read(buf); err == nil {
		t.Fatal("read after Close succeeded")
	}
	if n := cl.Stats.CxActive.Load(); n != 0 {
		t.Fatalf("upstream_cx_active %d after an early close, want 0", n)
	}
	if st, body, _ := get(t, cl, newReq(t, "GET", b.addr(), "/", nil)); st != 200 || len(body) != len(big) {
		t.Fatalf("%d, %d bytes", st, len(body))
	}
	if n := b.opened.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

func TestH1PoolChunkedRequestBody(t *testing.T) {
	b := newH1Backend(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%v %d %s", r.TransferEncoding, len(body), r.Header.Get("X-Test"))
	})
	cl := h1Cluster(t, b.addr(), 0, 0)
	pr, pw := io.Pipe()
	go func() {
		for i := range 10 {
			fmt.Fprintf(pw, "chunk%d;", i)
		}
		pw.Close()
	}()
	req := newReq(t, "POST", b.addr(), "/", pr)
	req.ContentLength = -1
	req.Header.Set("X-Test", "yes")
	st, body, _ := get(t, cl, req)
	if st != 200 || body != "[chunked] 70 yes" {
		t.Fatalf("%d %q", st, body)
	}
	// The connection is reused after a streamed body.
	get(t, cl, newReq(t, "GET", b.addr(), "/", nil))
	if n := b.opened.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

func TestH1PoolEarlyResponseToStreamedBody(t *testing.T) {
	// The upstream refuses a large body without reading it: the response
	// arrives while the body is still being written, and must not
	// deadlock the exchange.
	b := newH1Backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
	})
	cl := h1Cluster(t, b.addr(), 0, 0)
	req := newReq(t, "POST", b.addr(), "/", io.NopCloser(bytes.NewReader(make([]byte, 32<<20))))
	req.ContentLength = 32 << 20
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := cl.RoundTrip(req)
		if err != nil {
			return // the upstream may reset the connection first
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d", resp.StatusCode)
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("exchange deadlocked")
	}
}

func TestH1PoolContextCancel(t *testing.T) {
	release := make(chan struct{})
	b := newH1Backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "ok")
	})
	defer close(release)
	cl := h1Cluster(t, b.addr(), 0, 0)
	ctx, cancel := context.WithCancel(context.Background())
	req := newReq(t, "GET", b.addr(), "/slow", nil).WithContext(ctx)
	errc := make(chan error, 1)
	go func() {
		resp, err := cl.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: %v, want context.Canceled", err)
	}
	eventually(t, "the cancelled request's connection was not closed", func() bool { return cl.Stats.CxActive.Load() == 0 })
	if st, body, _ := get(t, cl, newReq(t, "GET", b.addr(), "/", nil)); st != 200 || body != "ok" {
		t.Fatalf("after cancel: %d %q", st, body)
	}
}

func TestH1PoolIdleTimeout(t *testing.T) {
	b := newH1Backend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	cl := h1Cluster(t, b.addr(), 0, 50*time.Millisecond)
	get(t, cl, newReq(t, "GET", b.addr(), "/", nil))
	eventually(t, "idle connection not closed after its idle timeout", func() bool {
		return cl.Stats.CxActive.Load() == 0 && b.closed.Load() == 1
	})
	get(t, cl, newReq(t, "GET", b.addr(), "/", nil))
	if n := b.opened.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

func TestH1PoolHeaderLimitAndBadHeaders(t *testing.T) {
	b := newRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Big: ")
		chunk := strings.Repeat("a", 64<<10)
		for range 20 {
			if _, err := io.WriteString(c, chunk); err != nil {
				return
			}
		}
		io.WriteString(c, "\r\n\r\n")
	})
	cl := h1Cluster(t, b.addr(), 0, 0)
	if resp, err := cl.RoundTrip(newReq(t, "GET", b.addr(), "/", nil)); err == nil {
		resp.Body.Close()
		t.Fatal("a 1.25 MB response header was accepted")
	}
	req := newReq(t, "GET", b.addr(), "/", nil)
	req.Header["Bad\nName"] = []string{"x"}
	if resp, err := cl.RoundTrip(req); err == nil {
		resp.Body.Close()
		t.Fatal("an invalid header name was sent")
	}
}

func TestH1PoolFallbacks(t *testing.T) {
	b := newH1Backend(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-T")
		w.Write(body)
		w.Header().Set("X-T", "trailer-value")
	})
	cl := h1Cluster(t, b.addr(), 0, 0)
	// Expect: 100-continue goes to net/http's transport.
	req := newReq(t, "PUT", b.addr(), "/", strings.NewReader("continued"))
	req.Header.Set("Expect", "100-continue")
	if cl.h1.handles(req) {
		t.Fatal("Expect: 100-continue handled by the lean pool")
	}
	if st, body, _ := get(t, cl, req); st != 200 || body != "continued" {
		t.Fatalf("Expect: %d %q", st, body)
	}
	// Response trailers reach the caller on the lean path.
	resp, err := cl.RoundTrip(newReq(t, "GET", b.addr(), "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if v := resp.Trailer.Get("X-T"); v != "trailer-value" {
		t.Fatalf("trailer %q", v)
	}
	up := newReq(t, "GET", b.addr(), "/", nil)
	up.Header.Set("Connection", "Upgrade")
	up.Header.Set("Upgrade", "websocket")
	if cl.h1.handles(up) {
		t.Fatal("an upgrade handled by the lean pool")
	}
}

func TestH1PoolResponseBeforeStreamedBodyEnds(t *testing.T) {
	// The upstream answers while the downstream client is still sending
	// (and stalls): the response is delivered and closing it does not
	// wait for the request body.
	// (net/http's server would first wait to drain the body, so the
	// upstream is a raw one.)
	b := newRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly")
		io.Copy(io.Discard, br)
	})
	cl := h1Cluster(t, b.addr(), 0, 0)
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte("first part;"))
	req := newReq(t, "POST", b.addr(), "/", pr)
	req.ContentLength = -1
	resp, err := cl.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(body) != "early" {
		t.Fatalf("%q, %v", body, err)
	}
	if _, err := resp.Body.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after EOF: %v, want io.EOF", err)
	}
	// The connection, whose request was not fully written, is not reused.
	if st, body, _ := get(t, cl, newReq(t, "GET", b.addr(), "/", nil)); st != 200 || body != "early" {
		t.Fatalf("%d %q", st, body)
	}
	if n := b.opened.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}
