package translate

import (
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	httpinspector "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	originaldst "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tlsinspector "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Network and listener filter names.
const (
	filterHCM           = "envoy.filters.network.http_connection_manager"
	filterTCPProxy      = "envoy.filters.network.tcp_proxy"
	filterTLSInspector  = "envoy.filters.listener.tls_inspector"
	filterHTTPInspector = "envoy.filters.listener.http_inspector"
	filterOriginalDst   = "envoy.filters.listener.original_dst"
)

// sniffedHTTPProtocols are the application protocols the HTTP inspector
// reports for plain-text HTTP/1.x and HTTP/2.
var sniffedHTTPProtocols = []string{"http/1.0", "http/1.1", "h2c"}

// hcmOptions says how an HTTP connection manager is set up.
type hcmOptions struct {
	statPrefix string
	// rds names the route configuration fetched over RDS; inline is used
	// instead when set.
	rds    string
	inline *route.RouteConfiguration
	// edge is true for gateways: the client address is the peer's. (As
	// in Istio, the Host's port is kept: gateway route configurations
	// ignore it when matching, see gatewayRoutes.)
	edge bool
	// inbound is true for a sidecar's inbound ports: the mesh client's
	// certificate is appended to x-forwarded-client-cert (see xfcc.go).
	inbound bool
}

// httpConnectionManager builds the HCM network filter: codec AUTO
// (HTTP/1.1 and h2c), WebSocket upgrades, the fault, CORS and router HTTP
// filters.
func httpConnectionManager(o hcmOptions) *listener.Filter {
	m := &hcm.HttpConnectionManager{
		CodecType:  hcm.HttpConnectionManager_AUTO,
		StatPrefix: o.statPrefix,
		HttpFilters: []*hcm.HttpFilter{
			httpFilter(filterFault, &faultv3.HTTPFault{}),
			httpFilter(filterCORS, &corsv3.Cors{}),
			httpFilter(filterRouter, &routerv3.Router{}),
		},
		UseRemoteAddress: wrapBool(o.edge),
		// Istio lets WebSocket upgrades through every HTTP listener.
		UpgradeConfigs: []*hcm.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}},
	}
	if o.inline != nil {
		m.RouteSpecifier = &hcm.HttpConnectionManager_RouteConfig{RouteConfig: o.inline}
	} else {
		m.RouteSpecifier = &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{ConfigSource: adsSource(), RouteConfigName: o.rds}}
	}
	if o.inbound {
		setInboundXFCC(m)
	}
	return &listener.Filter{Name: filterHCM, ConfigType: &listener.Filter_TypedConfig{TypedConfig: toAny(m)}}
}

func httpFilter(name string, cfg proto.Message) *hcm.HttpFilter {
	return &hcm.HttpFilter{Name: name, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: toAny(cfg)}}
}

// weightedCluster is one destination of a TCP route.
type weightedCluster struct {
	name   string
	weight uint32
}

// tcpProxy builds a tcp_proxy filter to one cluster or several weighted.
func tcpProxy(statPrefix string, dests []weightedCluster) *listener.Filter {
	return tcpProxyIdle(statPrefix, dests, nil)
}

// tcpProxyIdle is tcpProxy with an idle timeout (nil: Envoy's 1 h).
func tcpProxyIdle(statPrefix string, dests []weightedCluster, idle *durationpb.Duration) *listener.Filter {
	tp := &tcpproxy.TcpProxy{StatPrefix: statPrefix, IdleTimeout: idle}
	if len(dests) == 1 {
		tp.ClusterSpecifier = &tcpproxy.TcpProxy_Cluster{Cluster: dests[0].name}
	} else {
		wc := &tcpproxy.TcpProxy_WeightedCluster{}
		for _, d := range dests {
			wc.Clusters = append(wc.Clusters, &tcpproxy.TcpProxy_WeightedCluster_ClusterWeight{Name: d.name, Weight: d.weight})
		}
		tp.ClusterSpecifier = &tcpproxy.TcpProxy_WeightedClusters{WeightedClusters: wc}
	}
	return &listener.Filter{Name: filterTCPProxy, ConfigType: &listener.Filter_TypedConfig{TypedConfig: toAny(tp)}}
}

func listenerFilter(name string, cfg proto.Message) *listener.ListenerFilter {
	return &listener.ListenerFilter{Name: name, ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: toAny(cfg)}}
}

func tlsInspector() *listener.ListenerFilter {
	return listenerFilter(filterTLSInspector, &tlsinspector.TlsInspector{})
}

func httpInspector() *listener.ListenerFilter {
	return listenerFilter(filterHTTPInspector, &httpinspector.HttpInspector{})
}

func originalDst() *listener.ListenerFilter {
	return listenerFilter(filterOriginalDst, &originaldst.OriginalDst{})
}

// anyAddress is 0.0.0.0:port.
func anyAddress(port uint32) *core.Address { return socketAddress("0.0.0.0", port) }
