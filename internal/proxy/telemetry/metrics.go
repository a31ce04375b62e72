// Package telemetry produces Istio's standard metrics
// (istio_requests_total, istio_request_duration_milliseconds, request and
// response bytes) with Istio's label names and order, in the Prometheus
// text format.
package telemetry

import (
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/weftmesh/weft/internal/proxy/httpproxy"
	"github.com/weftmesh/weft/internal/proxy/telemetry/peermeta"
	"github.com/weftmesh/weft/internal/proxy/upstream"
)

// LabelNames are Istio's HTTP metric labels, in Istio's order.
var LabelNames = []string{
	"reporter", "source_workload", "source_workload_namespace", "source_principal", "source_app", "source_version",
	"source_canonical_service", "source_canonical_revision", "source_cluster",
	"destination_workload", "destination_workload_namespace", "destination_principal", "destination_app",
	"destination_version", "destination_service", "destination_service_name", "destination_service_namespace",
	"destination_canonical_service", "destination_canonical_revision", "destination_cluster",
	"request_protocol", "response_flags", "connection_security_policy", "response_code", "grpc_response_status",
}

// DurationBuckets are Istio's default duration buckets in milliseconds.
var DurationBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// ByteBuckets are exponential size buckets.
var ByteBuckets = []float64{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000}

// Local describes this proxy's own workload.
type Local struct {
	Workload, Namespace, ServiceAccount, Cluster string
	Labels                                       map[string]string
	// Clusters, when set, resolves cluster names to their configuration:
	// an inbound cluster's istio.services metadata names the service the
	// workload serves (destination_service).
	Clusters ClusterSource
}

// ClusterSource resolves a cluster name to the current cluster, or nil.
type ClusterSource interface {
	Cluster(name string) *upstream.Cluster
}

// peer is one side's label values.
type peer struct {
	workload, namespace, principal, app, version, canonicalService, canonicalRevision, cluster string
}

func unknownIfEmpty(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func (l Local) peer() peer {
	p := peer{workload: l.Workload, namespace: l.Namespace, app: l.Labels["app"], version: l.Labels["version"], cluster: l.Cluster}
	if l.ServiceAccount != "" && l.Namespace != "" {
		p.principal = "spiffe://cluster.local/ns/" + l.Namespace + "/sa/" + l.ServiceAccount
	}
	p.canonicalService = firstOf(l.Labels["service.istio.io/canonical-name"], l.Labels["app.kubernetes.io/name"], l.Labels["app"], l.Workload)
	p.canonicalRevision = firstOf(l.Labels["service.istio.io/canonical-revision"], l.Labels["app.kubernetes.io/version"], l.Labels["version"], "latest")
	return p
}

// hostPeer reads endpoint metadata: Istio's compact "workload" value
// ("name;namespace;canonical-service;canonical-revision;cluster") or
// individual keys.
func hostPeer(h *upstream.Host) peer {
	if h == nil || h.Labels == nil {
		return peer{}
	}
	l := h.Labels
	p := peer{workload: l["workload"], namespace: l["namespace"], app: l["app"], version: l["version"],
		canonicalService: l["canonical_service"], canonicalRevision: l["canonical_revision"], cluster: l["cluster"], principal: l["principal"]}
	if parts := strings.Split(l["workload"], ";"); len(parts) == 5 {
		p.workload, p.namespace, p.canonicalService, p.canonicalRevision, p.cluster = parts[0], parts[1], parts[2], parts[3], parts[4]
	}
	if p.app == "" {
		p.app = p.canonicalService
	}
	if p.version == "" {
		p.version = p.canonicalRevision
	}
	return p
}

// fromExchange converts exchanged peer metadata.
func fromExchange(x peermeta.Peer) peer {
	return peer{workload: x.Workload, namespace: x.Namespace, app: x.App, version: x.Version,
		canonicalService: x.CanonicalService, canonicalRevision: x.CanonicalRevision, cluster: x.Cluster}
}

// spiffeNamespace is the namespace of "spiffe://TD/ns/NS/sa/SA", or "".
func spiffeNamespace(id string) string {
	_, rest, ok := strings.Cut(id, "/ns/")
	if !ok {
		return ""
	}
	ns, _, _ := strings.Cut(rest, "/")
	return ns
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// serviceFromCluster derives destination_service(_name, _namespace)
// from an Istio cluster name.
func serviceFromCluster(name string) (svc, short, ns string) {
	switch name {
	case "PassthroughCluster", "BlackHoleCluster", "InboundPassthroughCluster", "InboundPassthroughClusterIpv4", "InboundPassthroughClusterIpv6":
		return name, name, "unknown"
	}
	parts := strings.Split(name, "|")
	if len(parts) == 4 && parts[3] != "" {
		svc = parts[3]
		host := strings.Split(svc, ".")
		short = host[0]
		if len(host) > 1 {
			ns = host[1]
		}
		return svc, short, unknownIfEmpty(ns)
	}
	return "unknown", "unknown", "unknown"
}

type seriesKey struct {
	inbound    bool
	host       *upstream.Host
	cluster    string
	code       int
	flags      string
	grpc       bool
	grpcStatus string
	// mtls and principal describe the downstream connection of an
	// inbound request: mutual TLS and the client's verified SPIFFE ID.
	mtls      bool
	principal string
	// exchanged is the peer's metadata from the metadata exchange: the
	// client's on inbound requests, the server's on outbound ones.
	exchanged peermeta.Peer
	// http marks HTTP requests; upPrincipal is then, on outbound ones,
	// the upstream certificate's SPIFFE ID ("" in plain text).
	http        bool
	upPrincipal string
}

type histogram struct {
	buckets []atomic.Uint64
	count   atomic.Uint64
	sumBits atomic.Uint64 // float64 bits, updated by CAS
}

func newHistogram(n int) *histogram { return &histogram{buckets: make([]atomic.Uint64, n)} }

func (h *histogram) observe(bounds []float64, v float64) {
	i := sort.SearchFloat64s(bounds, v)
	if i < len(bounds) {
		h.buckets[i].Add(1)
	}
	h.count.Add(1)
	for {
		old := h.sumBits.Load()
		if h.sumBits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

type series struct {
	labels   string // rendered {a="b",...}
	requests atomic.Uint64
	duration *histogram
	reqBytes *histogram
	resBytes *histogram
}

const shards = 32

// Metrics collects Istio metrics; it implements httpproxy.Observer.
type Metrics struct {
	local    peer
	clusters ClusterSource
	seed     maphash.Seed
	shard    [shards]struct {
		mu sync.Mutex
		m  map[seriesKey]*series
	}
	tcp tcpMetrics
}

// New returns an empty collector for the local workload.
func New(l Local) *Metrics {
	m := &Metrics{local: l.peer(), clusters: l.Clusters, seed: maphash.MakeSeed()}
	for i := range m.shard {
		m.shard[i].m = map[seriesKey]*series{}
	}
	return m
}

// Observe records one request.
func (m *Metrics) Observe(i *httpproxy.Info) {
	k := seriesKey{host: i.Upstream, cluster: i.Cluster, code: i.Status, flags: i.Flags, grpc: i.GRPC, grpcStatus: i.GRPCStatus, http: true}
	k.inbound = strings.HasPrefix(i.Cluster, "inbound|") || i.Conn != nil && i.Conn.Listener == "virtualInbound"
	if k.inbound && i.Conn != nil && i.Conn.Peer != nil {
		k.mtls, k.principal = true, i.Conn.Peer.Principal
	}
	if !k.inbound {
		k.upPrincipal = i.UpstreamPrincipal
	}
	if k.inbound && i.DownstreamPeer != nil {
		k.exchanged = *i.DownstreamPeer
	} else if !k.inbound && i.UpstreamPeer != nil {
		k.exchanged = *i.UpstreamPeer
	}
	var hh maphash.Hash
	hh.SetSeed(m.seed)
	hh.WriteString(k.cluster)
	hh.WriteString(k.flags)
	sh := &m.shard[(hh.Sum64()+uint64(k.code))%shards]
	sh.mu.Lock()
	s := sh.m[k]
	if s == nil {
		s = &series{labels: m.render(k), duration: newHistogram(len(DurationBuckets)), reqBytes: newHistogram(len(ByteBuckets)), resBytes: newHistogram(len(ByteBuckets))}
		sh.m[k] = s
	}
	sh.mu.Unlock()
	s.requests.Add(1)
	// Istio records whole milliseconds (a sub-millisecond request is 0).
	s.duration.observe(DurationBuckets, float64(i.Duration.Milliseconds()))
	s.reqBytes.observe(ByteBuckets, float64(i.BytesIn))
	s.resBytes.observe(ByteBuckets, float64(i.BytesOut))
}

func (m *Metrics) render(k seriesKey) string {
	// As Istio's stats filter: the peer is what the metadata exchange
	// told, else (client side) the endpoint metadata; the namespace of a
	// verified peer comes from its SPIFFE ID; a peer's unknown canonical
	// revision is "latest".
	src, dst := m.local, hostPeer(k.host)
	if k.exchanged != (peermeta.Peer{}) {
		dst = fromExchange(k.exchanged)
		dst.principal = hostPeer(k.host).principal
	}
	if k.http {
		// Istio's client side reads the principal from the upstream
		// connection's certificate (unknown in plain text), never from
		// endpoint metadata.
		dst.principal = k.upPrincipal
	}
	dst.canonicalRevision = firstOf(dst.canonicalRevision, "latest")
	reporter, security := "source", "unknown"
	if k.inbound {
		reporter, security = "destination", "none"
		src, dst = fromExchange(k.exchanged), m.local
		if k.mtls {
			security, src.principal = "mutual_tls", k.principal
			src.namespace = firstOf(spiffeNamespace(k.principal), src.namespace)
		}
		src.canonicalRevision = firstOf(src.canonicalRevision, "latest")
	}
	svc, short, ns := serviceFromCluster(k.cluster)
	if k.inbound && svc == "unknown" {
		svc, short, ns = m.inboundService(k.cluster)
	}
	if k.inbound && svc == "unknown" {
		svc, short, ns = unknownIfEmpty(dst.canonicalService), unknownIfEmpty(dst.canonicalService), unknownIfEmpty(dst.namespace)
	}
	proto := "http"
	if k.grpc {
		proto = "grpc"
	}
	flags := k.flags
	if flags == "" {
		flags = "-"
	}
	vals := []string{reporter,
		unknownIfEmpty(src.workload), unknownIfEmpty(src.namespace), unknownIfEmpty(src.principal), unknownIfEmpty(src.app), unknownIfEmpty(src.version),
		unknownIfEmpty(src.canonicalService), unknownIfEmpty(src.canonicalRevision), unknownIfEmpty(src.cluster),
		unknownIfEmpty(dst.workload), unknownIfEmpty(dst.namespace), unknownIfEmpty(dst.principal), unknownIfEmpty(dst.app), unknownIfEmpty(dst.version),
		svc, short, ns, unknownIfEmpty(dst.canonicalService), unknownIfEmpty(dst.canonicalRevision), unknownIfEmpty(dst.cluster),
		proto, flags, security, strconv.Itoa(k.code), k.grpcStatus,
	}
	var b strings.Builder
	for i, n := range LabelNames {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteString(`="`)
		b.WriteString(escape(vals[i]))
		b.WriteByte('"')
	}
	return b.String()
}

// inboundService reads the service of an inbound cluster from its
// istio.services metadata (the first one, as Istio's stats filter does).
func (m *Metrics) inboundService(cluster string) (svc, short, ns string) {
	if m.clusters == nil {
		return "unknown", "unknown", "unknown"
	}
	cl := m.clusters.Cluster(cluster)
	if cl == nil || cl.Config() == nil {
		return "unknown", "unknown", "unknown"
	}
	services := cl.Config().GetMetadata().GetFilterMetadata()["istio"].GetFields()["services"].GetListValue().GetValues()
	if len(services) == 0 {
		return "unknown", "unknown", "unknown"
	}
	f := services[0].GetStructValue().GetFields()
	host := f["host"].GetStringValue()
	if host == "" {
		return "unknown", "unknown", "unknown"
	}
	short = f["name"].GetStringValue()
	if short == "" {
		short, _, _ = strings.Cut(host, ".")
	}
	return host, short, unknownIfEmpty(f["namespace"].GetStringValue())
}

func escape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// WritePrometheus writes every series in the Prometheus text format.
func (m *Metrics) WritePrometheus(w io.Writer) {
	var all []*series
	for i := range m.shard {
		sh := &m.shard[i]
		sh.mu.Lock()
		for _, s := range sh.m {
			all = append(all, s)
		}
		sh.mu.Unlock()
	}
	sort.Slice(all, func(i, j int) bool { return all[i].labels < all[j].labels })
	fmt.Fprintln(w, "# TYPE istio_requests_total counter")
	for _, s := range all {
		fmt.Fprintf(w, "istio_requests_total{%s} %d\n", s.labels, s.requests.Load())
	}
	writeHist(w, "istio_request_duration_milliseconds", all, func(s *series) *histogram { return s.duration }, DurationBuckets)
	writeHist(w, "istio_request_bytes", all, func(s *series) *histogram { return s.reqBytes }, ByteBuckets)
	writeHist(w, "istio_response_bytes", all, func(s *series) *histogram { return s.resBytes }, ByteBuckets)
	m.writeTCP(w)
}

func writeHist(w io.Writer, name string, all []*series, get func(*series) *histogram, bounds []float64) {
	fmt.Fprintf(w, "# TYPE %s histogram\n", name)
	for _, s := range all {
		h := get(s)
		var cum uint64
		for i, b := range bounds {
			cum += h.buckets[i].Load()
			fmt.Fprintf(w, "%s_bucket{%s,le=\"%s\"} %d\n", name, s.labels, envoyFloat(b), cum)
		}
		fmt.Fprintf(w, "%s_bucket{%s,le=\"+Inf\"} %d\n", name, s.labels, h.count.Load())
		fmt.Fprintf(w, "%s_sum{%s} %s\n", name, s.labels, envoyFloat(math.Float64frombits(h.sumBits.Load())))
		fmt.Fprintf(w, "%s_count{%s} %d\n", name, s.labels, h.count.Load())
	}
}

// envoyFloat formats v as Envoy's Prometheus output does ({:.32g}, that
// is C's %.32g): integers up to 32 digits in full (le="1800000", not
// "1.8e+06"), fractions with up to 32 significant digits.
func envoyFloat(v float64) string { return strconv.FormatFloat(v, 'g', 32, 64) }
