package dataplane

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// telemetryBuckets are Istio's default request duration buckets (ms).
var telemetryBuckets = []string{"0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000",
	"10000", "30000", "60000", "300000", "600000", "1800000", "3600000", "+Inf"}

// TestTelemetryHTTPMetrics sends requests client sidecar -> server
// sidecar and reads both proxies' /stats/prometheus: istio_requests_total,
// the duration histogram with Istio's buckets and the byte metrics, with
// reporter source on the client and destination on the server and the
// peer labels filled from workload metadata.
func TestTelemetryHTTPMetrics(t *testing.T) {
	m := NewMesh(t)
	echo := m.AddService("echo", "http", "HTTP")
	w := m.AddWorkload(echo, "v1", BackendHTTP)
	client := m.StartClient("client")
	for range 3 {
		r := client.Get(t, echo.URL("/metrics-ok"))
		if r.Status != 200 {
			t.Fatalf("GET: %d %q", r.Status, r.Body)
		}
		// The sidecars exchange Istio's peer metadata headers; neither
		// the application nor the client sees them.
		for _, h := range []string{"X-Envoy-Peer-Metadata", "X-Envoy-Peer-Metadata-Id"} {
			if r.Echo == nil || r.Echo.Header.Get(h) != "" {
				t.Errorf("the application received %s (echo %+v)", h, r.Echo)
			}
			if r.Header.Get(h) != "" {
				t.Errorf("the client received %s: %q", h, r.Header.Get(h))
			}
		}
	}
	if r := client.Get(t, echo.URL("/metrics-err"), HeaderStatus, "418"); r.Status != 418 {
		t.Fatalf("GET with status 418: %d %q", r.Status, r.Body)
	}

	source := map[string]string{
		"source_workload": "client", "source_workload_namespace": Namespace, "source_app": "client", "source_version": "v1",
		"source_canonical_service": "client", "source_canonical_revision": "v1",
	}
	destination := map[string]string{
		"destination_workload": "echo-v1", "destination_workload_namespace": Namespace,
		"destination_app": "echo", "destination_version": "v1",
		"destination_canonical_service": "echo", "destination_canonical_revision": "v1",
		"destination_service_name": "echo", "destination_service_namespace": Namespace,
		"request_protocol": "http", "response_flags": "-",
	}
	// The client cannot know the connection's security: Istio reports
	// unknown there; the server saw plain text (the CA is off).
	t.Run("reporter source", func(t *testing.T) {
		want := telemetryWithLabels(source, destination, map[string]string{"reporter": "source", "connection_security_policy": "unknown",
			"destination_service": echo.Host})
		samples := telemetryWaitRequests(t, client, want)
		telemetryCheckHistograms(t, samples, telemetryWithLabel(want, "response_code", "200"))
	})
	t.Run("reporter destination", func(t *testing.T) {
		want := telemetryWithLabels(destination, map[string]string{"reporter": "destination", "connection_security_policy": "none"})
		samples := telemetryWaitRequests(t, w.Sidecar, want)
		telemetryCheckHistograms(t, samples, telemetryWithLabel(want, "response_code", "200"))
		series := extraFind(samples, "istio_requests_total", telemetryWithLabel(want, "response_code", "200"))
		t.Run("destination_service is the service host", func(t *testing.T) {
			got := series[0].Labels["destination_service"]
			// Istio's stats filter reads the host from the inbound
			// cluster's istio.services metadata.
			if got != echo.Host {
				t.Errorf("destination_service %q, want %s", got, echo.Host)
			}
		})
		t.Run("source peer labels", func(t *testing.T) {
			// From the client sidecar's x-envoy-peer-metadata.
			got := series[0].Labels
			for k, v := range source {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	})
}

// TestTelemetryPeerMetadataInterop plays an Istio Envoy client sidecar:
// it sends a request straight to the server sidecar with the
// x-envoy-peer-metadata headers Envoy's istio.metadata_exchange writes
// (base64 of a serialized google.protobuf.Struct of node metadata). The
// server sidecar strips them before the application, reports the
// client's labels as source labels and answers with its own metadata in
// the same encoding.
func TestTelemetryPeerMetadataInterop(t *testing.T) {
	m := NewMesh(t)
	echo := m.AddService("echo", "http", "HTTP")
	w := m.AddWorkload(echo, "v1", BackendHTTP)
	md, err := structpb.NewStruct(map[string]any{
		"NAME": "productpage-v1-7d9c", "NAMESPACE": "bookinfo", "WORKLOAD_NAME": "productpage-v1", "CLUSTER_ID": "Kubernetes",
		"SERVICE_ACCOUNT": "bookinfo-productpage", "MESH_ID": "cluster.local", "INSTANCE_IPS": "10.244.0.12",
		"OWNER":  "kubernetes://apis/apps/v1/namespaces/bookinfo/deployments/productpage-v1",
		"LABELS": map[string]any{"app": "productpage", "version": "v1", "service.istio.io/canonical-name": "productpage", "service.istio.io/canonical-revision": "v1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(md)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://"+net.JoinHostPort(w.Address, strconv.Itoa(echo.Port))+"/from-envoy", nil)
	req.Host = echo.Host
	req.Header.Set("X-Envoy-Peer-Metadata-Id", "sidecar~10.244.0.12~productpage-v1-7d9c.bookinfo~bookinfo.svc.cluster.local")
	req.Header.Set("X-Envoy-Peer-Metadata", base64.StdEncoding.EncodeToString(raw))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET via the server sidecar: %d %s", resp.StatusCode, body)
	}
	var e Echo
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("echo: %v: %s", err, body)
	}
	if e.Header.Get("X-Envoy-Peer-Metadata") != "" || e.Header.Get("X-Envoy-Peer-Metadata-Id") != "" {
		t.Errorf("the application received the peer metadata headers: %v", e.Header)
	}
	if resp.Header.Get("X-Envoy-Peer-Metadata-Id") == "" {
		t.Error("no x-envoy-peer-metadata-id in the response")
	}
	b, err := base64.StdEncoding.DecodeString(resp.Header.Get("X-Envoy-Peer-Metadata"))
	var got structpb.Struct
	if err == nil {
		err = proto.Unmarshal(b, &got)
	}
	if err != nil {
		t.Fatalf("response x-envoy-peer-metadata %q: %v", resp.Header.Get("X-Envoy-Peer-Metadata"), err)
	}
	f := got.GetFields()
	labels := f["LABELS"].GetStructValue().GetFields()
	if f["WORKLOAD_NAME"].GetStringValue() != w.Name || f["NAMESPACE"].GetStringValue() != Namespace ||
		labels["app"].GetStringValue() != "echo" || labels["service.istio.io/canonical-name"].GetStringValue() != "echo" ||
		labels["service.istio.io/canonical-revision"].GetStringValue() != "v1" {
		t.Errorf("server metadata %v", got.AsMap())
	}
	want := map[string]string{"reporter": "destination", "source_workload": "productpage-v1", "source_workload_namespace": "bookinfo",
		"source_app": "productpage", "source_version": "v1", "source_canonical_service": "productpage",
		"source_canonical_revision": "v1", "source_cluster": "Kubernetes", "destination_service": echo.Host, "response_code": "200"}
	eventually(t, "istio_requests_total of "+w.Sidecar.Name, func() error {
		samples := extraParseMetrics(t, w.Sidecar.Metrics(t))
		if n := extraSum(extraFind(samples, "istio_requests_total", want)); n != 1 {
			return fmt.Errorf("istio_requests_total%v = %v, want 1; all series:\n%s", want, n, telemetrySeries(samples, "istio_requests_total"))
		}
		return nil
	})
}

// telemetryWaitRequests waits until the proxy's istio_requests_total
// series with labels want count the test's three 200s and one 418, and
// returns the proxy's samples.
func telemetryWaitRequests(t *testing.T, p *Proxy, want map[string]string) []extraSample {
	t.Helper()
	var samples []extraSample
	eventually(t, "istio_requests_total of "+p.Name, func() error {
		samples = extraParseMetrics(t, p.Metrics(t))
		ok := extraFind(samples, "istio_requests_total", telemetryWithLabel(want, "response_code", "200"))
		teapot := extraFind(samples, "istio_requests_total", telemetryWithLabel(want, "response_code", "418"))
		if len(ok) != 1 || extraSum(ok) != 3 || extraSum(teapot) != 1 {
			return fmt.Errorf("istio_requests_total%v: 200 -> %v, 418 -> %v; all series:\n%s",
				want, extraSum(ok), extraSum(teapot), telemetrySeries(samples, "istio_requests_total"))
		}
		return nil
	})
	return samples
}

// telemetryCheckHistograms checks the duration histogram (Istio's
// buckets, cumulative counts) and the byte histograms of the series
// labelled want, which counts the three 200s.
func telemetryCheckHistograms(t *testing.T, samples []extraSample, want map[string]string) {
	t.Helper()
	buckets := extraFind(samples, "istio_request_duration_milliseconds_bucket", want)
	les := map[string]float64{}
	for _, b := range buckets {
		les[b.Labels["le"]] = b.Value
	}
	if len(buckets) != len(telemetryBuckets) {
		t.Errorf("%d duration buckets, want Istio's %d", len(buckets), len(telemetryBuckets))
	}
	prev := 0.0
	for _, le := range telemetryBuckets {
		v, ok := les[le]
		if !ok {
			continue
		}
		if v < prev {
			t.Errorf("bucket le=%s = %v < the previous bucket's %v: not cumulative", le, v, prev)
		}
		prev = v
	}
	if les["+Inf"] != 3 {
		t.Errorf("duration bucket +Inf = %v, want 3", les["+Inf"])
	}
	if c := extraSum(extraFind(samples, "istio_request_duration_milliseconds_count", want)); c != 3 {
		t.Errorf("istio_request_duration_milliseconds_count = %v, want 3", c)
	}
	if c := extraSum(extraFind(samples, "istio_request_bytes_count", want)); c != 3 {
		t.Errorf("istio_request_bytes_count = %v, want 3", c)
	}
	if s := extraSum(extraFind(samples, "istio_response_bytes_sum", want)); s < 3*100 {
		t.Errorf("istio_response_bytes_sum = %v, want at least the three echo bodies (> 100 bytes each)", s)
	}
	t.Run("bucket bounds as Envoy writes them", func(t *testing.T) {
		// Envoy formats le with {:.32g}: 1800000, not 1.8e+06.
		for le := range les {
			if strings.Contains(le, "e+") {
				t.Errorf("bucket bound le=%q in exponent form; Envoy writes integers in full", le)
			}
		}
		for _, le := range telemetryBuckets {
			if _, ok := les[le]; !ok {
				t.Errorf("no istio_request_duration_milliseconds_bucket{le=%q}", le)
			}
		}
	})
}

// telemetryWithLabels merges label sets.
func telemetryWithLabels(sets ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, s := range sets {
		for k, v := range s {
			out[k] = v
		}
	}
	return out
}

// telemetryWithLabel returns a copy of labels with k=v added.
func telemetryWithLabel(labels map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(labels)+1)
	for lk, lv := range labels {
		out[lk] = lv
	}
	out[k] = v
	return out
}

// telemetrySeries lists the samples named name, one a line, for messages.
func telemetrySeries(samples []extraSample, name string) string {
	var b strings.Builder
	for _, s := range extraFind(samples, name, nil) {
		fmt.Fprintf(&b, "  %v %v\n", s.Labels, s.Value)
	}
	return b.String()
}

// TestTelemetryTCPMetrics opens a TCP connection client sidecar -> server
// sidecar, sends and receives bytes and closes it: both proxies count it
// opened and closed and the bytes each way, with their reporter and the
// destination service.
func TestTelemetryTCPMetrics(t *testing.T) {
	m := NewMesh(t)
	svc := m.AddService("tcpecho", "tcp", "TCP")
	w := m.AddWorkload(svc, "v1", BackendTCP)
	client := m.StartClient("client")
	c, err := client.Dial(svc.HostPort())
	if err != nil {
		t.Fatal(err)
	}
	const msg = "hello over tcp\n"
	io.WriteString(c, msg)
	br := bufio.NewReader(c)
	for _, want := range []string{"tcpecho-v1\n", msg} {
		line, err := br.ReadString('\n')
		if err != nil || line != want {
			t.Fatalf("read %q, %v; want %q", line, err, want)
		}
	}
	c.Close()

	for _, side := range []struct {
		reporter string
		proxy    *Proxy
	}{{"source", client}, {"destination", w.Sidecar}} {
		t.Run("reporter "+side.reporter, func(t *testing.T) {
			want := map[string]string{"reporter": side.reporter, "destination_workload": "tcpecho-v1", "request_protocol": "tcp"}
			if side.reporter == "source" {
				// The server side knows no peer labels (see
				// TestTelemetryHTTPMetrics).
				want["source_workload"], want["destination_service"] = "client", svc.Host
			}
			// received: bytes from the downstream peer (the message);
			// sent: bytes to it (the instance line and the echo).
			wantSent := float64(len("tcpecho-v1\n") + len(msg))
			var received float64
			eventually(t, "TCP metrics of "+side.proxy.Name, func() error {
				samples := extraParseMetrics(t, side.proxy.Metrics(t))
				opened := extraSum(extraFind(samples, "istio_tcp_connections_opened_total", want))
				closed := extraSum(extraFind(samples, "istio_tcp_connections_closed_total", want))
				sent := extraSum(extraFind(samples, "istio_tcp_sent_bytes_total", want))
				received = extraSum(extraFind(samples, "istio_tcp_received_bytes_total", want))
				if opened != 1 || closed != 1 || sent != wantSent {
					return fmt.Errorf("opened %v closed %v sent %v (want 1 1 %v); series:\n%s%s", opened, closed, sent, wantSent,
						telemetrySeries(samples, "istio_tcp_connections_opened_total"), telemetrySeries(samples, "istio_tcp_sent_bytes_total"))
				}
				return nil
			})
			// Envoy counts every byte, those read to sniff the
			// protocol too.
			if received != float64(len(msg)) {
				t.Errorf("istio_tcp_received_bytes_total = %v, want %d", received, len(msg))
			}
		})
	}
}

// TestTelemetryAccessLog reads the client's JSON access log: Envoy's
// default fields for a routed request, and the response flags of a
// request with no route (NR) and one to a service without endpoints
// (UH).
func TestTelemetryAccessLog(t *testing.T) {
	m := NewMesh(t)
	echo := m.AddService("echo", "http", "HTTP")
	w := m.AddWorkload(echo, "v1", BackendHTTP)
	empty := m.AddService("empty", "http", "HTTP")
	m.Apply("empty.yaml", extraServiceYAML(empty))
	m.Apply("echo-vs.yaml", VirtualServiceYAML("echo", fmt.Sprintf(`hosts: [%[1]s]
http:
- name: only-api
  match: [{uri: {prefix: /api}}]
  route: [{destination: {host: %[1]s}}]
`, echo.Host)))
	client := m.StartClientWithAccessLog("client")

	if r := client.Get(t, echo.URL("/api/log?x=1"), "User-Agent", "telemetry-test"); r.Status != 200 {
		t.Fatalf("GET /api/log: %d %q", r.Status, r.Body)
	}
	if r := client.Get(t, echo.URL("/not-routed")); r.Status != 404 {
		t.Errorf("GET /not-routed: %d %q, want 404", r.Status, r.Body)
	}
	if r := client.Get(t, empty.URL("/no-endpoints")); r.Status != 503 {
		t.Errorf("GET /no-endpoints: %d %q, want 503", r.Status, r.Body)
	}

	e := client.WaitAccessLog(t, "/api/log?x=1")
	for _, f := range []string{"start_time", "method", "path", "protocol", "response_code", "response_flags",
		"response_code_details", "connection_termination_details", "upstream_transport_failure_reason",
		"bytes_received", "bytes_sent", "duration", "upstream_service_time", "x_forwarded_for", "user_agent",
		"request_id", "authority", "upstream_host", "upstream_cluster", "upstream_local_address",
		"downstream_local_address", "downstream_remote_address", "requested_server_name", "route_name"} {
		if _, ok := e[f]; !ok {
			t.Errorf("access log entry lacks Envoy's default field %q: %v", f, e)
		}
	}
	checks := map[string]any{
		"method": "GET", "protocol": "HTTP/1.1", "response_code": float64(200), "response_flags": "-",
		"response_code_details": "via_upstream", "user_agent": "telemetry-test", "authority": echo.HostPort(),
		"upstream_cluster": fmt.Sprintf("outbound|%d||%s", echo.Port, echo.Host),
		"upstream_host":    fmt.Sprintf("%s:%d", w.Address, echo.Port), "route_name": "only-api",
	}
	for k, want := range checks {
		if e[k] != want {
			t.Errorf("access log %s = %#v, want %#v", k, e[k], want)
		}
	}
	if b, _ := e["bytes_sent"].(float64); b < 100 {
		t.Errorf("bytes_sent = %v, want the echo body's size", e["bytes_sent"])
	}
	if id := e.Str("request_id"); len(id) < 16 {
		t.Errorf("request_id %q, want a generated id", id)
	}
	for path, flags := range map[string]string{"/not-routed": "NR", "/no-endpoints": "UH"} {
		if got := client.WaitAccessLog(t, path).Str("response_flags"); got != flags {
			t.Errorf("%s: response_flags %q, want %s", path, got, flags)
		}
	}
}

// telemetryCollector is an OTLP/HTTP test collector: it records the
// spans POSTed as JSON to /v1/traces.
type telemetryCollector struct {
	URL string

	mu    sync.Mutex
	spans []telemetrySpan
}

// telemetrySpan is the part of an OTLP span the tests read.
type telemetrySpan struct {
	TraceID      string `json:"traceId"`
	SpanID       string `json:"spanId"`
	ParentSpanID string `json:"parentSpanId"`
	Name         string `json:"name"`
	Kind         int    `json:"kind"`
}

func startTelemetryCollector(t *testing.T) *telemetryCollector {
	t.Helper()
	c := &telemetryCollector{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
			http.Error(w, "POST /v1/traces only", http.StatusNotFound)
			return
		}
		var req struct {
			ResourceSpans []struct {
				ScopeSpans []struct {
					Spans []telemetrySpan `json:"spans"`
				} `json:"scopeSpans"`
			} `json:"resourceSpans"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Errorf("collector: bad OTLP JSON (Content-Type %s): %v", r.Header.Get("Content-Type"), err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				c.spans = append(c.spans, ss.Spans...)
			}
		}
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
	}))
	t.Cleanup(srv.Close)
	c.URL = srv.URL + "/v1/traces"
	return c
}

// Spans returns the spans received so far.
func (c *telemetryCollector) Spans() []telemetrySpan {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]telemetrySpan(nil), c.spans...)
}

// waitTrace waits until a span of traceID has arrived and returns the
// spans received so far.
func (c *telemetryCollector) waitTrace(t *testing.T, traceID string) []telemetrySpan {
	t.Helper()
	var spans []telemetrySpan
	eventually(t, "a span of trace "+traceID+" at the collector", func() error {
		spans = c.Spans()
		for _, s := range spans {
			if s.TraceID == traceID {
				return nil
			}
		}
		return fmt.Errorf("%d spans, none of trace %s", len(spans), traceID)
	})
	return spans
}

// TestTelemetryTracing starts client sidecars exporting spans over
// OTLP/HTTP to a test collector. With sampling 100: a request without
// trace context starts a trace the backend sees in traceparent; incoming
// W3C traceparent and B3 headers are continued (same trace id, the
// proxy's span as parent) and the spans are exported. With sampling 0
// no span is exported, except for a request its caller marked sampled.
func TestTelemetryTracing(t *testing.T) {
	m := NewMesh(t)
	echo := m.AddService("echo", "http", "HTTP")
	m.AddWorkload(echo, "v1", BackendHTTP)
	collector := startTelemetryCollector(t)
	client := m.StartProxy(ProxyOptions{Name: "client", App: "client", Version: "v1", ServiceAccount: "client",
		Args: []string{"--tracing-otlp-url", collector.URL, "--tracing-sampling", "100"}})
	quiet := startTelemetryCollector(t)
	unsampled := m.StartProxy(ProxyOptions{Name: "unsampled", App: "unsampled", Version: "v1", ServiceAccount: "unsampled",
		Args: []string{"--tracing-otlp-url", quiet.URL, "--tracing-sampling", "0"}})
	m.Sync()

	t.Run("new trace", func(t *testing.T) {
		r := client.Get(t, echo.URL("/trace/new"))
		if r.Echo == nil {
			t.Fatalf("%d %q", r.Status, r.Body)
		}
		tp := r.Echo.Header.Get("Traceparent")
		parts := strings.Split(tp, "-")
		if len(parts) != 4 || parts[0] != "00" || len(parts[1]) != 32 || parts[3] != "01" {
			t.Fatalf("backend saw traceparent %q, want a sampled W3C trace context", tp)
		}
		spans := collector.waitTrace(t, parts[1])
		if !telemetryHasSpan(spans, parts[1], parts[2]) {
			t.Errorf("no exported span of trace %s has the id %s the backend saw as parent: %+v", parts[1], parts[2], spans)
		}
	})
	t.Run("W3C traceparent continued", func(t *testing.T) {
		const traceID, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
		r := client.Get(t, echo.URL("/trace/w3c"), "traceparent", "00-"+traceID+"-"+parent+"-01")
		if r.Echo == nil {
			t.Fatalf("%d %q", r.Status, r.Body)
		}
		parts := strings.Split(r.Echo.Header.Get("Traceparent"), "-")
		if len(parts) != 4 || parts[1] != traceID || parts[2] == parent {
			t.Fatalf("backend saw traceparent %q, want trace %s with the proxy's span as parent", r.Echo.Header.Get("Traceparent"), traceID)
		}
		spans := collector.waitTrace(t, traceID)
		for _, s := range spans {
			if s.TraceID == traceID && s.SpanID == parts[2] && s.ParentSpanID != parent {
				t.Errorf("proxy span %s has parent %q, want the caller's %s", s.SpanID, s.ParentSpanID, parent)
			}
		}
		if !telemetryHasSpan(spans, traceID, parts[2]) {
			t.Errorf("no exported span %s of trace %s: %+v", parts[2], traceID, spans)
		}
	})
	t.Run("B3 continued", func(t *testing.T) {
		const traceID, parent = "463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312"
		r := client.Get(t, echo.URL("/trace/b3"), "x-b3-traceid", traceID, "x-b3-spanid", parent, "x-b3-sampled", "1")
		if r.Echo == nil {
			t.Fatalf("%d %q", r.Status, r.Body)
		}
		h := r.Echo.Header
		if h.Get("X-B3-Traceid") != traceID || h.Get("X-B3-Spanid") == "" || h.Get("X-B3-Spanid") == parent ||
			h.Get("X-B3-Parentspanid") != parent || h.Get("X-B3-Sampled") != "1" {
			t.Fatalf("backend saw B3 trace %q span %q parent %q sampled %q, want trace %s, a new span, parent %s, sampled 1",
				h.Get("X-B3-Traceid"), h.Get("X-B3-Spanid"), h.Get("X-B3-Parentspanid"), h.Get("X-B3-Sampled"), traceID, parent)
		}
		spans := collector.waitTrace(t, traceID)
		if !telemetryHasSpan(spans, traceID, h.Get("X-B3-Spanid")) {
			t.Errorf("no exported span %s of trace %s: %+v", h.Get("X-B3-Spanid"), traceID, spans)
		}
	})
	t.Run("sampling 0", func(t *testing.T) {
		for i := range 20 {
			r := unsampled.Get(t, echo.URL(fmt.Sprintf("/trace/unsampled/%d", i)))
			if r.Echo == nil {
				t.Fatalf("%d %q", r.Status, r.Body)
			}
			if tp := r.Echo.Header.Get("Traceparent"); tp != "" && !strings.HasSuffix(tp, "-00") {
				t.Errorf("backend saw traceparent %q from a proxy sampling 0%%, want none or unsampled", tp)
			}
		}
		// A request its caller sampled is traced anyway (the upstream
		// decision wins); once its span arrives, anything exported before
		// it has arrived too.
		const traceID = "0af7651916cd43dd8448eb211c80319c"
		unsampled.Get(t, echo.URL("/trace/marker"), "traceparent", "00-"+traceID+"-b7ad6b7169203331-01")
		for _, s := range quiet.waitTrace(t, traceID) {
			if s.TraceID != traceID {
				t.Errorf("proxy with sampling 0 exported span %+v of an unsampled request", s)
			}
		}
	})
}

// telemetryHasSpan reports whether spans hold span id of trace.
func telemetryHasSpan(spans []telemetrySpan, trace, id string) bool {
	for _, s := range spans {
		if s.TraceID == trace && s.SpanID == id {
			return true
		}
	}
	return false
}
