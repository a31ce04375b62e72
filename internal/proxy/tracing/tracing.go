// Package tracing is weft-proxy's distributed tracing: it joins or starts
// a trace for every request (W3C traceparent/tracestate and B3
// propagation), forwards a child context upstream, and exports one span
// per request per proxy, tagged as Envoy and Istio tag theirs, to an
// OTLP/HTTP (JSON) collector in non-blocking batches.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/proxy/httpproxy"
)

// Config configures a Tracer.
type Config struct {
	// OTLPURL is the collector's traces endpoint
	// (http://collector:4318/v1/traces).
	OTLPURL string
	// SamplingPercent samples requests that arrive without a decision
	// (0-100; Istio's default is 1).
	SamplingPercent float64
	// Node describes this proxy for span tags and the resource.
	Node Node
	// QueueSize bounds spans waiting for export (default 4096); BatchSize
	// is the most spans per request (default 512); FlushInterval is the
	// longest a span waits (default 1s).
	QueueSize     int
	BatchSize     int
	FlushInterval time.Duration
}

// Node is the proxy's identity as tracing reports it.
type Node struct {
	ID, Namespace, Workload, Cluster, MeshID string
	Labels                                   map[string]string
}

// Tracer implements httpproxy.Tracer. Start and End are safe for
// concurrent use; Run exports.
type Tracer struct {
	rate     float64 // 0..1
	node     Node
	service  string
	revision string
	gateway  bool
	exp      *exporter
	// hcm, when set, are the connection manager's own tracing settings
	// (ForHCM), used instead of rate.
	hcm *hcmSettings
}

// New validates cfg and builds a Tracer.
func New(cfg Config) (*Tracer, error) {
	u, err := url.Parse(cfg.OTLPURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tracing: otlp url %q: want http(s)://host:port/v1/traces", cfg.OTLPURL)
	}
	if cfg.SamplingPercent < 0 || cfg.SamplingPercent > 100 || cfg.SamplingPercent != cfg.SamplingPercent {
		return nil, fmt.Errorf("tracing: sampling %v: want a percentage in [0, 100]", cfg.SamplingPercent)
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 4096
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 512
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = time.Second
	}
	l := cfg.Node.Labels
	t := &Tracer{
		rate:     cfg.SamplingPercent / 100,
		node:     cfg.Node,
		service:  firstOf(l["service.istio.io/canonical-name"], l["app.kubernetes.io/name"], l["app"], cfg.Node.Workload, "unknown"),
		revision: firstOf(l["service.istio.io/canonical-revision"], l["app.kubernetes.io/version"], l["version"], "latest"),
		gateway:  strings.HasPrefix(cfg.Node.ID, "router~"),
	}
	res := []KeyValue{Str("service.name", t.service+"."+firstOf(cfg.Node.Namespace, "default"))}
	if cfg.Node.Namespace != "" {
		res = append(res, Str("k8s.namespace.name", cfg.Node.Namespace))
	}
	t.exp = &exporter{
		url: cfg.OTLPURL, client: &http.Client{Timeout: 10 * time.Second}, resource: Resource{Attributes: res},
		queue: make(chan Span, cfg.QueueSize), batch: cfg.BatchSize, interval: cfg.FlushInterval,
	}
	return t, nil
}

// Run exports spans until ctx is done, then flushes the queue (bounded
// by a short timeout) and returns.
func (t *Tracer) Run(ctx context.Context) error {
	t.exp.run(ctx)
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil
	}
	return ctx.Err()
}

// Stats reports exported, dropped and failed span counts.
func (t *Tracer) Stats() ExporterStats { return t.exp.stats() }

func (t *Tracer) sample() bool {
	switch {
	case t.rate >= 1:
		return true
	case t.rate <= 0:
		return false
	}
	return rand.Float64() < t.rate
}

// Start implements httpproxy.Tracer.
func (t *Tracer) Start(r *http.Request) httpproxy.Span {
	in := Extract(r.Header)
	decide := t.sample
	if t.hcm != nil {
		decide = func() bool { return t.hcm.decide(r) }
	}
	out := Child(in, decide)
	formats := in.Formats
	if formats != 0 && r.Header.Get(HeaderTraceparent) != "" {
		formats |= FormatW3C // replace a malformed traceparent too
	}
	Inject(r.Header, out, formats, in.ShortB3)
	if in.Formats&FormatW3C == 0 {
		r.Header.Del(HeaderTracestate) // meaningless without a valid traceparent
	}
	rid := r.Header.Get(HeaderRequestID)
	if rid == "" {
		rid = newRequestID()
		r.Header.Set(HeaderRequestID, rid)
	}
	if !out.Sampled {
		return nil
	}
	s := &span{t: t, out: out, requestID: rid, userAgent: r.Header.Get("User-Agent"),
		scheme: "http", peer: r.RemoteAddr}
	if in.Formats&FormatW3C != 0 {
		s.traceState = r.Header.Get(HeaderTracestate)
	}
	if r.TLS != nil {
		s.scheme = "https"
	}
	if ci := httpproxy.ConnInfoFrom(r.Context()); ci != nil {
		s.peer = ci.RemoteAddr
		if ci.TLS {
			s.scheme = "https"
		}
	}
	s.rawQuery = r.URL.RawQuery
	if t.hcm != nil {
		for _, ct := range t.hcm.tags {
			v := ct.literal
			if ct.header != "" {
				v = firstOf(r.Header.Get(ct.header), ct.def)
			}
			if v != "" {
				s.tags = append(s.tags, Str(ct.tag, v))
			}
		}
	}
	return s
}

// span is a sampled request in flight.
type span struct {
	t          *Tracer
	out        Outgoing
	traceState string
	requestID  string
	userAgent  string
	scheme     string
	peer       string
	rawQuery   string
	tags       []KeyValue // the connection manager's custom tags
}

// End implements httpproxy.Span: it builds the OTLP span with Envoy's and
// Istio's tags and queues it (dropped and counted when the queue is full).
func (s *span) End(info *httpproxy.Info) {
	t := s.t
	inbound := strings.HasPrefix(info.Cluster, "inbound|") || info.Conn != nil && info.Conn.Listener == "virtualInbound"
	kind := KindClient
	if inbound || t.gateway {
		kind = KindServer
	}
	u := s.scheme + "://" + info.Authority + info.Path
	if s.rawQuery != "" {
		u += "?" + s.rawQuery
	}
	maxPath := DefaultMaxPathTagLength
	if t.hcm != nil {
		maxPath = t.hcm.maxPath
	}
	if len(u) > maxPath {
		u = u[:maxPath]
	}
	flags := info.Flags
	if flags == "" {
		flags = "-"
	}
	attrs := []KeyValue{
		Str("node_id", t.node.ID),
		Str("zone", ""),
		Str("guid:x-request-id", s.requestID),
		Str("http.url", u),
		Str("http.method", info.Method),
		Str("downstream_cluster", "-"),
		Str("user_agent", firstOf(s.userAgent, "-")),
		Str("http.protocol", info.Protocol),
		Str("peer.address", hostOf(s.peer)),
		Int("request_size", info.BytesIn),
		Str("component", "proxy"),
		Str("upstream_cluster", firstOf(info.Cluster, "-")),
		Str("upstream_cluster.name", firstOf(info.Cluster, "-")),
		Str("http.status_code", strconv.Itoa(info.Status)),
		Int("response_size", info.BytesOut),
		Str("response_flags", flags),
		Str("istio.canonical_service", t.service),
		Str("istio.canonical_revision", t.revision),
		Str("istio.namespace", firstOf(t.node.Namespace, "unknown")),
		Str("istio.cluster_id", firstOf(t.node.Cluster, "unknown")),
	}
	if t.node.MeshID != "" {
		attrs = append(attrs, Str("istio.mesh_id", t.node.MeshID))
	}
	if info.Upstream != nil {
		attrs = append(attrs, Str("upstream_address", info.Upstream.Addr))
	}
	attrs = append(attrs, s.tags...)
	if info.GRPC && info.GRPCStatus != "" {
		attrs = append(attrs, Str("grpc.status_code", info.GRPCStatus))
	}
	st := Status{}
	if info.Status >= 500 || info.Status == 0 {
		attrs = append(attrs, Str("error", "true"))
		st.Code = StatusError
	}
	sp := Span{
		TraceID:           s.out.TraceID.String(),
		SpanID:            s.out.SpanID.String(),
		TraceState:        s.traceState,
		Name:              operation(info),
		Kind:              kind,
		StartTimeUnixNano: strconv.FormatInt(info.Start.UnixNano(), 10),
		EndTimeUnixNano:   strconv.FormatInt(info.Start.Add(info.Duration).UnixNano(), 10),
		Attributes:        attrs,
		Status:            st,
	}
	if !s.out.Parent.IsZero() {
		sp.ParentSpanID = s.out.Parent.String()
	}
	t.exp.enqueue(sp)
}

// operation is the span name Istio's route decorators give:
// "<service host>:<port>/*" for outbound clusters, else authority/path.
func operation(info *httpproxy.Info) string {
	if parts := strings.Split(info.Cluster, "|"); len(parts) == 4 && parts[0] == "outbound" && parts[3] != "" {
		return parts[3] + ":" + parts[1] + "/*"
	}
	if info.Authority != "" {
		return info.Authority + "/*"
	}
	return firstOf(info.Path, "/")
}

func hostOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i > 0 && !strings.HasSuffix(addr, "]") {
		return strings.Trim(addr[:i], "[]")
	}
	return addr
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// newRequestID returns a random (version 4) UUID, as Envoy generates
// x-request-id.
func newRequestID() string {
	var b [16]byte
	putUint64(b[:8], rand.Uint64())
	putUint64(b[8:], rand.Uint64())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := TraceID(b).String()
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
