package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

func h2cClient() *http.Client {
	return &http.Client{Transport: &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, n, a string, _ *tls.Config) (net.Conn, error) {
		return net.Dial(n, a)
	}}}
}

// TestHTTP2UpstreamAndTrailers sends gRPC-style requests (h2c, TE:
// trailers, response trailers) through an http2 cluster: the upstream
// must see HTTP/2 on one multiplexed connection and the client must get
// the trailers.
func TestHTTP2UpstreamAndTrailers(t *testing.T) {
	var conns atomic.Int64
	up := httptest.NewUnstartedServer(h2c.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		fmt.Fprintf(w, "proto=%s te=%s", r.Proto, r.Header.Get("Te"))
		w.Header().Set("Grpc-Status", "0")
	}), &http2.Server{}))
	up.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	defer up.Close()

	h2cluster := xdstest.StaticCluster("outbound|50051||grpc", strings.TrimPrefix(up.URL, "http://"))
	h2cluster.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": xdstest.Any(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}}}})}
	lis := xdstest.FreeAddr(t)
	newHarness(t, xdstest.Resources{
		Clusters:  []*clusterv3.Cluster{h2cluster},
		Listeners: []*listenerv3.Listener{xdstest.HTTPListener("0.0.0.0_50051", lis, xdstest.HCM("50051", "50051"))},
		Routes:    []*routev3.RouteConfiguration{xdstest.RouteConfig("50051", "outbound|50051||grpc")},
	})
	client := h2cClient()
	for i := range 20 {
		req, _ := http.NewRequest("POST", "http://"+lis+"/pkg.Svc/Method", strings.NewReader("\x00\x00\x00\x00\x00"))
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("Te", "trailers")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "proto=HTTP/2.0 te=trailers" || resp.Trailer.Get("Grpc-Status") != "0" {
			t.Fatalf("request %d: body %q trailers %v", i, body, resp.Trailer)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("upstream saw %d connections for 20 requests, want 1 multiplexed", n)
	}
}

func TestCORS(t *testing.T) {
	b := newBackend(t, "app", nil)
	cors := xdstest.Any(&corsv3.CorsPolicy{
		AllowOriginStringMatch: []*matcherv3.StringMatcher{{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "https://ok.example"}}},
		AllowMethods:           "GET,POST", AllowHeaders: "x-a", MaxAge: "60", AllowCredentials: wrapperspb.Bool(true),
	})
	rc := xdstest.RouteConfig("80", "outbound|80||app")
	rc.VirtualHosts[0].TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.cors": cors}
	lis := xdstest.FreeAddr(t)
	newHarness(t, xdstest.Resources{
		Clusters:  []*clusterv3.Cluster{xdstest.StaticCluster("outbound|80||app", b.addr())},
		Listeners: []*listenerv3.Listener{xdstest.HTTPListener("0.0.0.0_80", lis, xdstest.HCM("80", "80"))},
		Routes:    []*routev3.RouteConfiguration{rc},
	})
	pre, _ := http.NewRequest("OPTIONS", "http://"+lis+"/x", nil)
	pre.Header.Set("Origin", "https://ok.example")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	hits := b.hits.Load()
	resp, err := http.DefaultClient.Do(pre)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://ok.example" ||
		resp.Header.Get("Access-Control-Allow-Methods") != "GET,POST" || resp.Header.Get("Access-Control-Max-Age") != "60" || b.hits.Load() != hits {
		t.Fatalf("preflight: %d %v (upstream hits %d)", resp.StatusCode, resp.Header, b.hits.Load()-hits)
	}
	_, _, h := get(t, "http://"+lis+"/x", "Origin", "https://ok.example")
	if h.Get("Access-Control-Allow-Origin") != "https://ok.example" || h.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("simple request CORS headers %v", h)
	}
	_, _, h = get(t, "http://"+lis+"/x", "Origin", "https://evil.example")
	if h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("disallowed origin got %q", h.Get("Access-Control-Allow-Origin"))
	}
}

// TestIdleTimeout: a route idle_timeout ends requests that make no
// progress (504, flag SI) but not slow streams that keep sending.
func TestIdleTimeout(t *testing.T) {
	// The stream lasts longer than the idle timeout (the timer restarts
	// at each chunk) while each gap is far below it, so scheduling delays
	// on a loaded machine cannot make a gap look idle; the stuck upstream
	// answers only when the proxy gives up on it.
	const idle, gap, chunks = time.Second, 100 * time.Millisecond, 15
	up := newBackend(t, "up", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			for range chunks {
				io.WriteString(w, "tick\n")
				w.(http.Flusher).Flush()
				time.Sleep(gap)
			}
			return
		}
		select {
		case <-r.Context().Done():
		case <-time.After(20 * time.Second):
		}
		io.WriteString(w, "late")
	})
	rc := xdstest.RouteConfig("80", "outbound|80||up")
	ra := rc.VirtualHosts[0].Routes[0].GetRoute()
	ra.Timeout = durationpb.New(0) // no route timeout: only the idle timeout applies
	ra.IdleTimeout = durationpb.New(idle)
	lis := xdstest.FreeAddr(t)
	h := newHarness(t, xdstest.Resources{
		Clusters:  []*clusterv3.Cluster{xdstest.StaticCluster("outbound|80||up", up.addr())},
		Listeners: []*listenerv3.Listener{xdstest.HTTPListener("0.0.0.0_80", lis, xdstest.HCM("80", "80"))},
		Routes:    []*routev3.RouteConfiguration{rc},
	})
	if status, body, _ := get(t, "http://"+lis+"/stuck"); status != 504 || body != "stream timeout" {
		t.Errorf("stuck upstream: %d %q, want 504 stream timeout", status, body)
	}
	if status, body, _ := get(t, "http://"+lis+"/stream"); status != 200 || strings.Count(body, "tick") != chunks {
		t.Errorf("streaming upstream (%d chunks, one every %v, idle timeout %v): %d %q", chunks, gap, idle, status, body)
	}
	if prom := adminGet(t, h.p.Addr("stats"), "/stats/prometheus"); !strings.Contains(prom, `response_flags="SI"`) {
		t.Errorf("no SI flag in metrics")
	}
}

// TestConsistentHashRouting: a RING_HASH cluster with a header hash
// policy (Istio's consistentHash.httpHeaderName) keeps each user on one
// backend while spreading users over all of them.
func TestConsistentHashRouting(t *testing.T) {
	var addrs []string
	for i := range 3 {
		b := newBackend(t, fmt.Sprint("b", i), func(w http.ResponseWriter, r *http.Request) {})
		addrs = append(addrs, b.addr())
	}
	cl := xdstest.StaticCluster("outbound|80||app", addrs...)
	cl.LbPolicy = clusterv3.Cluster_RING_HASH
	rc := xdstest.RouteConfig("80", "outbound|80||app")
	rc.VirtualHosts[0].Routes[0].GetRoute().HashPolicy = []*routev3.RouteAction_HashPolicy{{
		PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "x-user"}}}}
	lis := xdstest.FreeAddr(t)
	newHarness(t, xdstest.Resources{
		Clusters:  []*clusterv3.Cluster{cl},
		Listeners: []*listenerv3.Listener{xdstest.HTTPListener("0.0.0.0_80", lis, xdstest.HCM("80", "80"))},
		Routes:    []*routev3.RouteConfiguration{rc},
	})
	used := map[string]bool{}
	for u := range 30 {
		user := fmt.Sprint("user-", u)
		_, _, h := get(t, "http://"+lis+"/", "x-user", user)
		first := h.Get("X-Backend")
		for range 3 {
			if _, _, h := get(t, "http://"+lis+"/", "x-user", user); h.Get("X-Backend") != first {
				t.Fatalf("%s moved from %s to %s", user, first, h.Get("X-Backend"))
			}
		}
		used[first] = true
	}
	if len(used) != 3 {
		t.Errorf("30 users landed on %d of 3 backends", len(used))
	}
}

// TestForwardProxyConnect: CONNECT through the forward-proxy port is
// handled like an intercepted connection to the target: a port with a
// tcp_proxy listener uses it, anything else goes to PassthroughCluster
// via the use_original_dst listener.
func TestForwardProxyConnect(t *testing.T) {
	echoAddr, _ := echoServer(t)
	tcpLis := xdstest.FreeAddr(t)
	virtual := xdstest.TCPListener("virtualOutbound", xdstest.FreeAddr(t), "PassthroughCluster")
	virtual.UseOriginalDst = wrapperspb.Bool(true)
	pass := &clusterv3.Cluster{Name: "PassthroughCluster", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy: clusterv3.Cluster_CLUSTER_PROVIDED, ConnectTimeout: durationpb.New(time.Second)}
	h := newHarness(t, xdstest.Resources{
		Clusters:  []*clusterv3.Cluster{pass, xdstest.StaticCluster("outbound|7000||echo.default.svc.cluster.local", echoAddr)},
		Listeners: []*listenerv3.Listener{virtual, xdstest.TCPListener("echo_7000", tcpLis, "outbound|7000||echo.default.svc.cluster.local")},
	})
	tunnel := func(target string) {
		t.Helper()
		c, err := net.Dial("tcp", h.p.Addr("forward"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\nping\n", target, target)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("CONNECT %s: %v %v", target, resp, err)
		}
		if line, err := br.ReadString('\n'); err != nil || line != "ping\n" {
			t.Fatalf("CONNECT %s: echo %q %v", target, line, err)
		}
	}
	tunnel(tcpLis)   // the echo_7000 listener's address
	tunnel(echoAddr) // no listener: PassthroughCluster
	waitFor(t, "tcp metrics", func() bool {
		prom := adminGet(t, h.p.Addr("stats"), "/stats/prometheus")
		return strings.Contains(prom, `istio_tcp_connections_closed_total{reporter="source"`) &&
			strings.Contains(prom, `destination_service_name="PassthroughCluster"`) && strings.Contains(prom, `destination_service_name="echo"`)
	})
}

// TestRetryPolicies: per_try_timeout with previous_hosts moves a request
// off a hung host; connect-failure retries skip a dead endpoint.
func TestRetryPolicies(t *testing.T) {
	hung := newBackend(t, "hung", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	})
	fast := newBackend(t, "fast", nil)
	dead := deadAddr(t)
	slowCl := xdstest.StaticCluster("outbound|80||slowpair", hung.addr(), fast.addr())
	deadCl := xdstest.StaticCluster("outbound|80||deadpair", dead, fast.addr())
	perTry := toCluster("outbound|80||slowpair")
	perTry.RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(2),
		PerTryTimeout:      durationpb.New(100 * time.Millisecond),
		RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{Name: "envoy.retry_host_predicates.previous_hosts"}}}
	connFail := toCluster("outbound|80||deadpair")
	connFail.RetryPolicy = &routev3.RetryPolicy{RetryOn: "connect-failure", NumRetries: wrapperspb.UInt32(2),
		RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{Name: "envoy.retry_host_predicates.previous_hosts"}}}
	noRetry := toCluster("outbound|80||deadpair")
	rc := &routev3.RouteConfiguration{Name: "80", VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{
		route("pertry", "/pertry", perTry), route("connfail", "/connfail", connFail), route("noretry", "/noretry", noRetry)}}}}
	lis := xdstest.FreeAddr(t)
	newHarness(t, xdstest.Resources{
		Clusters:  []*clusterv3.Cluster{slowCl, deadCl},
		Listeners: []*listenerv3.Listener{xdstest.HTTPListener("0.0.0.0_80", lis, xdstest.HCM("80", "80"))},
		Routes:    []*routev3.RouteConfiguration{rc},
	})
	for i := range 6 {
		start := time.Now()
		if status, _, h := get(t, "http://"+lis+"/pertry"); status != 200 || h.Get("X-Backend") != "fast" {
			t.Errorf("pertry %d: %d from %q", i, status, h.Get("X-Backend"))
		}
		// Without the per-try timeout the hung backend holds it 30s.
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("pertry %d took %v: the per-try timeout did not end the hung attempt", i, d)
		}
		if status, _, _ := get(t, "http://"+lis+"/connfail"); status != 200 {
			t.Errorf("connfail %d: %d", i, status)
		}
	}
	// Without a retry policy, round robin hits the dead endpoint: 503 UF.
	codes := map[int]int{}
	for range 4 {
		s, _, _ := get(t, "http://"+lis+"/noretry")
		codes[s]++
	}
	if codes[503] == 0 || codes[200] == 0 {
		t.Errorf("without retries want both 200 and 503, got %v", codes)
	}
}
