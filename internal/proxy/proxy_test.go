package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/bootstrap"
	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

const nodeID = "sidecar~127.0.0.1~productpage-v1.default~default.svc.cluster.local"

// harness is a control plane, a running proxy and helpers.
type harness struct {
	t   testing.TB
	cp  *xdstest.Server
	p   *Proxy
	ver atomic.Int64
	// log is the proxy's log (Info and up; none for benchmarks), printed
	// when the test fails.
	log *logBuffer
}

func newHarness(t *testing.T, res xdstest.Resources) *harness {
	t.Helper()
	return newHarnessTB(t, res)
}

// newHarnessTB is newHarness for tests and benchmarks.
func newHarnessTB(tb testing.TB, res xdstest.Resources) *harness {
	tb.Helper()
	return newHarnessEdit(tb, res, nil)
}

// newHarnessEdit starts a control plane serving res and a proxy whose
// bootstrap edit may adjust (nil: none), and waits until it is ready.
func newHarnessEdit(tb testing.TB, res xdstest.Resources, edit func(*bootstrap.Config)) *harness {
	tb.Helper()
	h := &harness{t: tb, cp: xdstest.NewServer(tb, "127.0.0.1:0")}
	h.push(res)
	cfg := bootstrap.Default()
	cfg.XDSAddress = h.cp.Addr
	cfg.Node = bootstrap.Node{ID: nodeID, Cluster: "Kubernetes", Namespace: "default", Workload: "productpage-v1",
		Labels: map[string]string{"app": "productpage", "version": "v1"}, ServiceAccount: "bookinfo-productpage"}
	cfg.AdminAddress, cfg.ReadyAddress, cfg.StatsAddress, cfg.ForwardProxyAddress = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.WarmingTimeout = bootstrap.Duration(300 * time.Millisecond)
	if edit != nil {
		edit(&cfg)
	}
	var log *slog.Logger
	log, h.log = testLogger(tb)
	p, err := New(cfg, log, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.Start(); err != nil {
		tb.Fatal(err)
	}
	h.p = p
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	tb.Cleanup(func() { cancel(); <-done })
	h.waitReady()
	return h
}

func (h *harness) push(res xdstest.Resources) {
	h.cp.Set(h.t, nodeID, fmt.Sprint("v", h.ver.Add(1)), res)
}

// waitReady waits until the proxy has applied its first configuration.
// The bound only matters when it never does: on a loaded machine (CI runs
// packages in parallel) a start may take seconds, so it is generous, and
// a failure reports the xDS client's state.
func (h *harness) waitReady() {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !h.p.Ready() {
		if time.Now().After(deadline) {
			h.t.Fatalf("proxy not ready after 30s; xDS client: %+v", h.p.xds.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// logBuffer keeps a proxy's log lines for a failing test's output.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() < 1<<20 {
		l.b.Write(p)
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testLogger returns a logger whose Info-and-up lines are printed if tb
// fails; benchmarks log nothing (logging would be part of what they
// measure).
func testLogger(tb testing.TB) (*slog.Logger, *logBuffer) {
	if _, bench := tb.(*testing.B); bench {
		return slog.New(slog.DiscardHandler), nil
	}
	buf := &logBuffer{}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("---- proxy log ----\n%s", buf)
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo})), buf
}

// waitFor polls until f returns true.
func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// backend is a counting upstream HTTP server.
type backend struct {
	*httptest.Server
	hits atomic.Int64
	name string
}

func newBackend(t testing.TB, name string, h http.HandlerFunc) *backend {
	b := &backend{name: name}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		w.Header().Set("X-Backend", name)
		if h != nil {
			h(w, r)
			return
		}
		fmt.Fprintf(w, "%s %s %s", name, r.Host, r.URL.RequestURI())
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) addr() string { return strings.TrimPrefix(b.URL, "http://") }

func route(name, prefix string, action *routev3.RouteAction) *routev3.Route {
	return &routev3.Route{Name: name, Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
		Action: &routev3.Route_Route{Route: action}}
}

func toCluster(c string) *routev3.RouteAction {
	return &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: c}}
}

func get(t *testing.T, url string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func faultAny(delay time.Duration, abort uint32) *anypb.Any {
	f := &faultv3.HTTPFault{}
	hundred := &typev3.FractionalPercent{Numerator: 100}
	if delay > 0 {
		f.Delay = &faultcommonv3.FaultDelay{FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(delay)}, Percentage: hundred}
	}
	if abort > 0 {
		f.Abort = &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: abort}, Percentage: hundred}
	}
	return xdstest.Any(f)
}

// bookinfo builds a config with one HTTP listener on addr whose routes
// exercise the router and upstream features.
func bookinfo(addr string, b map[string]*backend, deadAddr string) xdstest.Resources {
	cl := func(name string, addrs ...string) (*clusterv3.Cluster, *endpointv3.ClusterLoadAssignment) {
		return xdstest.EDSCluster(name), xdstest.CLA(name, addrs...)
	}
	res := xdstest.Resources{}
	addCluster := func(c *clusterv3.Cluster, e *endpointv3.ClusterLoadAssignment) {
		res.Clusters = append(res.Clusters, c)
		res.Endpoints = append(res.Endpoints, e)
	}
	v1, v1e := cl("outbound|9080|v1|reviews.default.svc.cluster.local", b["v1"].addr())
	v1e.Endpoints[0].LbEndpoints[0].Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": {Fields: map[string]*structpb.Value{
		"workload": structpb.NewStringValue("reviews-v1;default;reviews;v1;Kubernetes")}}}}
	addCluster(v1, v1e)
	addCluster(cl("outbound|9080|v2|reviews.default.svc.cluster.local", b["v2"].addr()))
	addCluster(cl("outbound|9080|flaky|reviews.default.svc.cluster.local", b["flaky"].addr()))
	addCluster(cl("outbound|9080|slow|reviews.default.svc.cluster.local", b["slow"].addr()))
	addCluster(cl("outbound|9080|shadow|reviews.default.svc.cluster.local", b["shadow"].addr()))
	addCluster(cl("outbound|9080|empty|reviews.default.svc.cluster.local"))
	addCluster(cl("outbound|9080|dead|reviews.default.svc.cluster.local", deadAddr))
	cb, cbe := cl("outbound|9080|cb|reviews.default.svc.cluster.local", b["slow"].addr())
	cb.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		MaxConnections: wrapperspb.UInt32(1), MaxPendingRequests: wrapperspb.UInt32(1)}}}
	addCluster(cb, cbe)

	retry := toCluster("outbound|9080|flaky|reviews.default.svc.cluster.local")
	retry.RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(3),
		RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Millisecond)}}
	timeout := toCluster("outbound|9080|slow|reviews.default.svc.cluster.local")
	timeout.Timeout = durationpb.New(100 * time.Millisecond)
	mirror := toCluster("outbound|9080|v1|reviews.default.svc.cluster.local")
	mirror.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "outbound|9080|shadow|reviews.default.svc.cluster.local"}}
	rewrite := toCluster("outbound|9080|v1|reviews.default.svc.cluster.local")
	rewrite.PrefixRewrite = "/new/"
	rewrite.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: "rewritten.example"}
	ws := toCluster("outbound|9080|v2|reviews.default.svc.cluster.local")
	ws.UpgradeConfigs = []*routev3.RouteAction_UpgradeConfig{{UpgradeType: "websocket"}}
	rc := &routev3.RouteConfiguration{Name: "9080", VirtualHosts: []*routev3.VirtualHost{{
		Name: "reviews.default.svc.cluster.local:9080", Domains: []string{"reviews", "reviews:9080", "reviews.default.svc.cluster.local"},
		Routes: []*routev3.Route{
			{Name: "jason", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
				Headers: []*routev3.HeaderMatcher{{Name: "end-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: "jason"}}}},
				Action: &routev3.Route_Route{Route: toCluster("outbound|9080|v2|reviews.default.svc.cluster.local")}},
			route("retry", "/retry", retry),
			route("timeout", "/timeout", timeout),
			route("empty", "/empty", toCluster("outbound|9080|empty|reviews.default.svc.cluster.local")),
			route("dead", "/dead", toCluster("outbound|9080|dead|reviews.default.svc.cluster.local")),
			route("nocluster", "/nocluster", toCluster("outbound|9080|missing|reviews.default.svc.cluster.local")),
			route("cb", "/cb", toCluster("outbound|9080|cb|reviews.default.svc.cluster.local")),
			route("mirror", "/mirror", mirror),
			route("rewrite", "/old/", rewrite),
			route("ws", "/ws", ws),
			{Name: "abort", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/abort"}},
				TypedPerFilterConfig: map[string]*anypb.Any{"envoy.filters.http.fault": faultAny(0, 418)},
				Action:               &routev3.Route_Route{Route: toCluster("outbound|9080|v1|reviews.default.svc.cluster.local")}},
			{Name: "delay", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/delay"}},
				TypedPerFilterConfig: map[string]*anypb.Any{"envoy.filters.http.fault": faultAny(50*time.Millisecond, 0)},
				Action:               &routev3.Route_Route{Route: toCluster("outbound|9080|v1|reviews.default.svc.cluster.local")}},
			route("default", "/", toCluster("outbound|9080|v1|reviews.default.svc.cluster.local")),
		},
	}}}
	res.Routes = []*routev3.RouteConfiguration{rc}
	hcm := xdstest.HCM("outbound_0.0.0.0_9080", "9080")
	res.Listeners = []*listenerv3.Listener{xdstest.HTTPListener("0.0.0.0_9080", addr, hcm)}
	return res
}

func backends(t *testing.T) map[string]*backend {
	var flaky atomic.Int64
	return map[string]*backend{
		"v1": newBackend(t, "v1", nil),
		"v2": newBackend(t, "v2", func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Upgrade") == "websocket" {
				conn, brw, err := http.NewResponseController(w).Hijack()
				if err != nil {
					return
				}
				defer conn.Close()
				brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
				brw.Flush()
				line, _ := brw.ReadString('\n')
				brw.WriteString("echo:" + line)
				brw.Flush()
				return
			}
			fmt.Fprint(w, "v2")
		}),
		"flaky": newBackend(t, "flaky", func(w http.ResponseWriter, r *http.Request) {
			if flaky.Add(1)%3 != 0 {
				w.WriteHeader(503)
				return
			}
			fmt.Fprint(w, "ok after retries")
		}),
		"slow": newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
			// /timeout (route timeout 100ms) is answered only once the
			// proxy gives up, however late its timer fires; /cb holds its
			// connection long enough for the concurrent requests to meet
			// even when their goroutines start late.
			hold := 20 * time.Second
			if r.URL.Path == "/cb" {
				hold = time.Second
			}
			select {
			case <-time.After(hold):
			case <-r.Context().Done():
			}
			fmt.Fprint(w, "slow")
		}),
		"shadow": newBackend(t, "shadow", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Seen-Host", r.Host)
			shadowHosts <- r.Host
		}),
	}
}

var shadowHosts = make(chan string, 16)

func deadAddr(t *testing.T) string {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	a := l.Addr().String()
	l.Close()
	return a
}

func TestHTTPRoutingEndToEnd(t *testing.T) {
	b := backends(t)
	lis := xdstest.FreeAddr(t)
	h := newHarness(t, bookinfo(lis, b, deadAddr(t)))
	base := "http://" + lis

	cases := []struct {
		name, path string
		hdr        []string
		status     int
		body       string
	}{
		{"default route", "/reviews/0", nil, 200, "v1 reviews:9080 /reviews/0"},
		{"header match", "/reviews/0", []string{"end-user", "jason"}, 200, "v2"},
		{"retry 5xx", "/retry", nil, 200, "ok after retries"},
		{"route timeout", "/timeout", nil, 504, "upstream request timeout"},
		{"no healthy upstream", "/empty", nil, 503, "no healthy upstream"},
		{"connect failure", "/dead", nil, 503, "upstream connect error or disconnect/reset before headers. reset reason: connection failure"},
		{"no cluster", "/nocluster", nil, 503, ""},
		{"fault abort", "/abort", nil, 418, "fault filter abort"},
		{"fault delay", "/delay", nil, 200, "v1 reviews:9080 /delay"},
		{"prefix and host rewrite", "/old/x?q=1", nil, 200, "v1 rewritten.example /new/x?q=1"},
	}
	for _, c := range cases {
		hdr := append([]string{"Host", "reviews:9080"}, c.hdr...)
		status, body, _ := get(t, base+c.path, hdr...)
		if status != c.status || body != c.body {
			t.Errorf("%s: got %d %q, want %d %q", c.name, status, body, c.status, c.body)
		}
	}
	if status, _, _ := get(t, base+"/", "Host", "ratings:9080"); status != 404 {
		t.Errorf("unknown host: %d, want 404 NR", status)
	}

	// Mirroring: the shadow sees Host with -shadow appended.
	get(t, base+"/mirror", "Host", "reviews:9080")
	select {
	case host := <-shadowHosts:
		if host != "reviews-shadow:9080" {
			t.Errorf("shadow host %q", host)
		}
	case <-time.After(20 * time.Second):
		t.Error("mirror never arrived")
	}

	// Circuit breaker: 1 connection + 1 pending; a third concurrent request overflows.
	var wg sync.WaitGroup
	codes := make(chan int, 6)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, _, _ := get(t, base+"/cb", "Host", "reviews:9080")
			codes <- s
		}()
	}
	wg.Wait()
	close(codes)
	var n503 int
	for c := range codes {
		if c == 503 {
			n503++
		}
	}
	if n503 == 0 {
		t.Error("no 503 UO from the circuit breaker")
	}
	stats := adminGet(t, h.p.Addr("admin"), "/stats")
	if !strings.Contains(stats, "cluster.outbound|9080|cb|reviews.default.svc.cluster.local.upstream_rq_pending_overflow: ") ||
		strings.Contains(stats, "cluster.outbound|9080|cb|reviews.default.svc.cluster.local.upstream_rq_pending_overflow: 0\n") {
		t.Errorf("pending overflow not counted:\n%s", grep(stats, "cb|"))
	}
	if !strings.Contains(stats, "cluster.outbound|9080|flaky|reviews.default.svc.cluster.local.upstream_rq_retry: 2") {
		t.Errorf("retries not counted:\n%s", grep(stats, "flaky"))
	}

	// Istio metrics on the stats port carry the endpoint's peer labels.
	prom := adminGet(t, h.p.Addr("stats"), "/stats/prometheus")
	want := `istio_requests_total{reporter="source",source_workload="productpage-v1",source_workload_namespace="default",source_principal="spiffe://cluster.local/ns/default/sa/bookinfo-productpage",source_app="productpage",source_version="v1",source_canonical_service="productpage",source_canonical_revision="v1",source_cluster="Kubernetes",destination_workload="reviews-v1",destination_workload_namespace="default",destination_principal="unknown",destination_app="reviews",destination_version="v1",destination_service="reviews.default.svc.cluster.local",destination_service_name="reviews",destination_service_namespace="default",destination_canonical_service="reviews",destination_canonical_revision="v1",destination_cluster="Kubernetes",request_protocol="http",response_flags="-",connection_security_policy="unknown",response_code="200",grpc_response_status=""}`
	if !strings.Contains(prom, want) {
		t.Errorf("istio_requests_total series missing; got:\n%s", grep(prom, "istio_requests_total"))
	}
	if !strings.Contains(prom, `response_flags="UH"`) || !strings.Contains(prom, `response_flags="UT"`) || !strings.Contains(prom, `response_flags="UF"`) || !strings.Contains(prom, `response_flags="FI"`) {
		t.Errorf("response flags missing:\n%s", grep(prom, "istio_requests_total"))
	}

	// Admin.
	if s := adminGet(t, h.p.Addr("ready"), "/healthz/ready"); s != "LIVE\n" {
		t.Errorf("ready: %q", s)
	}
	if dump := adminGet(t, h.p.Addr("admin"), "/config_dump"); !strings.Contains(dump, `"0.0.0.0_9080"`) || !strings.Contains(dump, "ClustersConfigDump") {
		t.Errorf("config_dump lacks the listener")
	}
	if cl := adminGet(t, h.p.Addr("admin"), "/clusters"); !strings.Contains(cl, "outbound|9080|v1|reviews.default.svc.cluster.local::"+b["v1"].addr()+"::health_flags::healthy") {
		t.Errorf("/clusters:\n%s", cl)
	}
}

func adminGet(t *testing.T, addr, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestH2CAndWebSocket(t *testing.T) {
	b := backends(t)
	lis := xdstest.FreeAddr(t)
	newHarness(t, bookinfo(lis, b, deadAddr(t)))

	// h2c with prior knowledge.
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, n, a string, _ *tls.Config) (net.Conn, error) {
		return net.Dial(n, a)
	}}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "http://"+lis+"/reviews/1", nil)
	req.Host = "reviews:9080"
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || string(body) != "v1 reviews:9080 /reviews/1" {
		t.Fatalf("h2c: proto %d body %q", resp.ProtoMajor, body)
	}

	// WebSocket upgrade passthrough.
	c, err := net.Dial("tcp", lis)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "GET /ws HTTP/1.1\r\nHost: reviews:9080\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(c)
	wsResp, err := http.ReadResponse(br, nil)
	if err != nil || wsResp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", wsResp, err)
	}
	fmt.Fprint(c, "hello\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := br.ReadString('\n')
	if err != nil || line != "echo:hello\n" {
		t.Fatalf("websocket echo %q %v", line, err)
	}
}

func TestConfigUpdateAndTCPProxy(t *testing.T) {
	b := backends(t)
	lis := xdstest.FreeAddr(t)
	res := bookinfo(lis, b, deadAddr(t))
	h := newHarness(t, res)

	// Switch the default route to v2: applied without restarting listeners.
	res.Routes[0].VirtualHosts[0].Routes[len(res.Routes[0].VirtualHosts[0].Routes)-1].Action =
		&routev3.Route_Route{Route: toCluster("outbound|9080|v2|reviews.default.svc.cluster.local")}
	// And add a tcp_proxy listener to an echo server.
	echoAddr, _ := echoServer(t)
	tcpLis := xdstest.FreeAddr(t)
	res.Clusters = append(res.Clusters, xdstest.StaticCluster("outbound|7000||echo.default.svc.cluster.local", echoAddr))
	res.Listeners = append(res.Listeners, xdstest.TCPListener("0.0.0.0_7000", tcpLis, "outbound|7000||echo.default.svc.cluster.local"))
	// Istio-style virtual listener: not bound, reached by port (forward proxy, original dst).
	virt := xdstest.HTTPListener("virtual_9080", "0.0.0.0:9080", xdstest.HCM("outbound_0.0.0.0_9080", "9080"))
	virt.BindToPort = wrapperspb.Bool(false)
	res.Listeners = append(res.Listeners, virt)
	h.push(res)
	waitFor(t, "route switch", func() bool {
		_, body, _ := get(t, "http://"+lis+"/x", "Host", "reviews:9080")
		return body == "v2"
	})
	c, err := net.Dial("tcp", tcpLis)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "ping\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("tcp echo %q %v", line, err)
	}
	c.Close()
	// Istio TCP metrics: opened, closed and bytes, request_protocol tcp.
	// The series exists from the open; the close (with bytes) follows the
	// connection teardown.
	waitFor(t, "istio_tcp_sent_bytes_total", func() bool {
		return strings.Contains(adminGet(t, h.p.Addr("stats"), "/stats/prometheus"), `connection_security_policy="unknown"} 5`)
	})
	prom := adminGet(t, h.p.Addr("stats"), "/stats/prometheus")
	for _, want := range []string{
		`destination_service="echo.default.svc.cluster.local",destination_service_name="echo",destination_service_namespace="default",destination_canonical_service="unknown",destination_canonical_revision="latest",destination_cluster="unknown",request_protocol="tcp",response_flags="-",connection_security_policy="unknown"} 5`,
		`istio_tcp_connections_opened_total{reporter="source"`,
	} {
		if !strings.Contains(prom, want) {
			t.Errorf("missing %q in:\n%s", want, grep(prom, "istio_tcp"))
		}
	}

	// Forward proxy mode: absolute-form request routed by port and Host.
	proxyURL := "http://" + h.p.Addr("forward")
	fc := &http.Client{Transport: &http.Transport{Proxy: func(*http.Request) (*url.URL, error) { return url.Parse(proxyURL) }}}
	resp, err := fc.Get("http://reviews:9080/fwd")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "v2" {
		t.Fatalf("forward proxy: %d %q", resp.StatusCode, body)
	}

	// A bad listener is NACKed and the running config keeps serving.
	bad := proto.Clone(res.Listeners[0]).(*listenerv3.Listener)
	bad.ListenerFilters = []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.proxy_protocol"}}
	res2 := res
	res2.Listeners = []*listenerv3.Listener{bad, res.Listeners[1], res.Listeners[2]}
	h.push(res2)
	waitFor(t, "NACK", func() bool { return len(h.cp.NACKs()) > 0 })
	if n := h.cp.NACKs()[0]; !strings.Contains(n, `listener 0.0.0.0_9080.listener_filters[0]: unsupported listener filter "envoy.filters.listener.proxy_protocol"`) {
		t.Fatalf("NACK reason %q", n)
	}
	if _, body, _ := get(t, "http://"+lis+"/x", "Host", "reviews:9080"); body != "v2" {
		t.Fatalf("after NACK: %q", body)
	}
}

type (
	clusterT = clusterv3.Cluster
	routeT   = routev3.RouteConfiguration
)
