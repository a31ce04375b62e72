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
	sc := newScope(snap, proxy)
	rules := newRuleIndex(snap, proxy)
	eps := endpointSource(snap.Endpoints)
	targets := outboundTargets(sc.services, rules)

	r := &Resources{}
	r.Clusters = outboundClusters(targets, eps)
	r.Clusters = append(r.Clusters, specialClusters(proxy.Type != model.ProxyRouter)...)
	var inbound []inboundPort
	if proxy.Type != model.ProxyRouter {
		inbound = inboundPorts(snap.Services(), eps, proxy.IPs)
		r.Clusters = append(r.Clusters, inboundClusters(inbound)...)
	}
	sortClusters(r.Clusters)
	r.Endpoints = loadAssignments(targets, eps, proxy.Metadata[MetadataLocality])
	return r
}

func sortClusters(cs []*cluster.Cluster) {
	sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
}
