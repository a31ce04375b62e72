package translate

import (
	"fmt"
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/model"
)

// GatewayMesh is the pseudo-gateway naming all sidecars.
const GatewayMesh = "mesh"

// boundVS is a VirtualService visible to the proxy, with its hosts
// resolved against its namespace.
type boundVS struct {
	meta      *model.Meta
	namespace string
	name      string
	vs        *networking.VirtualService
	hosts     []string
	// gateways are the VS's gateways as "namespace/name" or "mesh".
	gateways []string
}

// virtualServices returns the root VirtualServices (those with hosts)
// exported to the proxy's namespace, in a stable order (namespace, name).
// Delegates are found separately by delegateIndex.
func virtualServices(snap *model.Snapshot, proxyNamespace string) []boundVS {
	var out []boundVS
	for _, c := range snap.List(model.KindVirtualService) {
		vs, ok := c.Spec.(*networking.VirtualService)
		if !ok || len(vs.Hosts) == 0 || !exportedTo(vs.ExportTo, c.Namespace, proxyNamespace) {
			continue
		}
		b := boundVS{meta: &c.Meta, namespace: c.Namespace, name: c.Name, vs: vs}
		for _, h := range vs.Hosts {
			b.hosts = append(b.hosts, resolveHost(h, c.Namespace))
		}
		b.gateways = normalizeGateways(vs.Gateways, c.Namespace)
		out = append(out, b)
	}
	return out
}

// normalizeGateways writes gateway references as "namespace/name", keeps
// "mesh", and gives the default ["mesh"] for an empty list.
func normalizeGateways(gws []string, ns string) []string {
	if len(gws) == 0 {
		return []string{GatewayMesh}
	}
	out := make([]string, 0, len(gws))
	for _, g := range gws {
		switch {
		case g == GatewayMesh:
			out = append(out, g)
		case strings.Contains(g, "/"):
			out = append(out, g)
		default:
			// "name" or Istio's legacy "name.namespace.svc.cluster.local".
			if i := strings.IndexByte(g, '.'); i > 0 {
				rest := strings.TrimSuffix(g[i+1:], "."+DomainSuffix)
				out = append(out, rest+"/"+g[:i])
			} else {
				out = append(out, ns+"/"+g)
			}
		}
	}
	return out
}

// boundTo reports whether any of the VS's gateways is in set.
func (b *boundVS) boundTo(set []string) bool {
	for _, g := range b.gateways {
		if containsString(set, g) {
			return true
		}
	}
	return false
}

// delegateIndex finds delegate VirtualServices by namespace and name.
type delegateIndex map[string]*boundVS

func newDelegateIndex(snap *model.Snapshot) delegateIndex {
	idx := delegateIndex{}
	for _, c := range snap.List(model.KindVirtualService) {
		vs, ok := c.Spec.(*networking.VirtualService)
		if !ok || len(vs.Hosts) != 0 {
			continue
		}
		idx[c.Namespace+"/"+c.Name] = &boundVS{meta: &c.Meta, namespace: c.Namespace, name: c.Name, vs: vs}
	}
	return idx
}

// vsSet is an ordered set of VirtualServices indexed by host.
type vsSet struct {
	list []boundVS
	// exact maps a host to the first VirtualService naming it exactly.
	exact map[string]*boundVS
	// wild lists the VirtualServices with wildcard hosts, in order.
	wild []*boundVS
}

// newVSSet indexes list. With diags, a host routed by two VirtualServices
// is reported: for sidecars only the first applies (Istio's IST0109).
func newVSSet(list []boundVS, diags *diagnostics) *vsSet {
	s := &vsSet{list: list, exact: map[string]*boundVS{}}
	for i := range list {
		b := &list[i]
		hasWild := false
		for j, h := range b.hosts {
			switch {
			case strings.HasPrefix(h, "*"):
				hasWild = true
			case s.exact[h] == nil:
				s.exact[h] = b
			default:
				first := s.exact[h]
				diags.warnf(b.meta, fmt.Sprintf("spec.hosts[%d]", j), "host %s is already routed by VirtualService %s/%s; for sidecars only that one applies (merge them, or narrow exportTo)", h, first.namespace, first.name)
			}
		}
		if hasWild {
			s.wild = append(s.wild, b)
		}
	}
	return s
}

// forHost picks, for one service host, the VirtualService that routes
// it: the one with the most specific matching host, the earliest in order
// among equals (Istio uses the oldest; Weft has no creation time and uses
// namespace/name order).
func (s *vsSet) forHost(host string) *boundVS {
	if b := s.exact[host]; b != nil {
		return b
	}
	var best *boundVS
	var bestHost string
	for _, b := range s.wild {
		for _, h := range b.hosts {
			if !hostMatches(h, host) {
				continue
			}
			if best == nil || specificity(h) > specificity(bestHost) {
				best, bestHost = b, h
			}
		}
	}
	return best
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
