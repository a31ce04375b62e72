// Package upstream holds weft-proxy's clusters: endpoints and their
// health, load balancing (round robin, least request, random, ring hash,
// maglev), circuit breakers, outlier detection and pooled HTTP/1.1 and
// HTTP/2 transports.
package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"golang.org/x/net/http2"

	"github.com/weftmesh/weft/internal/proxy/sds"
)

// Kind is a cluster's discovery type.
type Kind uint8

// Cluster kinds.
const (
	KindStatic Kind = iota
	KindEDS
	KindStrictDNS
	KindOriginalDst
)

// Stats are a cluster's counters, named after Envoy's.
type Stats struct {
	RqTotal, Rq2xx, Rq3xx, Rq4xx, Rq5xx atomic.Uint64
	RqPendingOverflow, RqRetry          atomic.Uint64
	RqRetryOverflow, RqTimeout          atomic.Uint64
	CxTotal, CxConnectFail              atomic.Uint64
	RqActive, CxActive, RqPendingActive atomic.Int64
	OutlierEjections, NoHealthyUpstream atomic.Uint64
	// CxDestroy counts closed upstream connections (Envoy's
	// upstream_cx_destroy).
	CxDestroy atomic.Uint64
	// CxMaxRequests counts connections that reached
	// max_requests_per_connection (Envoy's upstream_cx_max_requests).
	CxMaxRequests atomic.Uint64
}

// Cluster is a compiled cluster. Its configuration is immutable; its host
// set is swapped atomically on endpoint updates.
type Cluster struct {
	Name           string
	Kind           Kind
	ConnectTimeout time.Duration
	HTTP2          bool
	Stats          *Stats

	config   *clusterv3.Cluster
	policy   lbPolicy
	ringMin  int
	balancer Balancer
	hosts    atomic.Pointer[hostSet]
	outlier  *outlier

	maxConnections, maxPending, maxRequests, maxRetries int64
	// retryBudget, when set, replaces maxRetries (Envoy's
	// circuit_breakers.thresholds.retry_budget).
	retryBudget   *retryBudget
	connSlots     chan struct{} // HTTP/1.1: one slot per connection in use
	retriesActive atomic.Int64
	releaseState

	transport http.RoundTripper
	// h1 serves the common HTTP/1.1 request (h1pool.go); nil for HTTP/2.
	h1        *h1Pool
	closeIdle func()
	// maxPerConn > 0 closes a connection after that many requests
	// (max_requests_per_connection): HTTP/1.1 when > 1 (1 disables
	// keep-alive), HTTP/2 drains the connection (maxrequests.go).
	maxPerConn int64
	// localityWeighted splits priority levels by locality weight
	// (common_lb_config.locality_weighted_lb_config).
	localityWeighted bool
	// sockets choose TLS per endpoint (nil: plaintext to every endpoint).
	sockets *transportSockets

	// dns state for STRICT_DNS clusters.
	dnsNames      []dnsTarget
	dnsRefresh    time.Duration
	dnsNext       atomic.Int64
	dnsRefreshing atomic.Bool
	origDstHeader bool
}

type dnsTarget struct {
	host   string
	port   string
	weight uint32
}

// ErrOverflow is returned when a circuit breaker rejects a request.
var ErrOverflow = errors.New("upstream overflow")

// Compile builds a new cluster from its xDS config and, for EDS clusters,
// its load assignment, for a proxy without a workload identity.
func Compile(c *clusterv3.Cluster, cla *endpointv3.ClusterLoadAssignment) (*Cluster, error) {
	return CompileWith(c, cla, nil)
}

// CompileWith is Compile with the proxy's SDS secrets, which the
// cluster's TLS transport sockets may name.
func CompileWith(c *clusterv3.Cluster, cla *endpointv3.ClusterLoadAssignment, sec *sds.Store) (*Cluster, error) {
	field := "cluster " + c.GetName()
	cl := &Cluster{Name: c.GetName(), config: c, Stats: &Stats{},
		maxConnections: 1024, maxPending: 1024, maxRequests: 1024, maxRetries: 3}
	cl.ConnectTimeout = 5 * time.Second
	if c.GetConnectTimeout() != nil {
		cl.ConnectTimeout = c.GetConnectTimeout().AsDuration()
	}
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
		cl.policy, cl.balancer = lbRoundRobin, &roundRobin{}
	case clusterv3.Cluster_LEAST_REQUEST:
		cl.policy, cl.balancer = lbLeastRequest, newLeastRequest(c.GetLeastRequestLbConfig())
	case clusterv3.Cluster_RANDOM:
		cl.policy, cl.balancer = lbRandom, random{}
	case clusterv3.Cluster_RING_HASH:
		cl.policy, cl.balancer = lbRingHash, ringHash{}
		cl.ringMin = int(c.GetRingHashLbConfig().GetMinimumRingSize().GetValue())
	case clusterv3.Cluster_MAGLEV:
		cl.policy, cl.balancer = lbMaglev, maglev{}
	case clusterv3.Cluster_CLUSTER_PROVIDED:
		if c.GetType() != clusterv3.Cluster_ORIGINAL_DST {
			return nil, fmt.Errorf("%s: lb_policy CLUSTER_PROVIDED is only for ORIGINAL_DST", field)
		}
	default:
		return nil, fmt.Errorf("%s: lb_policy %v not supported", field, c.GetLbPolicy())
	}
	if c.GetLoadBalancingPolicy() != nil {
		return nil, fmt.Errorf("%s: load_balancing_policy (extension LB) not supported; use lb_policy", field)
	}
	var hosts []*Host
	var err error
	switch c.GetType() {
	case clusterv3.Cluster_STATIC:
		cl.Kind = KindStatic
		hosts, err = hostsFromCLA(field+".load_assignment", c.GetLoadAssignment(), nil)
	case clusterv3.Cluster_EDS:
		cl.Kind = KindEDS
		hosts, err = hostsFromCLA(field, cla, nil)
	case clusterv3.Cluster_STRICT_DNS, clusterv3.Cluster_LOGICAL_DNS:
		cl.Kind = KindStrictDNS
		cl.dnsRefresh = 5 * time.Second
		if c.GetDnsRefreshRate() != nil {
			cl.dnsRefresh = c.GetDnsRefreshRate().AsDuration()
		}
		for _, lle := range c.GetLoadAssignment().GetEndpoints() {
			for _, le := range lle.GetLbEndpoints() {
				sa := le.GetEndpoint().GetAddress().GetSocketAddress()
				if sa == nil {
					return nil, fmt.Errorf("%s.load_assignment: DNS endpoints need a socket_address", field)
				}
				cl.dnsNames = append(cl.dnsNames, dnsTarget{sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())), le.GetLoadBalancingWeight().GetValue()})
			}
		}
	case clusterv3.Cluster_ORIGINAL_DST:
		cl.Kind = KindOriginalDst
		cl.origDstHeader = c.GetOriginalDstLbConfig().GetUseHttpHeader()
		cl.policy, cl.balancer = lbRandom, random{}
	default:
		return nil, fmt.Errorf("%s: discovery type %v not supported", field, c.GetType())
	}
	if err != nil {
		return nil, err
	}
	cl.localityWeighted = c.GetCommonLbConfig().GetLocalityWeightedLbConfig() != nil
	if cl.Kind == KindEDS {
		cl.hosts.Store(cl.newHosts(hosts, cla))
	} else {
		cl.hosts.Store(cl.newHosts(hosts, c.GetLoadAssignment()))
	}

	for _, t := range c.GetCircuitBreakers().GetThresholds() {
		if t.GetPriority() != corev3.RoutingPriority_DEFAULT {
			continue
		}
		set := func(dst *int64, v interface{ GetValue() uint32 }, ok bool) {
			if ok {
				*dst = int64(v.GetValue())
			}
		}
		set(&cl.maxConnections, t.GetMaxConnections(), t.GetMaxConnections() != nil)
		set(&cl.maxPending, t.GetMaxPendingRequests(), t.GetMaxPendingRequests() != nil)
		set(&cl.maxRequests, t.GetMaxRequests(), t.GetMaxRequests() != nil)
		set(&cl.maxRetries, t.GetMaxRetries(), t.GetMaxRetries() != nil)
		if rb := t.GetRetryBudget(); rb != nil {
			cl.retryBudget = &retryBudget{percent: 20, minConcurrency: 3}
			if p := rb.GetBudgetPercent(); p != nil {
				cl.retryBudget.percent = p.GetValue()
			}
			if m := rb.GetMinRetryConcurrency(); m != nil {
				cl.retryBudget.minConcurrency = int64(m.GetValue())
			}
		}
	}
	if od := c.GetOutlierDetection(); od != nil {
		o := &outlier{consecutive5xx: 5, baseEjection: 30 * time.Second, maxEjection: 300 * time.Second, maxEjectPercent: 10}
		if v := od.GetConsecutive_5Xx(); v != nil {
			o.consecutive5xx = int32(v.GetValue())
		}
		if v := od.GetEnforcingConsecutive_5Xx(); v != nil && v.GetValue() == 0 {
			o.consecutive5xx = 0
		}
		if v := od.GetConsecutiveGatewayFailure(); v != nil && od.GetEnforcingConsecutiveGatewayFailure().GetValue() > 0 {
			o.consecutiveGateway = int32(v.GetValue())
		}
		if v := od.GetBaseEjectionTime(); v != nil {
			o.baseEjection = v.AsDuration()
		}
		if v := od.GetMaxEjectionTime(); v != nil {
			o.maxEjection = v.AsDuration()
		}
		if v := od.GetMaxEjectionPercent(); v != nil {
			o.maxEjectPercent = int(v.GetValue())
		}
		cl.outlier = o
	}

	idle := time.Hour
	maxPerConn := uint32(0)
	if opts := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]; opts != nil {
		po := &httpv3.HttpProtocolOptions{}
		if err := opts.UnmarshalTo(po); err != nil {
			return nil, fmt.Errorf("%s.typed_extension_protocol_options: %v", field, err)
		}
		if po.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil {
			cl.HTTP2 = true
		}
		if po.GetUseDownstreamProtocolConfig() != nil && po.GetUseDownstreamProtocolConfig().GetHttp2ProtocolOptions() != nil {
			// Istio's "DEFAULT" h2 upgrade for gRPC ports sets both; h1 is safe.
			cl.HTTP2 = false
		}
		if d := po.GetCommonHttpProtocolOptions().GetIdleTimeout(); d != nil {
			idle = d.AsDuration()
		}
		maxPerConn = po.GetCommonHttpProtocolOptions().GetMaxRequestsPerConnection().GetValue()
	}
	if maxPerConn == 0 {
		maxPerConn = c.GetMaxRequestsPerConnection().GetValue() //nolint:staticcheck // deprecated but still emitted
	}
	if c.GetHttp2ProtocolOptions() != nil { //nolint:staticcheck // deprecated but still emitted
		cl.HTTP2 = true
	}
	if err := cl.compileTLS(field, c, sec); err != nil {
		return nil, err
	}
	cl.connSlots = make(chan struct{}, max(cl.maxConnections, 1))
	if maxPerConn > 1 || cl.HTTP2 && maxPerConn == 1 {
		cl.maxPerConn = int64(maxPerConn)
	}
	cl.buildTransport(idle, maxPerConn)
	return cl, nil
}

func (cl *Cluster) dialer() *net.Dialer {
	return &net.Dialer{Timeout: cl.ConnectTimeout, KeepAlive: 30 * time.Second}
}

// countingConn decrements the active connection gauge once on Close.
type countingConn struct {
	net.Conn
	stats *Stats
	once  sync.Once
}

// NetConn returns the wrapped connection (as tls.Conn does), so the
// socket can be inspected.
func (c *countingConn) NetConn() net.Conn { return c.Conn }

func (c *countingConn) Close() error {
	c.once.Do(func() {
		c.stats.CxActive.Add(-1)
		c.stats.CxDestroy.Add(1)
	})
	return c.Conn.Close()
}

func (cl *Cluster) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := cl.dialer().DialContext(ctx, network, addr)
	if err != nil {
		cl.Stats.CxConnectFail.Add(1)
		return nil, &ConnectError{Err: err}
	}
	cl.Stats.CxTotal.Add(1)
	cl.Stats.CxActive.Add(1)
	sc, err := cl.secure(ctx, &countingConn{Conn: c, stats: cl.Stats}, addr)
	if err != nil || cl.maxPerConn == 0 {
		return sc, err
	}
	return &requestCountingConn{Conn: sc}, nil
}

// ConnectError marks a failure to connect to the upstream (Envoy's UF).
type ConnectError struct{ Err error }

// Error describes the failed connect.
func (e *ConnectError) Error() string { return "upstream connect error: " + e.Err.Error() }

// Unwrap returns the dial error.
func (e *ConnectError) Unwrap() error { return e.Err }

func (cl *Cluster) buildTransport(idle time.Duration, maxPerConn uint32) {
	if cl.HTTP2 {
		// Requests are http:// URLs; TLS, when the endpoint's transport
		// socket asks for it, is done by cl.dial (transport_socket.go).
		t := &http2.Transport{
			AllowHTTP:          true,
			DisableCompression: true,
			IdleConnTimeout:    idle,
			ReadIdleTimeout:    30 * time.Second,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				return cl.dial(ctx, network, addr)
			},
		}
		cl.transport, cl.closeIdle = t, t.CloseIdleConnections
		return
	}
	t := &http.Transport{
		DialContext:            cl.dial,
		MaxIdleConns:           0,
		MaxIdleConnsPerHost:    int(min(cl.maxConnections, 4096)),
		MaxConnsPerHost:        int(cl.maxConnections),
		IdleConnTimeout:        idle,
		DisableCompression:     true,
		ForceAttemptHTTP2:      false,
		DisableKeepAlives:      maxPerConn == 1,
		ExpectContinueTimeout:  0,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
	}
	cl.h1 = newH1Pool(cl, idle, maxPerConn)
	cl.transport = t
	cl.closeIdle = func() {
		t.CloseIdleConnections()
		cl.h1.close()
	}
}

// hostsFromCLA converts a load assignment into hosts, reusing the state
// of hosts with the same address from prev.
func hostsFromCLA(field string, cla *endpointv3.ClusterLoadAssignment, prev *hostSet) ([]*Host, error) {
	old := map[string]*Host{}
	if prev != nil {
		for _, h := range prev.all {
			old[h.Addr] = h
		}
	}
	var hosts []*Host
	for i, lle := range cla.GetEndpoints() {
		loc := lle.GetLocality()
		locality := loc.GetRegion() + "/" + loc.GetZone() + "/" + loc.GetSubZone()
		for j, le := range lle.GetLbEndpoints() {
			sa := le.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil {
				return nil, fmt.Errorf("%s: endpoints[%d].lb_endpoints[%d]: only socket addresses are supported", field, i, j)
			}
			if net.ParseIP(sa.GetAddress()) == nil {
				return nil, fmt.Errorf("%s: endpoints[%d].lb_endpoints[%d]: %q is not an IP address", field, i, j, sa.GetAddress())
			}
			addr := net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))
			w := le.GetLoadBalancingWeight().GetValue()
			if w == 0 {
				w = 1
			}
			hs := le.GetHealthStatus()
			healthy := hs == corev3.HealthStatus_UNKNOWN || hs == corev3.HealthStatus_HEALTHY
			labels := endpointLabels(le)
			sm := socketMatchMetadata(le)
			if h, ok := old[addr]; ok && h.Weight == w && h.healthy == healthy && h.Priority == lle.GetPriority() && h.Locality == locality && mapsEqual(h.Labels, labels) && mapsEqual(h.SocketMatch, sm) {
				hosts = append(hosts, h)
				continue
			}
			h := &Host{Addr: addr, Weight: w, Priority: lle.GetPriority(), Locality: locality, healthy: healthy, Labels: labels, SocketMatch: sm}
			if o, ok := old[addr]; ok { // keep outlier state across weight changes
				h.ejectedUntil.Store(o.ejectedUntil.Load())
				h.ejections.Store(o.ejections.Load())
			}
			hosts = append(hosts, h)
		}
	}
	return hosts, nil
}

// endpointLabels reads istio peer metadata from filter_metadata["istio"].
func endpointLabels(le *endpointv3.LbEndpoint) map[string]string {
	md := le.GetMetadata().GetFilterMetadata()["istio"]
	if md == nil {
		return nil
	}
	out := map[string]string{}
	for k, v := range md.GetFields() {
		if s := v.GetStringValue(); s != "" {
			out[k] = s
		}
	}
	return out
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Hosts returns the current hosts.
func (cl *Cluster) Hosts() []*Host {
	cl.refreshDNS()
	return cl.hosts.Load().all
}

// Config returns the cluster's xDS config.
func (cl *Cluster) Config() *clusterv3.Cluster { return cl.config }

// Close releases idle connections; used when a cluster is removed.
func (cl *Cluster) Close() {
	if cl.closeIdle != nil {
		cl.closeIdle()
	}
}
