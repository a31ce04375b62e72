package translate

import (
	"math"
	"sort"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	upstreamhttp "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/model"
)

// httpProtocolOptionsKey is the extension key of upstream HTTP options.
const httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// target is one outbound cluster to build: a service port, optionally
// narrowed to a DestinationRule subset, with its effective policy.
type target struct {
	name    string
	service *model.Service
	port    model.Port
	subset  string
	// labels select the subset's endpoints; nil for the whole service.
	labels map[string]string
	policy policy
	// rule is the DestinationRule the policy comes from, nil for none.
	rule *model.Meta
}

// outboundTargets lists the outbound clusters of services: one per
// service port and one per port and DestinationRule subset, sorted by name.
func outboundTargets(services []*model.Service, rules *ruleIndex) []target {
	var out []target
	for _, svc := range services {
		br := rules.lookupBound(svc.Hostname, svc.Namespace)
		var dr *networking.DestinationRule
		var meta *model.Meta
		if br != nil {
			dr, meta = br.rule, br.meta
		}
		for _, p := range svc.Ports {
			out = append(out, target{
				name: OutboundClusterName(p.Number, "", svc.Hostname), service: svc, port: p,
				policy: effectivePolicy(dr, p.Number, ""), rule: meta,
			})
			if dr == nil {
				continue
			}
			for _, s := range dr.Subsets {
				out = append(out, target{
					name: OutboundClusterName(p.Number, s.Name, svc.Hostname), service: svc, port: p,
					subset: s.Name, labels: s.Labels, policy: effectivePolicy(dr, p.Number, s.Name), rule: meta,
				})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// usesEDS reports whether the target's cluster gets its endpoints by EDS.
func (t *target) usesEDS() bool {
	return t.service.Resolution == model.ResolutionClientSideLB && !t.passthroughLB()
}

func (t *target) passthroughLB() bool {
	return t.policy.lb != nil && t.policy.lb.GetSimple() == networking.LoadBalancerSettings_PASSTHROUGH
}

// outboundClusters builds the clusters of targets. A traffic policy that
// would make a cluster invalid is dropped (the target falls back to
// Istio's defaults) and reported.
//
// shared, if not nil, returns the cluster of a target without a
// DestinationRule, which is the same for every proxy (see
// Cache.outboundCluster); the caller must not modify such clusters.
func outboundClusters(targets []target, eps endpointSource, diags *diagnostics, shared func(*target) *cluster.Cluster) []*cluster.Cluster {
	out := make([]*cluster.Cluster, 0, len(targets))
	// Only DestinationRule settings can make a cluster invalid; each
	// distinct policy is checked once.
	checked := map[policy]error{}
	for i := range targets {
		t := &targets[i]
		if t.rule == nil && shared != nil {
			out = append(out, shared(t))
			continue
		}
		c := outboundCluster(t, eps)
		if t.rule == nil {
			out = append(out, c)
			continue
		}
		err, ok := checked[t.policy]
		if !ok {
			err = validateDeep(c)
			checked[t.policy] = err
		}
		if err != nil {
			field := "spec.trafficPolicy"
			if t.subset != "" {
				field = "spec.subsets[" + t.subset + "].trafficPolicy"
			}
			diags.errorf(t.rule, field, "traffic policy not applied to %s, it would be rejected by Envoy: %v", t.name, err)
			t.policy = policy{}
			c = outboundCluster(t, eps)
		}
		out = append(out, c)
	}
	return out
}

func outboundCluster(t *target, eps endpointSource) *cluster.Cluster {
	c := &cluster.Cluster{
		Name:           t.name,
		ConnectTimeout: dur(defaultConnectTimeout),
		LbPolicy:       cluster.Cluster_LEAST_REQUEST,
		Metadata:       clusterMetadata(t),
	}
	switch {
	case t.service.Resolution == model.ResolutionPassthrough || t.passthroughLB():
		c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST}
		c.LbPolicy = cluster.Cluster_CLUSTER_PROVIDED
	case t.service.Resolution == model.ResolutionDNS:
		c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_STRICT_DNS}
		c.DnsLookupFamily = cluster.Cluster_V4_ONLY
		c.LoadAssignment = dnsLoadAssignment(t, eps(t.service.Hostname))
	default:
		c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_EDS}
		c.EdsClusterConfig = &cluster.Cluster_EdsClusterConfig{EdsConfig: adsSource(), ServiceName: t.name}
	}
	if c.LbPolicy != cluster.Cluster_CLUSTER_PROVIDED {
		applyLoadBalancer(c, t.policy.lb)
	}
	applyConnectionPool(c, t.policy.pool, t.port.Protocol)
	applyRetryBudget(c, t.policy.retryBudget)
	applyOutlierDetection(c, t.policy.outlier)
	applyUpstreamTLS(c, t, eps(t.service.Hostname))
	return c
}

// clusterMetadata records which service a cluster belongs to, as Istio
// does, for telemetry.
func clusterMetadata(t *target) *core.Metadata {
	svc := map[string]any{
		"host":      t.service.Hostname,
		"name":      shortName(t.service.Hostname),
		"namespace": t.service.Namespace,
	}
	fields := map[string]any{
		"services":              []any{svc},
		"default_original_port": float64(t.port.Number),
	}
	if t.subset != "" {
		fields["subset"] = t.subset
	}
	s, err := structpb.NewStruct(fields)
	if err != nil {
		panic("translate: cluster metadata: " + err.Error())
	}
	return &core.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": s}}
}

func shortName(host string) string {
	for i := 0; i < len(host); i++ {
		if host[i] == '.' {
			return host[:i]
		}
	}
	return host
}

// dnsLoadAssignment lists the DNS names of a STRICT_DNS cluster: the
// endpoints' addresses, or the service host itself when it has none.
func dnsLoadAssignment(t *target, eps []*model.Endpoint) *endpoint.ClusterLoadAssignment {
	var lbs []*endpoint.LbEndpoint
	for _, ep := range eps {
		if t.labels != nil && !model.SelectorMatches(t.labels, ep.Labels) {
			continue
		}
		lbs = append(lbs, lbEndpoint(ep, ep.TargetPort(t.port), endpointMetadata(ep, false)))
	}
	if len(lbs) == 0 && eps == nil && t.labels == nil {
		lbs = append(lbs, &endpoint.LbEndpoint{HostIdentifier: &endpoint.LbEndpoint_Endpoint{
			Endpoint: &endpoint.Endpoint{Address: socketAddress(t.service.Hostname, t.port.Number)},
		}})
	}
	la := &endpoint.ClusterLoadAssignment{ClusterName: t.name}
	if len(lbs) > 0 {
		la.Endpoints = []*endpoint.LocalityLbEndpoints{{LbEndpoints: lbs, LoadBalancingWeight: u32(uint32(len(lbs)))}}
	}
	return la
}

// applyLoadBalancer sets the load-balancing policy: Istio's default is
// LEAST_REQUEST; consistent hashing uses a ring hash unless maglev is
// asked for (the hash key itself is a route hash_policy).
func applyLoadBalancer(c *cluster.Cluster, lb *networking.LoadBalancerSettings) {
	if lb == nil {
		return
	}
	switch {
	case lb.GetConsistentHash() != nil:
		ch := lb.GetConsistentHash()
		if m := ch.GetMaglev(); m != nil {
			c.LbPolicy = cluster.Cluster_MAGLEV
			if m.TableSize > 0 {
				c.LbConfig = &cluster.Cluster_MaglevLbConfig_{MaglevLbConfig: &cluster.Cluster_MaglevLbConfig{TableSize: wrapperspb.UInt64(m.TableSize)}}
			}
			break
		}
		c.LbPolicy = cluster.Cluster_RING_HASH
		size := ch.GetRingHash().GetMinimumRingSize()
		if size == 0 {
			size = ch.GetMinimumRingSize()
		}
		if size == 0 {
			size = 1024
		}
		c.LbConfig = &cluster.Cluster_RingHashLbConfig_{RingHashLbConfig: &cluster.Cluster_RingHashLbConfig{MinimumRingSize: wrapperspb.UInt64(size)}}
	default:
		switch lb.GetSimple() {
		case networking.LoadBalancerSettings_ROUND_ROBIN:
			c.LbPolicy = cluster.Cluster_ROUND_ROBIN
		case networking.LoadBalancerSettings_RANDOM:
			c.LbPolicy = cluster.Cluster_RANDOM
		case networking.LoadBalancerSettings_LEAST_REQUEST, networking.LoadBalancerSettings_LEAST_CONN:
			c.LbPolicy = cluster.Cluster_LEAST_REQUEST
		}
	}
	applyWarmup(c, lb)
	if ll := lb.LocalityLbSetting; ll != nil && len(ll.Distribute) > 0 && (ll.Enabled == nil || ll.Enabled.Value) {
		if c.CommonLbConfig == nil {
			c.CommonLbConfig = &cluster.Cluster_CommonLbConfig{}
		}
		c.CommonLbConfig.LocalityConfigSpecifier = &cluster.Cluster_CommonLbConfig_LocalityWeightedLbConfig_{
			LocalityWeightedLbConfig: &cluster.Cluster_CommonLbConfig_LocalityWeightedLbConfig{},
		}
	}
}

// applyWarmup sets Envoy's slow start for round robin and least request
// balancing from warmup (or the older warmupDurationSecs).
func applyWarmup(c *cluster.Cluster, lb *networking.LoadBalancerSettings) {
	window := lb.GetWarmup().GetDuration()
	if window == nil {
		window = lb.GetWarmupDurationSecs()
	}
	if window == nil || window.AsDuration() <= 0 {
		return
	}
	slow := &cluster.Cluster_SlowStartConfig{SlowStartWindow: window}
	switch c.LbPolicy {
	case cluster.Cluster_ROUND_ROBIN:
		c.LbConfig = &cluster.Cluster_RoundRobinLbConfig_{RoundRobinLbConfig: &cluster.Cluster_RoundRobinLbConfig{SlowStartConfig: slow}}
	case cluster.Cluster_LEAST_REQUEST:
		c.LbConfig = &cluster.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &cluster.Cluster_LeastRequestLbConfig{SlowStartConfig: slow}}
	}
}

// applyConnectionPool turns connectionPool settings into circuit breaker
// thresholds and upstream connection options. Unset limits are Istio's
// defaults: effectively unlimited (2^32-1).
func applyConnectionPool(c *cluster.Cluster, pool *networking.ConnectionPoolSettings, proto model.Protocol) {
	th := &cluster.CircuitBreakers_Thresholds{
		MaxConnections:     u32(math.MaxUint32),
		MaxPendingRequests: u32(math.MaxUint32),
		MaxRequests:        u32(math.MaxUint32),
		MaxRetries:         u32(math.MaxUint32),
		TrackRemaining:     true,
	}
	c.CircuitBreakers = &cluster.CircuitBreakers{Thresholds: []*cluster.CircuitBreakers_Thresholds{th}}
	var common *core.HttpProtocolOptions
	h2 := proto.IsHTTP2()
	useDownstream := proto == model.ProtocolUnknown
	var maxStreams uint32
	if tcp := pool.GetTcp(); tcp != nil {
		if tcp.MaxConnections > 0 {
			th.MaxConnections = u32(uint32(tcp.MaxConnections))
		}
		if tcp.ConnectTimeout != nil {
			c.ConnectTimeout = tcp.ConnectTimeout
		}
		if ka := tcp.TcpKeepalive; ka != nil {
			k := &core.TcpKeepalive{}
			if ka.Probes > 0 {
				k.KeepaliveProbes = u32(ka.Probes)
			}
			if ka.Time != nil {
				k.KeepaliveTime = u32(uint32(ka.Time.AsDuration().Seconds()))
			}
			if ka.Interval != nil {
				k.KeepaliveInterval = u32(uint32(ka.Interval.AsDuration().Seconds()))
			}
			c.UpstreamConnectionOptions = &cluster.UpstreamConnectionOptions{TcpKeepalive: k}
		}
		if tcp.MaxConnectionDuration != nil {
			common = orNew(common)
			common.MaxConnectionDuration = tcp.MaxConnectionDuration
		}
	}
	if http := pool.GetHttp(); http != nil {
		if http.Http1MaxPendingRequests > 0 {
			th.MaxPendingRequests = u32(uint32(http.Http1MaxPendingRequests))
		}
		if http.Http2MaxRequests > 0 {
			th.MaxRequests = u32(uint32(http.Http2MaxRequests))
		}
		if http.MaxRetries > 0 {
			th.MaxRetries = u32(uint32(http.MaxRetries))
		}
		if http.IdleTimeout != nil {
			common = orNew(common)
			common.IdleTimeout = http.IdleTimeout
		}
		if http.MaxRequestsPerConnection > 0 {
			common = orNew(common)
			common.MaxRequestsPerConnection = u32(uint32(http.MaxRequestsPerConnection))
		}
		if http.H2UpgradePolicy == networking.ConnectionPoolSettings_HTTPSettings_UPGRADE && proto == model.ProtocolHTTP {
			h2 = true
		}
		if http.UseClientProtocol {
			useDownstream = true
		}
		if http.MaxConcurrentStreams > 0 {
			maxStreams = uint32(http.MaxConcurrentStreams)
		}
	}
	if !proto.IsHTTP() && proto != model.ProtocolUnknown {
		return // TCP: no HTTP options
	}
	if common == nil && !h2 && !useDownstream {
		return // plain HTTP/1.1 is Envoy's default
	}
	opts := &upstreamhttp.HttpProtocolOptions{CommonHttpProtocolOptions: common}
	h2opts := &core.Http2ProtocolOptions{}
	if maxStreams > 0 {
		h2opts.MaxConcurrentStreams = u32(maxStreams)
	}
	switch {
	case useDownstream:
		opts.UpstreamProtocolOptions = &upstreamhttp.HttpProtocolOptions_UseDownstreamProtocolConfig{
			UseDownstreamProtocolConfig: &upstreamhttp.HttpProtocolOptions_UseDownstreamHttpConfig{
				HttpProtocolOptions: &core.Http1ProtocolOptions{}, Http2ProtocolOptions: h2opts,
			},
		}
	case h2:
		opts.UpstreamProtocolOptions = &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: h2opts},
			},
		}
	default:
		opts.UpstreamProtocolOptions = &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &core.Http1ProtocolOptions{}},
			},
		}
	}
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsKey: toAny(opts)}
}

// applyRetryBudget limits concurrent retries to a share of active
// requests (Istio's defaults: 20%, at least 3), replacing maxRetries.
func applyRetryBudget(c *cluster.Cluster, rb *networking.TrafficPolicy_RetryBudget) {
	if rb == nil {
		return
	}
	pct := 20.0
	if rb.Percent != nil {
		pct = rb.Percent.Value
	}
	minConc := rb.MinRetryConcurrency
	if minConc == 0 {
		minConc = 3
	}
	c.CircuitBreakers.Thresholds[0].RetryBudget = &cluster.CircuitBreakers_Thresholds_RetryBudget{
		BudgetPercent:       &typev3.Percent{Value: pct},
		MinRetryConcurrency: u32(minConc),
	}
}

func orNew(o *core.HttpProtocolOptions) *core.HttpProtocolOptions {
	if o == nil {
		return &core.HttpProtocolOptions{}
	}
	return o
}

// applyOutlierDetection maps Istio's outlier detection onto Envoy's:
// error counters are enforced at 100%, success-rate ejection is off, and
// minHealthPercent becomes the healthy panic threshold.
func applyOutlierDetection(c *cluster.Cluster, od *networking.OutlierDetection) {
	if od == nil {
		return
	}
	out := &cluster.OutlierDetection{EnforcingSuccessRate: u32(0)}
	if v := od.Consecutive_5XxErrors; v != nil {
		out.Consecutive_5Xx = u32(v.Value)
		out.EnforcingConsecutive_5Xx = u32(enforce(v.Value))
	} else if od.ConsecutiveErrors > 0 {
		out.Consecutive_5Xx = u32(uint32(od.ConsecutiveErrors))
		out.EnforcingConsecutive_5Xx = u32(100)
	} else {
		out.EnforcingConsecutive_5Xx = u32(0)
	}
	if v := od.ConsecutiveGatewayErrors; v != nil {
		out.ConsecutiveGatewayFailure = u32(v.Value)
		out.EnforcingConsecutiveGatewayFailure = u32(enforce(v.Value))
	}
	if od.SplitExternalLocalOriginErrors {
		out.SplitExternalLocalOriginErrors = true
		if v := od.ConsecutiveLocalOriginFailures; v != nil {
			out.ConsecutiveLocalOriginFailure = u32(v.Value)
			out.EnforcingConsecutiveLocalOriginFailure = u32(100)
		}
	}
	if v := od.FailurePercentageThreshold; v != nil {
		out.FailurePercentageThreshold = u32(v.Value)
		out.EnforcingFailurePercentage = u32(100)
	}
	out.Interval = od.Interval
	out.BaseEjectionTime = od.BaseEjectionTime
	if od.MaxEjectionPercent > 0 {
		out.MaxEjectionPercent = u32(uint32(min(od.MaxEjectionPercent, 100)))
	}
	c.OutlierDetection = out
	if c.CommonLbConfig == nil {
		c.CommonLbConfig = &cluster.Cluster_CommonLbConfig{}
	}
	c.CommonLbConfig.HealthyPanicThreshold = &typev3.Percent{Value: float64(max(0, min(od.MinHealthPercent, 100)))}
}

func enforce(n uint32) uint32 {
	if n > 0 {
		return 100
	}
	return 0
}

// specialClusters returns PassthroughCluster, BlackHoleCluster and, for
// sidecars, InboundPassthroughCluster.
func specialClusters(sidecar bool) []*cluster.Cluster {
	pass := &cluster.Cluster{
		Name:                 PassthroughCluster,
		ConnectTimeout:       dur(defaultConnectTimeout),
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST},
		LbPolicy:             cluster.Cluster_CLUSTER_PROVIDED,
	}
	hole := &cluster.Cluster{
		Name:                 BlackHoleCluster,
		ConnectTimeout:       dur(defaultConnectTimeout),
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
	}
	out := []*cluster.Cluster{hole, pass}
	if sidecar {
		in := &cluster.Cluster{
			Name:                 InboundPassthroughCluster,
			ConnectTimeout:       dur(defaultConnectTimeout),
			ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST},
			LbPolicy:             cluster.Cluster_CLUSTER_PROVIDED,
		}
		out = append(out, in)
	}
	return out
}

// inboundPort is one port of the proxy's own workload that a service
// sends traffic to.
type inboundPort struct {
	// port is the workload port (the endpoint's target port).
	port     uint32
	protocol model.Protocol
	// endpoint is where the application listens (a Sidecar ingress
	// defaultEndpoint); nil means 127.0.0.1:port.
	endpoint *core.Address
	// bind, when set, is the address an explicit listener binds for this
	// port (a Sidecar ingress with captureMode NONE or a bind address);
	// such ports are not served by the virtual inbound listener.
	bind string
	// services are the services the workload serves on this port, in
	// the order found (the inbound cluster's istio.services metadata,
	// read by telemetry for destination_service).
	services []*model.Service
}

// addService appends svc to p's services unless it is there already.
func (p *inboundPort) addService(svc *model.Service) {
	for _, s := range p.services {
		if s.Hostname == svc.Hostname {
			return
		}
	}
	p.services = append(p.services, svc)
}

// inboundPorts finds the workload ports of proxy: for every service
// endpoint whose address is one of the proxy's IPs, the endpoint's target
// port of each service port. Sorted by port; the first protocol seen for
// a port wins.
func inboundPorts(services []*model.Service, eps endpointSource, ips []string) []inboundPort {
	if len(ips) == 0 {
		return nil
	}
	seen := map[uint32]int{} // port -> index in out
	var out []inboundPort
	for _, svc := range services {
		for _, ep := range eps(svc.Hostname) {
			if !containsString(ips, ep.Address) {
				continue
			}
			for _, p := range svc.Ports {
				tp := ep.TargetPort(p)
				i, ok := seen[tp]
				if !ok {
					i = len(out)
					seen[tp] = i
					out = append(out, inboundPort{port: tp, protocol: p.Protocol})
				}
				out[i].addService(svc)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].port < out[j].port })
	return out
}

// inboundClusters builds an "inbound|PORT||" cluster per workload port,
// sending to the application on 127.0.0.1:PORT.
func inboundClusters(ports []inboundPort) []*cluster.Cluster {
	out := make([]*cluster.Cluster, 0, len(ports))
	for _, p := range ports {
		name := InboundClusterName(p.port)
		addr := p.endpoint
		if addr == nil {
			addr = socketAddress("127.0.0.1", p.port)
		}
		c := &cluster.Cluster{
			Name:                 name,
			ConnectTimeout:       dur(defaultConnectTimeout),
			ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
			LoadAssignment: &endpoint.ClusterLoadAssignment{
				ClusterName: name,
				Endpoints: []*endpoint.LocalityLbEndpoints{{LbEndpoints: []*endpoint.LbEndpoint{{
					HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{Address: addr}},
				}}}},
			},
			CircuitBreakers: &cluster.CircuitBreakers{Thresholds: []*cluster.CircuitBreakers_Thresholds{{
				MaxConnections: u32(math.MaxUint32), MaxPendingRequests: u32(math.MaxUint32),
				MaxRequests: u32(math.MaxUint32), MaxRetries: u32(math.MaxUint32),
			}}},
		}
		if md := inboundClusterMetadata(p.services); md != nil {
			c.Metadata = md
		}
		if p.protocol.IsHTTP2() {
			c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsKey: toAny(&upstreamhttp.HttpProtocolOptions{
				UpstreamProtocolOptions: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_{
					ExplicitHttpConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig{
						ProtocolConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &core.Http2ProtocolOptions{}},
					},
				},
			})}
		}
		out = append(out, c)
	}
	return out
}

// inboundClusterMetadata lists the services of an inbound port under
// istio.services, as Istio's inbound clusters do (nil without services).
func inboundClusterMetadata(services []*model.Service) *core.Metadata {
	if len(services) == 0 {
		return nil
	}
	list := make([]*structpb.Value, 0, len(services))
	for _, s := range services {
		list = append(list, structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			"host":      structpb.NewStringValue(s.Hostname),
			"name":      structpb.NewStringValue(shortName(s.Hostname)),
			"namespace": structpb.NewStringValue(s.Namespace),
		}}))
	}
	return &core.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": {Fields: map[string]*structpb.Value{
		"services": structpb.NewListValue(&structpb.ListValue{Values: list}),
	}}}}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
