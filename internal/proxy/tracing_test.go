package proxy

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weftmesh/weft/internal/proxy/bootstrap"
	"github.com/weftmesh/weft/internal/proxy/tracing"
	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

// otlpCollector is a real OTLP/HTTP JSON receiver: it decodes every
// ExportTraceServiceRequest posted to /v1/traces.
type otlpCollector struct {
	*httptest.Server
	mu      sync.Mutex
	spans   []tracing.Span
	service []string
	bad     []string
}

func newOTLPCollector(t *testing.T) *otlpCollector {
	c := &otlpCollector{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if r.URL.Path != "/v1/traces" || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			c.bad = append(c.bad, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		var req tracing.ExportRequest
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			c.bad = append(c.bad, err.Error())
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, rs := range req.ResourceSpans {
			name, _ := tracing.Lookup(rs.Resource.Attributes, "service.name")
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					c.spans = append(c.spans, s)
					c.service = append(c.service, name)
				}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{}`))
	}))
	t.Cleanup(c.Close)
	return c
}

// waitSpan waits for the span of traceID.
func (c *otlpCollector) waitSpan(t *testing.T, traceID string) (tracing.Span, string) {
	t.Helper()
	var found tracing.Span
	var svc string
	waitFor(t, "span of trace "+traceID, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, s := range c.spans {
			if s.TraceID == traceID {
				found, svc = s, c.service[i]
				return true
			}
		}
		return false
	})
	return found, svc
}

func (c *otlpCollector) all() []tracing.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.bad) > 0 {
		panic("collector rejected exports: " + strings.Join(c.bad, "; "))
	}
	return append([]tracing.Span(nil), c.spans...)
}

// tracedProxy runs a proxy with tracing to col at sampling percent, one
// HTTP listener routing /fail to an inbound cluster (503) and the rest
// to an outbound one; the upstream (upstreamAddr if given, else a local
// server) records the headers it received.
func tracedProxy(t *testing.T, col *otlpCollector, sampling float64, upstreamAddr ...string) (addr string, seen func() http.Header, p *Proxy) {
	t.Helper()
	var mu sync.Mutex
	var last http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		last = r.Header.Clone()
		mu.Unlock()
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(up.Close)
	upAddr := strings.TrimPrefix(up.URL, "http://")
	if len(upstreamAddr) > 0 {
		upAddr = upstreamAddr[0] // another proxy
	}
	const out, in = "outbound|9080|v1|reviews.default.svc.cluster.local", "inbound|9080||"
	rc := xdstest.RouteConfig("9080", out)
	rc.VirtualHosts[0].Routes = append([]*routev3.Route{route("fail", "/fail", toCluster(in))}, rc.VirtualHosts[0].Routes...)
	addr = xdstest.FreeAddr(t)
	res := xdstest.Resources{
		Clusters:  []*clusterv3.Cluster{xdstest.StaticCluster(out, upAddr), xdstest.StaticCluster(in, upAddr)},
		Routes:    []*routev3.RouteConfiguration{rc},
		Listeners: []*listenerv3.Listener{xdstest.HTTPListener("0.0.0.0_9080", addr, xdstest.HCM("outbound_0.0.0.0_9080", "9080"))},
	}
	h := &harness{t: t, cp: xdstest.NewServer(t, "127.0.0.1:0")}
	h.push(res)
	cfg := bootstrap.Default()
	cfg.XDSAddress = h.cp.Addr
	cfg.Node = bootstrap.Node{ID: nodeID, Cluster: "Kubernetes", Namespace: "default", Workload: "productpage-v1",
		Labels: map[string]string{"app": "productpage", "version": "v1"}, ServiceAccount: "bookinfo-productpage"}
	cfg.AdminAddress, cfg.ReadyAddress, cfg.StatsAddress = "127.0.0.1:0", "", ""
	cfg.Tracing = bootstrap.Tracing{OTLPURL: col.URL + "/v1/traces", Sampling: sampling}
	p, err := New(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	h.p = p
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	h.waitReady()
	waitFor(t, "listener", func() bool { return p.ListenerAddr(addr) != "" })
	return addr, func() http.Header {
		mu.Lock()
		defer mu.Unlock()
		return last
	}, p
}

func attr(t *testing.T, s tracing.Span, k string) string {
	t.Helper()
	v, ok := tracing.Lookup(s.Attributes, k)
	if !ok {
		t.Errorf("span %s has no attribute %s", s.Name, k)
	}
	return v
}

func TestTracingW3CJoinsTrace(t *testing.T) {
	col := newOTLPCollector(t)
	addr, seen, p := tracedProxy(t, col, 1)
	const trace, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	code, _, _ := get(t, "http://"+addr+"/productpage?u=normal", "Host", "reviews:9080",
		"traceparent", "00-"+trace+"-"+parent+"-01", "tracestate", "vendor=x", "User-Agent", "trace-test")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	got := seen()
	tid, sid, sampled, ok := tracing.ParseTraceparent(got.Get("traceparent"))
	if !ok || tid.String() != trace || sid.String() == parent || !sampled {
		t.Fatalf("upstream traceparent %q: want trace %s, a new parent id, sampled", got.Get("traceparent"), trace)
	}
	if got.Get("tracestate") != "vendor=x" || got.Get("x-b3-traceid") != "" {
		t.Fatalf("upstream tracestate %q, b3 %q", got.Get("tracestate"), got.Get("x-b3-traceid"))
	}
	s, svc := col.waitSpan(t, trace)
	if s.ParentSpanID != parent || s.SpanID != sid.String() || s.Kind != tracing.KindClient || s.TraceState != "vendor=x" {
		t.Fatalf("span ids/kind: %+v", s)
	}
	if s.Name != "reviews.default.svc.cluster.local:9080/*" || svc != "productpage.default" {
		t.Errorf("span name %q, service %q", s.Name, svc)
	}
	want := map[string]string{
		"http.method": "GET", "http.status_code": "200", "upstream_cluster": "outbound|9080|v1|reviews.default.svc.cluster.local",
		"response_flags": "-", "node_id": nodeID, "component": "proxy", "istio.canonical_service": "productpage",
		"istio.canonical_revision": "v1", "istio.namespace": "default", "http.url": "http://reviews:9080/productpage?u=normal",
		"guid:x-request-id": got.Get("x-request-id"), "user_agent": "trace-test", "http.protocol": "HTTP/1.1",
	}
	for k, v := range want {
		if g := attr(t, s, k); g != v {
			t.Errorf("attribute %s = %q, want %q", k, g, v)
		}
	}
	if got.Get("x-request-id") == "" {
		t.Error("no x-request-id upstream")
	}
	waitFor(t, "spans_sent stat", func() bool {
		return strings.Contains(adminGet(t, p.Addr("admin"), "/stats?filter=tracing"), "tracing.opentelemetry.spans_sent: 1\n")
	})
	st, err := strconv.ParseInt(s.StartTimeUnixNano, 10, 64)
	en, err2 := strconv.ParseInt(s.EndTimeUnixNano, 10, 64)
	if err != nil || err2 != nil || en < st || time.Since(time.Unix(0, st)) > time.Minute {
		t.Errorf("span times %s..%s", s.StartTimeUnixNano, s.EndTimeUnixNano)
	}
}

func TestTracingB3(t *testing.T) {
	col := newOTLPCollector(t)
	addr, seen, _ := tracedProxy(t, col, 0) // the caller's decision wins over 0%
	get(t, "http://"+addr+"/", "Host", "reviews:9080", "x-b3-traceid", "463ac35c9f6413ad", "x-b3-spanid", "a2fb4a1d1a96d312", "x-b3-sampled", "1", "x-request-id", "rid-1")
	got := seen()
	if got.Get("x-b3-traceid") != "463ac35c9f6413ad" || got.Get("x-b3-parentspanid") != "a2fb4a1d1a96d312" ||
		got.Get("x-b3-spanid") == "a2fb4a1d1a96d312" || len(got.Get("x-b3-spanid")) != 16 || got.Get("x-b3-sampled") != "1" || got.Get("traceparent") != "" {
		t.Fatalf("upstream b3: %v", got)
	}
	if got.Get("x-request-id") != "rid-1" {
		t.Fatalf("x-request-id %q: an incoming id is kept", got.Get("x-request-id"))
	}
	s, _ := col.waitSpan(t, "0000000000000000463ac35c9f6413ad")
	if s.ParentSpanID != "a2fb4a1d1a96d312" || s.SpanID != got.Get("x-b3-spanid") || attr(t, s, "guid:x-request-id") != "rid-1" {
		t.Fatalf("span %+v", s)
	}

	// Single-header b3 in, single b3 out.
	get(t, "http://"+addr+"/", "Host", "reviews:9080", "b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")
	b3 := strings.Split(seen().Get("b3"), "-")
	if len(b3) != 4 || b3[0] != "80f198ee56343ba864fe8b2a57d3eff7" || b3[1] == "e457b5a2e4d86bd1" || b3[2] != "1" || b3[3] != "e457b5a2e4d86bd1" {
		t.Fatalf("upstream b3 %q", seen().Get("b3"))
	}
	col.waitSpan(t, "80f198ee56343ba864fe8b2a57d3eff7")
}

func TestTracingNewTraceSampled(t *testing.T) {
	col := newOTLPCollector(t)
	addr, seen, _ := tracedProxy(t, col, 100)
	get(t, "http://"+addr+"/", "Host", "reviews:9080")
	got := seen()
	tid, sid, sampled, ok := tracing.ParseTraceparent(got.Get("traceparent"))
	if !ok || !sampled || got.Get("x-b3-traceid") != tid.String() || got.Get("x-b3-spanid") != sid.String() || got.Get("x-b3-sampled") != "1" {
		t.Fatalf("new trace not propagated in W3C and B3: %v", got)
	}
	s, _ := col.waitSpan(t, tid.String())
	if s.ParentSpanID != "" || s.SpanID != sid.String() {
		t.Fatalf("root span %+v", s)
	}
	// An inbound request answered 503 is a SERVER span marked as error.
	if code, _, _ := get(t, "http://"+addr+"/fail", "Host", "reviews:9080"); code != 503 {
		t.Fatalf("/fail: %d", code)
	}
	tid, _, _, _ = tracing.ParseTraceparent(seen().Get("traceparent"))
	s, _ = col.waitSpan(t, tid.String())
	if s.Kind != tracing.KindServer || s.Status.Code != tracing.StatusError || attr(t, s, "error") != "true" || attr(t, s, "http.status_code") != "503" {
		t.Fatalf("inbound failing span %+v", s)
	}
}

func TestTracingUnsampled(t *testing.T) {
	col := newOTLPCollector(t)
	addr, seen, _ := tracedProxy(t, col, 0)
	for range 20 {
		get(t, "http://"+addr+"/", "Host", "reviews:9080")
		got := seen()
		if got.Get("x-request-id") == "" {
			t.Fatal("x-request-id not set on an unsampled request")
		}
		if _, _, sampled, ok := tracing.ParseTraceparent(got.Get("traceparent")); !ok || sampled {
			t.Fatalf("unsampled traceparent %q", got.Get("traceparent"))
		}
	}
	// A sampled request afterwards is the only span exported: exports are
	// ordered, so once it arrives none of the 20 can still be pending.
	const trace = "11111111111111111111111111111111"
	get(t, "http://"+addr+"/", "Host", "reviews:9080", "traceparent", "00-"+trace+"-2222222222222222-01")
	col.waitSpan(t, trace)
	if n := len(col.all()); n != 1 {
		t.Fatalf("%d spans exported at 0%% sampling, want only the caller-sampled one", n)
	}
}

func TestTracingMalformedTraceparent(t *testing.T) {
	col := newOTLPCollector(t)
	addr, seen, _ := tracedProxy(t, col, 100)
	for _, bad := range []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "zz-" + strings.Repeat("x", 60), "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "\xff\xfe", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"} {
		code, _, _ := get(t, "http://"+addr+"/", "Host", "reviews:9080", "traceparent", bad, "tracestate", "stale=1")
		if code != 200 {
			t.Fatalf("traceparent %q: status %d", bad, code)
		}
		got := seen()
		tid, _, sampled, ok := tracing.ParseTraceparent(got.Get("traceparent"))
		if !ok || !sampled || strings.Contains(bad, tid.String()) || got.Get("tracestate") != "" {
			t.Fatalf("traceparent %q: upstream got %q tracestate %q, want a fresh sampled trace", bad, got.Get("traceparent"), got.Get("tracestate"))
		}
		if s, _ := col.waitSpan(t, tid.String()); s.ParentSpanID != "" {
			t.Fatalf("new trace has parent %s", s.ParentSpanID)
		}
	}
}

// TestTracingTwoProxies chains two proxies: each exports its own span of
// the same trace, the second one's parent being the first one's span.
func TestTracingTwoProxies(t *testing.T) {
	col := newOTLPCollector(t)
	second, seen, _ := tracedProxy(t, col, 0)
	first, _, _ := tracedProxy(t, col, 100, second)
	if code, _, _ := get(t, "http://"+first+"/", "Host", "reviews:9080"); code != 200 {
		t.Fatalf("status %d", code)
	}
	tid, sid, sampled, ok := tracing.ParseTraceparent(seen().Get("traceparent"))
	if !ok || !sampled {
		t.Fatalf("upstream traceparent %q", seen().Get("traceparent"))
	}
	var spans []tracing.Span
	waitFor(t, "two spans", func() bool {
		spans = nil
		for _, s := range col.all() {
			if s.TraceID == tid.String() {
				spans = append(spans, s)
			}
		}
		return len(spans) == 2
	})
	byID := map[string]tracing.Span{spans[0].SpanID: spans[0], spans[1].SpanID: spans[1]}
	last, ok := byID[sid.String()]
	if !ok {
		t.Fatalf("no span is the upstream's parent %s: %+v", sid, spans)
	}
	firstSpan, ok := byID[last.ParentSpanID]
	if !ok || firstSpan.ParentSpanID != "" || firstSpan.SpanID == last.SpanID {
		t.Fatalf("second proxy's span %+v is not the child of the first's root span (%+v)", last, spans)
	}
}
