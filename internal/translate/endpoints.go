package translate

import (
	"net/netip"
	"sort"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/structpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/model"
)

// endpointSource returns the endpoints of a service hostname.
type endpointSource func(host string) []*model.Endpoint

// MetadataLocality is the proxy metadata key holding the proxy's own
// locality, "region/zone/subzone"; locality-aware load balancing needs it.
const MetadataLocality = "LOCALITY"

// locality is a parsed "region/zone/subzone".
type locality struct{ region, zone, subzone string }

func parseLocality(s string) locality {
	parts := strings.SplitN(s, "/", 3)
	var l locality
	if len(parts) > 0 {
		l.region = parts[0]
	}
	if len(parts) > 1 {
		l.zone = parts[1]
	}
	if len(parts) > 2 {
		l.subzone = parts[2]
	}
	return l
}

func (l locality) String() string { return l.region + "/" + l.zone + "/" + l.subzone }

// matches reports whether l matches a pattern "region/zone/subzone" in
// which parts may be "*" or missing (missing parts match anything).
func (l locality) matches(pattern string) bool {
	p := strings.SplitN(pattern, "/", 3)
	got := []string{l.region, l.zone, l.subzone}
	for i, part := range p {
		if part != "*" && part != got[i] {
			return false
		}
	}
	return true
}

// loadAssignments builds a ClusterLoadAssignment for every EDS target.
// Endpoints are grouped by locality; with a localityLbSetting (and outlier
// detection, as Istio requires for failover) and a known proxy locality,
// groups get failover priorities or distribute weights.
//
// As Istio's auto mTLS does, an endpoint whose PeerAuthentication disables
// mTLS on its port is labelled tlsMode "disabled", so clients reach it in
// plain text.
func loadAssignments(targets []target, eps endpointSource, proxyLocality string, pa peerAuthIndex) []*endpoint.ClusterLoadAssignment {
	var out []*endpoint.ClusterLoadAssignment
	md := &metadataCache{pa: pa, meta: map[metadataKey]*core.Metadata{}, policies: map[*model.Endpoint]mtlsPolicy{}}
	for i := range targets {
		t := &targets[i]
		if !t.usesEDS() {
			continue
		}
		out = append(out, loadAssignment(t, eps(t.service.Hostname), proxyLocality, md))
	}
	return out
}

// metadataCache shares endpoint metadata between the clusters an endpoint
// is in (the same unless PeerAuthentication differs by port).
type metadataCache struct {
	pa       peerAuthIndex
	meta     map[metadataKey]*core.Metadata
	policies map[*model.Endpoint]mtlsPolicy
}

type metadataKey struct {
	ep       *model.Endpoint
	disabled bool
}

func (mc *metadataCache) get(ep *model.Endpoint, port uint32) *core.Metadata {
	disabled := false
	if len(mc.pa) > 0 && ep.TLSMode == model.TLSModeIstio {
		pol, ok := mc.policies[ep]
		if !ok {
			pol = mc.pa.policy(ep.Namespace, ep.Labels)
			mc.policies[ep] = pol
		}
		disabled = pol.forPort(port) == mtlsDisable
	}
	key := metadataKey{ep, disabled}
	m := mc.meta[key]
	if m == nil {
		m = endpointMetadata(ep, disabled)
		mc.meta[key] = m
	}
	return m
}

func loadAssignment(t *target, eps []*model.Endpoint, proxyLocality string, md *metadataCache) *endpoint.ClusterLoadAssignment {
	groups := map[string]*endpoint.LocalityLbEndpoints{}
	var keys []string
	seen := map[string]bool{}
	for _, ep := range eps {
		if t.labels != nil && !model.SelectorMatches(t.labels, ep.Labels) {
			continue
		}
		if !isIPOrUnix(ep.Address) {
			continue // EDS carries addresses, not names
		}
		port := ep.TargetPort(t.port)
		id := ep.Address + ":" + portString(port)
		if seen[id] {
			continue
		}
		seen[id] = true
		g := groups[ep.Locality]
		if g == nil {
			l := parseLocality(ep.Locality)
			g = &endpoint.LocalityLbEndpoints{Locality: &core.Locality{Region: l.region, Zone: l.zone, SubZone: l.subzone}}
			groups[ep.Locality] = g
			keys = append(keys, ep.Locality)
		}
		g.LbEndpoints = append(g.LbEndpoints, lbEndpoint(ep, port, md.get(ep, port)))
	}
	sort.Strings(keys)
	la := &endpoint.ClusterLoadAssignment{ClusterName: t.name}
	for _, k := range keys {
		g := groups[k]
		var w uint32
		for _, e := range g.LbEndpoints {
			w += e.LoadBalancingWeight.GetValue()
		}
		g.LoadBalancingWeight = u32(max(w, 1))
		la.Endpoints = append(la.Endpoints, g)
	}
	if lb := t.policy.lb; lb != nil && proxyLocality != "" {
		applyLocalitySetting(la, lb.LocalityLbSetting, t.policy.outlier != nil, parseLocality(proxyLocality))
	}
	return la
}

func isIPOrUnix(addr string) bool {
	if strings.HasPrefix(addr, "unix://") {
		return true
	}
	_, err := netip.ParseAddr(addr)
	return err == nil
}

// lbEndpoint builds one endpoint with the metadata Istio attaches: the
// transport socket match key tlsMode, and under "istio" the workload's
// identity for telemetry.
func lbEndpoint(ep *model.Endpoint, port uint32, md *core.Metadata) *endpoint.LbEndpoint {
	weight := ep.Weight
	if weight == 0 {
		weight = 1
	}
	health := core.HealthStatus_HEALTHY
	if !ep.Healthy {
		health = core.HealthStatus_UNHEALTHY
	}
	return &endpoint.LbEndpoint{
		HostIdentifier:      &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{Address: socketAddress(ep.Address, port)}},
		HealthStatus:        health,
		LoadBalancingWeight: u32(weight),
		Metadata:            md,
	}
}

func endpointMetadata(ep *model.Endpoint, mtlsDisabled bool) *core.Metadata {
	tlsMode := ep.TLSMode
	if tlsMode == "" || mtlsDisabled {
		tlsMode = model.TLSModeDisabled
	}
	app := ep.Labels["app"]
	version := ep.Labels["version"]
	canonical := ep.Labels["service.istio.io/canonical-name"]
	if canonical == "" {
		canonical = app
	}
	if canonical == "" {
		canonical = ep.Workload
	}
	revision := ep.Labels["service.istio.io/canonical-revision"]
	if revision == "" {
		revision = version
	}
	if revision == "" {
		revision = "latest"
	}
	istio := map[string]*structpb.Value{
		// Istio's compact form: workload;namespace;canonical service;canonical revision;cluster.
		"workload":          structpb.NewStringValue(ep.Workload + ";" + ep.Namespace + ";" + canonical + ";" + revision + ";Kubernetes"),
		"namespace":         structpb.NewStringValue(ep.Namespace),
		"app":               structpb.NewStringValue(app),
		"version":           structpb.NewStringValue(version),
		"canonical_service": structpb.NewStringValue(canonical),
	}
	if ep.ServiceAccount != "" {
		istio["principal"] = structpb.NewStringValue(SpiffeID(ep.Namespace, ep.ServiceAccount))
	}
	return &core.Metadata{FilterMetadata: map[string]*structpb.Struct{
		"envoy.transport_socket_match": {Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue(tlsMode)}},
		"istio":                        {Fields: istio},
	}}
}

// applyLocalitySetting applies Istio's locality load balancing to la. With
// distribute rules, the first rule whose "from" matches the proxy sets the
// weight of each locality (groups it gives no weight are dropped). Else,
// if outlier detection is on (Istio's requirement), groups get priorities
// by closeness: same subzone 0, same zone 1, same region 2, a failover
// region of the proxy's region 3, others 4; priorities are then made
// contiguous.
func applyLocalitySetting(la *endpoint.ClusterLoadAssignment, s *networking.LocalityLoadBalancerSetting, outlier bool, self locality) {
	if s != nil && s.Enabled != nil && !s.Enabled.Value {
		return
	}
	if s != nil && len(s.Distribute) > 0 {
		for _, d := range s.Distribute {
			if self.matches(d.From) {
				distribute(la, d.To)
				return
			}
		}
		return
	}
	if !outlier {
		return
	}
	failover := map[string]bool{}
	if s != nil {
		for _, f := range s.Failover {
			if f.From == self.region {
				failover[f.To] = true
			}
		}
	}
	used := map[uint32]bool{}
	for _, g := range la.Endpoints {
		l := locality{g.Locality.GetRegion(), g.Locality.GetZone(), g.Locality.GetSubZone()}
		var p uint32
		switch {
		case l == self:
			p = 0
		case l.region == self.region && l.zone == self.zone:
			p = 1
		case l.region == self.region:
			p = 2
		case failover[l.region]:
			p = 3
		default:
			p = 4
		}
		g.Priority = p
		used[p] = true
	}
	remap := map[uint32]uint32{}
	var next uint32
	for p := uint32(0); p <= 4; p++ {
		if used[p] {
			remap[p] = next
			next++
		}
	}
	for _, g := range la.Endpoints {
		g.Priority = remap[g.Priority]
	}
	sort.SliceStable(la.Endpoints, func(i, j int) bool { return la.Endpoints[i].Priority < la.Endpoints[j].Priority })
}

// distribute sets locality weights from a distribute rule's "to" map:
// each pattern's percentage is shared equally among the groups it matches.
func distribute(la *endpoint.ClusterLoadAssignment, to map[string]uint32) {
	weights := make([]uint32, len(la.Endpoints))
	patterns := make([]string, 0, len(to))
	for p := range to {
		patterns = append(patterns, p)
	}
	sort.Strings(patterns)
	for _, p := range patterns {
		var matched []int
		for i, g := range la.Endpoints {
			l := locality{g.Locality.GetRegion(), g.Locality.GetZone(), g.Locality.GetSubZone()}
			if l.matches(p) {
				matched = append(matched, i)
			}
		}
		for _, i := range matched {
			weights[i] += to[p] * 1000 / uint32(len(matched))
		}
	}
	kept := la.Endpoints[:0]
	for i, g := range la.Endpoints {
		if weights[i] > 0 {
			g.LoadBalancingWeight = u32(weights[i])
			kept = append(kept, g)
		}
	}
	la.Endpoints = kept
}
