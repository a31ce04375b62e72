package translate

import (
	"sort"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"github.com/weftmesh/weft/internal/model"
)

// Generate computes the complete Envoy configuration of proxy from snap.
// It is a pure function: the same inputs give the same, sorted output, and
// neither input is modified.
func Generate(snap *model.Snapshot, proxy *model.Proxy) *Resources {
	return generate(snap, proxy, nil)
}

func generate(snap *model.Snapshot, proxy *model.Proxy, shared *Cache) *Resources {
	sc := newScope(snap, proxy)
	rules := newRuleIndex(snap, proxy)
	eps := endpointSource(snap.Endpoints)
	targets := outboundTargets(sc.services, rules)
	vss := virtualServices(snap, proxy.Namespace)
	diags := &diagnostics{snap: snap}
	rc := routeContext{
		diags:     diags,
		proxy:     proxy,
		gateways:  []string{GatewayMesh},
		services:  sc.service,
		rules:     rules,
		delegates: newDelegateIndex(snap),
	}

	r := &Resources{}
	var sharedCluster func(*target) *cluster.Cluster
	if shared != nil && proxy.Generator != model.GeneratorGRPC {
		// grpcClusters rewrites clusters in place: gRPC proxies get
		// their own.
		sharedCluster = func(t *target) *cluster.Cluster { return shared.outboundCluster(snap, t, eps) }
	}
	r.Clusters = outboundClusters(targets, eps, diags, sharedCluster)
	r.Endpoints = shared.loadAssignments(snap, targets, eps, proxy.Metadata[MetadataLocality], peerAuthentications(snap))
	switch {
	case proxy.Generator == model.GeneratorGRPC:
		r.Clusters = grpcClusters(r.Clusters)
		r.Listeners = grpcListeners(sc.services)
		r.Routes = grpcRoutes(sc.services, meshBound(vss, diags), rc)
	case proxy.Type == model.ProxyRouter:
		servers := selectGatewayServers(snap, proxy)
		rc.gateways = gatewayNames(servers)
		r.Clusters = append(r.Clusters, specialClusters(false)...)
		r.Listeners = gatewayListeners(servers, vss, rc)
		r.Routes = gatewayRoutes(servers, vss, rc)
	default:
		ports := groupByPort(sc.services, sc)
		inbound := inboundPorts(snap.Services(), eps, proxy.IPs)
		if sc.sidecar != nil && len(sc.sidecar.Ingress) > 0 {
			inbound = withServices(sidecarIngressPorts(sc.sidecar.Ingress, proxy, diags), inbound)
		}
		r.Clusters = append(r.Clusters, specialClusters(true)...)
		r.Clusters = append(r.Clusters, inboundClusters(inbound)...)
		r.Listeners = outboundListeners(ports, meshBound(vss, nil), rc, sc)
		mtls := newMTLSPolicy(snap, proxy)
		r.Listeners = append(r.Listeners, boundInboundListeners(inbound, mtls)...)
		if !interceptionNone(proxy) {
			r.Listeners = append(r.Listeners, virtualOutboundListener(sc.registryOnly), virtualInboundListener(capturedPorts(inbound), mtls))
		}
		r.Routes = sidecarRoutes(ports, vss, rc, sc)
	}
	if proxy.Generator != model.GeneratorGRPC {
		applySecurity(r.Listeners, newSecurityFilters(snap, proxy, diags), proxy.Type == model.ProxyRouter)
	}
	sortResources(r)
	r.Diagnostics = diags.sorted()
	return r
}

// meshBound keeps the VirtualServices that apply to sidecars, reporting
// conflicting ones to diags.
func meshBound(vss []boundVS, diags *diagnostics) *vsSet {
	var out []boundVS
	for _, v := range vss {
		if v.boundTo([]string{GatewayMesh}) {
			out = append(out, v)
		}
	}
	return newVSSet(out, diags)
}

func sortResources(r *Resources) {
	sort.Slice(r.Clusters, func(i, j int) bool { return r.Clusters[i].Name < r.Clusters[j].Name })
	sort.Slice(r.Endpoints, func(i, j int) bool { return r.Endpoints[i].ClusterName < r.Endpoints[j].ClusterName })
	sort.Slice(r.Listeners, func(i, j int) bool { return r.Listeners[i].Name < r.Listeners[j].Name })
	sort.Slice(r.Routes, func(i, j int) bool { return r.Routes[i].Name < r.Routes[j].Name })
	sort.Slice(r.Secrets, func(i, j int) bool { return r.Secrets[i].Name < r.Secrets[j].Name })
}
