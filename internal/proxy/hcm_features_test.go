package proxy

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	xffv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/original_ip_detection/xff/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/bootstrap"
	"github.com/weftmesh/weft/internal/proxy/tracing"
	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

// headerRecorder is an upstream that records the request headers it got.
type headerRecorder struct {
	*httptest.Server
	mu   sync.Mutex
	last http.Header
}

func newHeaderRecorder(t *testing.T) *headerRecorder {
	r := &headerRecorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.last = req.Header.Clone()
		r.mu.Unlock()
		w.Write([]byte("ok"))
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *headerRecorder) seen() http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// hcmProxy runs one proxy with a listener per connection manager in
// hcms, all routing to one upstream; it returns the listeners' addresses.
func hcmProxy(t *testing.T, up string, edit func(*bootstrap.Config), hcms ...*hcmv3.HttpConnectionManager) []string {
	t.Helper()
	const cluster = "outbound|9080||reviews.default.svc.cluster.local"
	res := xdstest.Resources{
		Clusters: []*clusterv3.Cluster{xdstest.StaticCluster(cluster, up)},
		Routes:   []*routev3.RouteConfiguration{xdstest.RouteConfig("9080", cluster)},
	}
	var addrs []string
	for i, h := range hcms {
		a := xdstest.FreeAddr(t)
		addrs = append(addrs, a)
		res.Listeners = append(res.Listeners, xdstest.HTTPListener("l"+string(rune('a'+i)), a, h))
	}
	if edit == nil {
		edit = func(*bootstrap.Config) {}
	}
	h := newHarnessWith(t, res, edit)
	for _, a := range addrs {
		waitFor(t, "listener "+a, func() bool { return h.p.ListenerAddr(a) != "" })
	}
	return addrs
}

func hcmWith(f func(*hcmv3.HttpConnectionManager)) *hcmv3.HttpConnectionManager {
	h := xdstest.HCM("outbound_0.0.0.0_9080", "9080")
	f(h)
	return h
}

// TestHCMForwardedFor checks Envoy's X-Forwarded-For handling through a
// proxy: use_remote_address (append, x-envoy-external-address, untrusted
// x-forwarded-proto overwritten, internal-only headers removed),
// xff_num_trusted_hops, skip_xff_append, internal_address_config and
// the XFF original IP detection extension; and, with the default
// use_remote_address false, that XFF is left alone and its last address
// decides x-envoy-internal and the access log's downstream_remote_address.
func TestHCMForwardedFor(t *testing.T) {
	up := newHeaderRecorder(t)
	noneInternal := &hcmv3.HttpConnectionManager_InternalAddressConfig{} // no address is internal
	logPath := filepath.Join(t.TempDir(), "access.log")
	addrs := hcmProxy(t, strings.TrimPrefix(up.URL, "http://"), func(c *bootstrap.Config) { c.AccessLog = logPath },
		// 0: edge, no trusted hops.
		hcmWith(func(h *hcmv3.HttpConnectionManager) {
			h.UseRemoteAddress = wrapperspb.Bool(true)
			h.InternalAddressConfig = noneInternal
		}),
		// 1: edge behind two trusted proxies.
		hcmWith(func(h *hcmv3.HttpConnectionManager) {
			h.UseRemoteAddress = wrapperspb.Bool(true)
			h.XffNumTrustedHops = 2
			h.InternalAddressConfig = noneInternal
		}),
		// 2: edge, skip_xff_append.
		hcmWith(func(h *hcmv3.HttpConnectionManager) {
			h.UseRemoteAddress = wrapperspb.Bool(true)
			h.SkipXffAppend = true
			h.InternalAddressConfig = noneInternal
		}),
		// 3: edge with the default internal addresses (loopback is internal).
		hcmWith(func(h *hcmv3.HttpConnectionManager) { h.UseRemoteAddress = wrapperspb.Bool(true) }),
		// 4: Envoy's default: use_remote_address false.
		xdstest.HCM("outbound_0.0.0.0_9080", "9080"),
		// 5: the XFF extension trusting one hop.
		hcmWith(func(h *hcmv3.HttpConnectionManager) {
			h.OriginalIpDetectionExtensions = []*corev3.TypedExtensionConfig{{
				Name: "envoy.http.original_ip_detection.xff", TypedConfig: xdstest.Any(&xffv3.XffConfig{XffNumTrustedHops: 1}),
			}}
		}),
	)
	req := func(i int, hdr ...string) http.Header {
		t.Helper()
		if code, _, _ := get(t, "http://"+addrs[i]+"/p", append([]string{"Host", "reviews:9080"}, hdr...)...); code != 200 {
			t.Fatalf("listener %d: status %d", i, code)
		}
		return up.seen()
	}
	check := func(what string, h http.Header, key, want string) {
		t.Helper()
		if got := strings.Join(h.Values(key), "|"); got != want {
			t.Errorf("%s: upstream got %s %q, want %q", what, key, got, want)
		}
	}
	const xff = "203.0.113.128, 203.0.113.10, 203.0.113.1"

	h := req(0, "X-Forwarded-For", xff, "X-Envoy-Internal", "true", "X-Forwarded-Proto", "https", "X-Envoy-Retry-On", "5xx", "X-Envoy-Downstream-Service-Node", "forged")
	check("edge", h, "X-Forwarded-For", xff+",127.0.0.1")
	check("edge", h, "X-Envoy-External-Address", "127.0.0.1")
	check("edge", h, "X-Envoy-Internal", "")
	check("edge", h, "X-Forwarded-Proto", "http")
	check("edge", h, "X-Envoy-Retry-On", "")
	check("edge", h, "X-Envoy-Downstream-Service-Node", "")

	h = req(1, "X-Forwarded-For", xff, "X-Forwarded-Proto", "https")
	check("trusted hops", h, "X-Forwarded-For", xff+",127.0.0.1")
	check("trusted hops", h, "X-Envoy-External-Address", "203.0.113.10")
	check("trusted hops", h, "X-Forwarded-Proto", "https") // set by a trusted proxy

	h = req(2, "X-Forwarded-For", xff)
	check("skip_xff_append", h, "X-Forwarded-For", xff)
	check("skip_xff_append", h, "X-Envoy-External-Address", "127.0.0.1")

	h = req(3)
	check("internal edge", h, "X-Forwarded-For", "127.0.0.1")
	check("internal edge", h, "X-Envoy-Internal", "true")
	check("internal edge", h, "X-Envoy-External-Address", "")

	h = req(4, "X-Forwarded-For", "10.20.30.40", "X-Envoy-Retry-On", "5xx")
	check("mesh, internal XFF", h, "X-Forwarded-For", "10.20.30.40")
	check("mesh, internal XFF", h, "X-Envoy-Internal", "true")
	check("mesh, internal XFF", h, "X-Envoy-Retry-On", "5xx") // internal callers may
	check("mesh, internal XFF", h, "X-Envoy-External-Address", "")
	line := waitLine(t, logPath, "access log of the XFF request", func(m map[string]any) bool {
		return m["x_forwarded_for"] == "10.20.30.40"
	})
	if line["downstream_remote_address"] != "10.20.30.40:0" {
		t.Errorf("downstream_remote_address %v, want the trusted client address from XFF 10.20.30.40:0", line["downstream_remote_address"])
	}
	if v, ok := line["connection_termination_details"]; !ok || v != nil {
		t.Errorf("connection_termination_details %v (present %v), want null", v, ok)
	}

	h = req(4, "X-Forwarded-For", "203.0.113.5, 10.20.30.40", "X-Envoy-Internal", "true", "X-Envoy-Retry-On", "5xx")
	check("mesh, external XFF", h, "X-Forwarded-For", "203.0.113.5, 10.20.30.40")
	check("mesh, external XFF", h, "X-Envoy-Internal", "")
	check("mesh, external XFF", h, "X-Envoy-Retry-On", "")

	h = req(4, "X-Envoy-Internal", "true")
	check("mesh, no XFF", h, "X-Envoy-Internal", "")
	check("mesh, no XFF", h, "X-Forwarded-For", "")

	// One trusted hop: the second address from the right is the client;
	// with more than one address the request cannot be internal.
	h = req(5, "X-Forwarded-For", "10.1.2.3, 10.9.9.9")
	check("xff extension", h, "X-Forwarded-For", "10.1.2.3, 10.9.9.9")
	check("xff extension", h, "X-Envoy-Internal", "")
	waitLine(t, logPath, "access log of the XFF extension request", func(m map[string]any) bool {
		return m["x_forwarded_for"] == "10.1.2.3, 10.9.9.9" && m["downstream_remote_address"] == "10.1.2.3:0"
	})
}

// TestHCMTracingSettings checks that a connection manager's tracing
// settings take precedence over the proxy's sampling flag: random and
// overall sampling, client sampling (x-client-trace-id), custom tags and
// max_path_tag_length.
func TestHCMTracingSettings(t *testing.T) {
	col := newOTLPCollector(t)
	up := newHeaderRecorder(t)
	pct := func(v float64) *typev3.Percent { return &typev3.Percent{Value: v} }
	addrs := hcmProxy(t, strings.TrimPrefix(up.URL, "http://"), func(c *bootstrap.Config) {
		c.Tracing = bootstrap.Tracing{OTLPURL: col.URL + "/v1/traces", Sampling: 0}
	},
		// 0: random 100% although the proxy samples 0%; tags; short url tag.
		hcmWith(func(h *hcmv3.HttpConnectionManager) {
			h.Tracing = &hcmv3.HttpConnectionManager_Tracing{
				RandomSampling:   pct(100),
				MaxPathTagLength: wrapperspb.UInt32(20),
				CustomTags: []*tracingv3.CustomTag{
					{Tag: "team", Type: &tracingv3.CustomTag_Literal_{Literal: &tracingv3.CustomTag_Literal{Value: "reviews"}}},
					{Tag: "tenant", Type: &tracingv3.CustomTag_RequestHeader{RequestHeader: &tracingv3.CustomTag_Header{Name: "x-tenant", DefaultValue: "none"}}},
				},
			}
		}),
		// 1: random 100% but overall 0%.
		hcmWith(func(h *hcmv3.HttpConnectionManager) {
			h.Tracing = &hcmv3.HttpConnectionManager_Tracing{RandomSampling: pct(100), OverallSampling: pct(0)}
		}),
		// 2: random 0%, client sampling 100% (default).
		hcmWith(func(h *hcmv3.HttpConnectionManager) {
			h.Tracing = &hcmv3.HttpConnectionManager_Tracing{RandomSampling: pct(0)}
		}),
	)
	traceOf := func(i int, path string, hdr ...string) (string, bool) {
		t.Helper()
		get(t, "http://"+addrs[i]+path, append([]string{"Host", "reviews:9080"}, hdr...)...)
		tid, _, sampled, ok := tracing.ParseTraceparent(up.seen().Get("traceparent"))
		if !ok {
			t.Fatalf("listener %d: no traceparent upstream", i)
		}
		return tid.String(), sampled
	}

	tid, sampled := traceOf(0, "/a/very/long/path/indeed", "X-Tenant", "acme")
	if !sampled {
		t.Fatal("random_sampling 100% did not sample (the proxy flag's 0% won)")
	}
	s, _ := col.waitSpan(t, tid)
	if got := attr(t, s, "http.url"); got != "http://reviews:9080/" {
		t.Errorf("http.url %q, want it cut at max_path_tag_length 20", got)
	}
	if attr(t, s, "team") != "reviews" || attr(t, s, "tenant") != "acme" {
		t.Errorf("custom tags: team=%q tenant=%q", attr(t, s, "team"), attr(t, s, "tenant"))
	}
	tid, _ = traceOf(0, "/")
	s, _ = col.waitSpan(t, tid)
	if attr(t, s, "tenant") != "none" {
		t.Errorf("request_header tag without the header: %q, want the default", attr(t, s, "tenant"))
	}

	for range 10 {
		if _, sampled := traceOf(1, "/"); sampled {
			t.Fatal("overall_sampling 0% sampled a request")
		}
		if _, sampled := traceOf(2, "/"); sampled {
			t.Fatal("random_sampling 0% sampled a request")
		}
	}
	if _, sampled := traceOf(2, "/", "X-Client-Trace-Id", "abc"); !sampled {
		t.Fatal("x-client-trace-id with client_sampling 100% was not sampled")
	}
}
