package translate

import (
	"sort"
	"strings"
	"time"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/model"
)

// Names of the catch-all virtual hosts of sidecar route configurations.
const (
	// AllowAnyVirtualHost sends unknown hosts to PassthroughCluster.
	AllowAnyVirtualHost = "allow_any"
	// BlockAllVirtualHost answers unknown hosts with 502 (REGISTRY_ONLY).
	BlockAllVirtualHost = "block_all"
)

// sidecarRoutes builds the RouteConfiguration named by the port number
// for every port with HTTP services: a virtual host per service (routed by
// its VirtualService or by the default route), one per VirtualService host
// that names no service, and a catch-all.
func sidecarRoutes(ports []*portServices, vss []boundVS, base routeContext, sc *scope) []*route.RouteConfiguration {
	mesh := meshBound(vss, base.diags)
	var out []*route.RouteConfiguration
	for _, ps := range ports {
		if !ps.hasHTTP() {
			continue
		}
		rc := base
		rc.port = ps.port
		out = append(out, sidecarRouteConfig(ps, mesh, rc, sc))
	}
	return out
}

func sidecarRouteConfig(ps *portServices, mesh *vsSet, rc routeContext, sc *scope) *route.RouteConfiguration {
	seen := map[string]bool{}
	var vhosts []*route.VirtualHost
	services := append(append([]*model.Service(nil), ps.http...), ps.sniffed...)
	sort.Slice(services, func(i, j int) bool { return services[i].Hostname < services[j].Hostname })
	for _, svc := range services {
		vh := &route.VirtualHost{
			Name:    svc.Hostname + ":" + portString(ps.port),
			Domains: uniqueDomains(seen, serviceDomains(svc, rc.proxy.Namespace)),
		}
		if len(vh.Domains) == 0 {
			continue
		}
		if vs := mesh.forHost(svc.Hostname); vs != nil {
			vrc := rc.forVS(vs)
			vh.Routes = vrc.httpRoutes(vs.vs.Http)
		}
		if len(vh.Routes) == 0 {
			vh.Routes = []*route.Route{rc.defaultRouteTo(svc, ps.port)}
		}
		vhosts = append(vhosts, vh)
	}
	// VirtualService hosts that name no service still get routes.
	for _, vs := range mesh.list {
		for _, h := range vs.hosts {
			if h == "*" || sc.hasServiceMatching(h) || !sc.admits(rc.proxy.Namespace, vs.namespace, h) {
				continue
			}
			vrc := rc.forVS(&vs)
			vh := &route.VirtualHost{
				Name:    h + ":" + portString(ps.port),
				Domains: uniqueDomains(seen, []string{h}),
				Routes:  vrc.httpRoutes(vs.vs.Http),
			}
			if len(vh.Domains) > 0 && len(vh.Routes) > 0 {
				vhosts = append(vhosts, vh)
			}
		}
	}
	sort.Slice(vhosts, func(i, j int) bool { return vhosts[i].Name < vhosts[j].Name })
	vhosts = append(vhosts, catchAllVirtualHost(sc.registryOnly))
	// As Istio's buildSidecarOutboundHTTPRouteConfig: domains carry no
	// port and the authority's port is ignored when matching.
	return &route.RouteConfiguration{
		Name:                     portString(ps.port),
		VirtualHosts:             vhosts,
		ValidateClusters:         wrapBool(false),
		IgnorePortInHostMatching: true,
	}
}

// hasServiceMatching reports whether a visible service matches host.
func (sc *scope) hasServiceMatching(host string) bool {
	if !strings.HasPrefix(host, "*") {
		return sc.byHost[host] != nil
	}
	for _, svc := range sc.services {
		if hostMatches(host, svc.Hostname) {
			return true
		}
	}
	return false
}

// catchAllVirtualHost matches every other host: forwarded to the original
// destination (ALLOW_ANY) or refused with 502 (REGISTRY_ONLY).
func catchAllVirtualHost(registryOnly bool) *route.VirtualHost {
	if registryOnly {
		return &route.VirtualHost{
			Name:    BlockAllVirtualHost,
			Domains: []string{"*"},
			Routes: []*route.Route{{
				Name:   BlockAllVirtualHost,
				Match:  &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
				Action: &route.Route_DirectResponse{DirectResponse: &route.DirectResponseAction{Status: 502}},
			}},
		}
	}
	return &route.VirtualHost{
		Name:    AllowAnyVirtualHost,
		Domains: []string{"*"},
		Routes: []*route.Route{{
			Name:  AllowAnyVirtualHost,
			Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
			Action: &route.Route_Route{Route: &route.RouteAction{
				ClusterSpecifier: &route.RouteAction_Cluster{Cluster: PassthroughCluster},
				Timeout:          durationpb.New(0),
				MaxGrpcTimeout:   durationpb.New(0),
			}},
		}},
	}
}

// defaultRouteTo is the default route to a service port, with the hash
// policy of the service's DestinationRule when it asks for consistent
// hashing.
func (rc *routeContext) defaultRouteTo(svc *model.Service, port uint32) *route.Route {
	r := defaultRoute(OutboundClusterName(port, "", svc.Hostname))
	r.GetRoute().HashPolicy = rc.hashPolicy(&networking.Destination{Host: svc.Hostname, Port: &networking.PortSelector{Number: port}})
	return r
}

// defaultRoute sends everything to cluster, with Istio's defaults: no
// timeout and the default retry policy.
func defaultRoute(cluster string) *route.Route {
	ra := &route.RouteAction{
		ClusterSpecifier: &route.RouteAction_Cluster{Cluster: cluster},
		RetryPolicy:      retryPolicy(nil),
	}
	setTimeout(ra, nil)
	return &route.Route{
		Name:   "default",
		Match:  &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
		Action: &route.Route_Route{Route: ra},
	}
}

// setTimeout sets a route's timeouts as Istio's setTimeout does for
// proxies: timeout is the VirtualService's (0s, none, without one), and
// the deprecated max_grpc_timeout is 0s without a timeout, so that a gRPC
// request's grpc-timeout header bounds it uncapped, else the timeout, which
// then caps the header.
func setTimeout(ra *route.RouteAction, vsTimeout *durationpb.Duration) {
	var d time.Duration
	if vsTimeout != nil {
		d = vsTimeout.AsDuration()
	}
	ra.Timeout = durationpb.New(d)
	ra.MaxGrpcTimeout = durationpb.New(d)
}

// proxylessTimeout moves a route's timeout where gRPC's xDS client reads
// it, as Istio does for proxyless clients: max_stream_duration, without
// max_grpc_timeout.
func proxylessTimeout(r *route.Route) {
	ra := r.GetRoute()
	if ra == nil {
		return
	}
	ra.MaxGrpcTimeout = nil
	if ra.Timeout != nil {
		ra.MaxStreamDuration = &route.RouteAction_MaxStreamDuration{MaxStreamDuration: durationpb.New(ra.Timeout.AsDuration())}
	}
}

// serviceDomains lists the names a client in namespace ns may use for a
// service, as Istio's generateVirtualHostDomains with
// ignore_port_in_host_matching: the hostname, for cluster-local services
// the shorter forms "name.namespace.svc", "name.namespace" and, from the
// same namespace, "name", and the VIPs (IPv6 ones in brackets), without
// ports.
func serviceDomains(svc *model.Service, ns string) []string {
	names := []string{svc.Hostname}
	if rest, ok := strings.CutSuffix(svc.Hostname, "."+DomainSuffix); ok {
		if name, svcNS, ok := strings.Cut(rest, "."); ok && !strings.Contains(svcNS, ".") {
			if svcNS == ns {
				names = append(names, name)
			}
			names = append(names, name+"."+svcNS, name+"."+svcNS+".svc")
		}
	}
	for _, a := range svc.Addresses {
		switch {
		case strings.Contains(a, "/"):
		case strings.Contains(a, ":"):
			names = append(names, "["+a+"]")
		default:
			names = append(names, a)
		}
	}
	return names
}

// uniqueDomains drops domains already used by another virtual host of the
// same route configuration (Envoy rejects duplicates) and records the rest.
func uniqueDomains(seen map[string]bool, domains []string) []string {
	out := domains[:0:0]
	for _, d := range domains {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}
