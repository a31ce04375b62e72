package translate

import (
	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/weftmesh/weft/internal/model"
)

// GRPCListenerName is the name a proxyless gRPC client asks for when it
// dials "xds:///HOST:PORT": exactly "HOST:PORT". Its RDS route
// configuration has the same name.
func GRPCListenerName(host string, port uint32) string { return host + ":" + portString(port) }

// grpcListeners builds, for a proxyless gRPC client, one api_listener per
// service port named "host:port" whose connection manager fetches the
// route configuration of the same name. gRPC supports only the fault and
// router HTTP filters of those Weft uses.
func grpcListeners(services []*model.Service) []*listener.Listener {
	var out []*listener.Listener
	for _, svc := range services {
		if svc.Resolution != model.ResolutionClientSideLB {
			continue // gRPC's xDS client takes EDS clusters only
		}
		for _, p := range svc.Ports {
			if !p.Protocol.IsHTTP() && p.Protocol != model.ProtocolUnknown {
				continue
			}
			name := GRPCListenerName(svc.Hostname, p.Number)
			m := &hcm.HttpConnectionManager{
				StatPrefix:     name,
				RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{ConfigSource: adsSource(), RouteConfigName: name}},
				HttpFilters: []*hcm.HttpFilter{
					httpFilter(filterFault, &faultv3.HTTPFault{}),
					httpFilter(filterRouter, &routerv3.Router{}),
				},
			}
			out = append(out, &listener.Listener{Name: name, ApiListener: &listener.ApiListener{ApiListener: toAny(m)}})
		}
	}
	return out
}

// grpcRoutes builds the route configuration of each gRPC listener: one
// virtual host for the service (its VirtualService's routes or the
// default route), matching every authority, since the client already
// chose the listener by name. Per-route configs of filters gRPC lacks
// (CORS) are dropped.
func grpcRoutes(services []*model.Service, mesh *vsSet, base routeContext) []*route.RouteConfiguration {
	var out []*route.RouteConfiguration
	for _, svc := range services {
		if svc.Resolution != model.ResolutionClientSideLB {
			continue // gRPC's xDS client takes EDS clusters only
		}
		for _, p := range svc.Ports {
			if !p.Protocol.IsHTTP() && p.Protocol != model.ProtocolUnknown {
				continue
			}
			rc := base
			rc.port = p.Number
			vh := &route.VirtualHost{Name: GRPCListenerName(svc.Hostname, p.Number), Domains: []string{"*"}}
			if vs := mesh.forHost(svc.Hostname); vs != nil {
				vrc := rc.forVS(vs)
				vh.Routes = vrc.httpRoutes(vs.vs.Http)
			}
			if len(vh.Routes) == 0 {
				vh.Routes = []*route.Route{rc.defaultRouteTo(svc, p.Number)}
			}
			for _, r := range vh.Routes {
				delete(r.TypedPerFilterConfig, filterCORS)
				proxylessTimeout(r)
			}
			out = append(out, &route.RouteConfiguration{Name: vh.Name, VirtualHosts: []*route.VirtualHost{vh}})
		}
	}
	return out
}

// grpcClusters adapts clusters to what gRPC's xDS client accepts: EDS
// clusters only, ROUND_ROBIN, RING_HASH or LEAST_REQUEST balancing, and no
// SDS-based transport sockets (gRPC uses certificate providers instead;
// mesh mTLS for proxyless clients is not generated yet).
func grpcClusters(cs []*cluster.Cluster) []*cluster.Cluster {
	var out []*cluster.Cluster
	for _, c := range cs {
		if c.GetType() != cluster.Cluster_EDS {
			continue
		}
		switch c.LbPolicy {
		case cluster.Cluster_MAGLEV:
			c.LbPolicy = cluster.Cluster_RING_HASH
			c.LbConfig = nil
		case cluster.Cluster_RANDOM:
			c.LbPolicy = cluster.Cluster_ROUND_ROBIN
		}
		c.TransportSocket = nil
		c.TransportSocketMatches = nil
		out = append(out, c)
	}
	return out
}
