package translate

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/model"
)

// scope is what one proxy may see of the mesh: the services exported to
// its namespace and admitted by its Sidecar resource, and the routing
// rules that apply to them.
type scope struct {
	services []*model.Service
	// egress is the Sidecar's list of "namespace/host" patterns; nil admits
	// everything exported to the proxy.
	egress []string
	// registryOnly is true when the Sidecar's outbound traffic policy
	// sends unknown destinations to BlackHoleCluster.
	registryOnly bool
	// sidecar is the Sidecar resource that applies to the proxy, or nil.
	sidecar *networking.Sidecar
	// portEgress maps an egress listener's port to its hosts: for that
	// port only those hosts get listeners and routes, as in Istio. Other
	// ports use the hosts of the egress listeners without a port
	// (catchAll; nil with a Sidecar means none).
	portEgress map[uint32][]string
	catchAll   []string
	namespace  string
	// byHost indexes services by hostname.
	byHost map[string]*model.Service
}

// newScope computes the scope of proxy in snap.
func newScope(snap *model.Snapshot, proxy *model.Proxy) *scope {
	sc := &scope{namespace: proxy.Namespace}
	if sidecar := selectSidecar(snap, proxy); sidecar != nil {
		sc.sidecar = sidecar
		for _, eg := range sidecar.Egress {
			sc.egress = append(sc.egress, eg.Hosts...)
			if n := eg.GetPort().GetNumber(); n != 0 {
				if sc.portEgress == nil {
					sc.portEgress = map[uint32][]string{}
				}
				sc.portEgress[n] = append(sc.portEgress[n], eg.Hosts...)
			} else {
				sc.catchAll = append(sc.catchAll, eg.Hosts...)
			}
		}
		if p := sidecar.OutboundTrafficPolicy; p != nil && p.Mode == networking.OutboundTrafficPolicy_REGISTRY_ONLY {
			sc.registryOnly = true
		}
	}
	for _, svc := range snap.Services() {
		if !svc.VisibleFrom(proxy.Namespace) || !sc.admits(proxy.Namespace, svc.Namespace, svc.Hostname) {
			continue
		}
		// Two sources may declare the same host: the one in the proxy's
		// namespace wins, else the first (Snapshot.Service's rule).
		if n := len(sc.services); n > 0 && sc.services[n-1].Hostname == svc.Hostname {
			if svc.Namespace == proxy.Namespace {
				sc.services[n-1] = svc
			}
			continue
		}
		sc.services = append(sc.services, svc)
	}
	sc.byHost = make(map[string]*model.Service, len(sc.services))
	for _, svc := range sc.services {
		sc.byHost[svc.Hostname] = svc
	}
	return sc
}

// admits reports whether the Sidecar egress hosts admit host declared in
// namespace ns, for a proxy in namespace self.
func (sc *scope) admits(self, ns, host string) bool {
	if sc.egress == nil {
		return true
	}
	return hostsAdmit(sc.egress, self, ns, host)
}

// admitsPort reports whether the service gets a listener and routes on
// port: by the egress listener of that port if there is one, else by the
// egress listeners without port.
func (sc *scope) admitsPort(svc *model.Service, port uint32) bool {
	if sc.egress == nil {
		return true
	}
	hosts, ok := sc.portEgress[port]
	if !ok {
		hosts = sc.catchAll
	}
	return hostsAdmit(hosts, sc.namespace, svc.Namespace, svc.Hostname)
}

// hostsAdmit matches "namespace/host" egress patterns.
func hostsAdmit(egress []string, self, ns, host string) bool {
	for _, e := range egress {
		ens, eh, ok := strings.Cut(e, "/")
		if !ok {
			ens, eh = "*", e
		}
		switch ens {
		case "*":
		case ".":
			if ns != self {
				continue
			}
		case "~":
			continue
		default:
			if ens != ns {
				continue
			}
		}
		if hostsOverlap(eh, host) {
			return true
		}
	}
	return false
}

// service returns the visible service with the given hostname, or nil.
func (sc *scope) service(host string) *model.Service { return sc.byHost[host] }

// selectSidecar picks the Sidecar resource for proxy Istio's way: one in
// its namespace whose workloadSelector matches, else one in its namespace
// without selector, else one in the root namespace without selector.
func selectSidecar(snap *model.Snapshot, proxy *model.Proxy) *networking.Sidecar {
	var nsDefault, rootDefault *networking.Sidecar
	for _, c := range snap.List(model.KindSidecar) {
		sc, ok := c.Spec.(*networking.Sidecar)
		if !ok {
			continue
		}
		switch {
		case c.Namespace == proxy.Namespace && sc.WorkloadSelector != nil:
			if model.SelectorMatches(sc.WorkloadSelector.Labels, proxy.Labels) {
				return sc
			}
		case c.Namespace == proxy.Namespace:
			if nsDefault == nil {
				nsDefault = sc
			}
		case c.Namespace == RootNamespace && sc.WorkloadSelector == nil:
			if rootDefault == nil {
				rootDefault = sc
			}
		}
	}
	if nsDefault != nil {
		return nsDefault
	}
	return rootDefault
}
