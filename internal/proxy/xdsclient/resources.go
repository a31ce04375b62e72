package xdsclient

import (
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Type URLs of the four resource types weft-proxy subscribes to.
const (
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
)

// subscriptionOrder is the order in which types are first requested,
// as Envoy does: clusters (then their endpoints), then listeners (then
// their routes).
var subscriptionOrder = []string{ClusterType, EndpointType, ListenerType, RouteType}

// Snapshot is one complete xDS configuration. It is never modified after
// being handed to a Handler.
type Snapshot struct {
	Listeners map[string]*listenerv3.Listener
	Clusters  map[string]*clusterv3.Cluster
	Routes    map[string]*routev3.RouteConfiguration
	Endpoints map[string]*endpointv3.ClusterLoadAssignment
	// Versions maps a type URL to the version of its last accepted response.
	Versions map[string]string
	// Complete is false when the warming timeout forced an incomplete
	// config out; Missing then lists what was absent.
	Complete bool
	Missing  []string
}

type validator interface {
	ValidateAll() error
}

// decode turns an Any of the expected type into its message and name.
func decode(typeURL string, a *anypb.Any) (proto.Message, string, error) {
	if a.GetTypeUrl() != typeURL {
		return nil, "", fmt.Errorf("resource of type %q in a %q response", a.GetTypeUrl(), typeURL)
	}
	var m proto.Message
	switch typeURL {
	case ClusterType:
		m = &clusterv3.Cluster{}
	case EndpointType:
		m = &endpointv3.ClusterLoadAssignment{}
	case ListenerType:
		m = &listenerv3.Listener{}
	case RouteType:
		m = &routev3.RouteConfiguration{}
	default:
		return nil, "", fmt.Errorf("unsupported type %q", typeURL)
	}
	if err := a.UnmarshalTo(m); err != nil {
		return nil, "", fmt.Errorf("decoding %s: %w", typeURL, err)
	}
	name := ResourceName(m)
	if v, ok := m.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			return nil, name, fmt.Errorf("%s: %w", name, err)
		}
	}
	return m, name, nil
}

// ResourceName returns the xDS name of a resource.
func ResourceName(m proto.Message) string {
	switch r := m.(type) {
	case *clusterv3.Cluster:
		return r.GetName()
	case *endpointv3.ClusterLoadAssignment:
		return r.GetClusterName()
	case *listenerv3.Listener:
		return r.GetName()
	case *routev3.RouteConfiguration:
		return r.GetName()
	}
	return ""
}

// EDSName is the ClusterLoadAssignment name an EDS cluster asks for, or
// "" for clusters of other discovery types.
func EDSName(c *clusterv3.Cluster) string {
	if c.GetType() != clusterv3.Cluster_EDS {
		return ""
	}
	if n := c.GetEdsClusterConfig().GetServiceName(); n != "" {
		return n
	}
	return c.GetName()
}

// ListenerHCMs returns every HttpConnectionManager in a listener's filter
// chains (default chain included) and the tcp_proxy clusters.
func ListenerHCMs(l *listenerv3.Listener) (hcms []*hcmv3.HttpConnectionManager, tcpClusters []string) {
	chains := append([]*listenerv3.FilterChain{}, l.GetFilterChains()...)
	if d := l.GetDefaultFilterChain(); d != nil {
		chains = append(chains, d)
	}
	for _, fc := range chains {
		for _, f := range fc.GetFilters() {
			tc := f.GetTypedConfig()
			if tc == nil {
				continue
			}
			switch tc.GetTypeUrl() {
			case "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager":
				h := &hcmv3.HttpConnectionManager{}
				if tc.UnmarshalTo(h) == nil {
					hcms = append(hcms, h)
				}
			case "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy":
				t := &tcpv3.TcpProxy{}
				if tc.UnmarshalTo(t) == nil {
					if c := t.GetCluster(); c != "" {
						tcpClusters = append(tcpClusters, c)
					}
					for _, w := range t.GetWeightedClusters().GetClusters() {
						tcpClusters = append(tcpClusters, w.GetName())
					}
				}
			}
		}
	}
	if al := l.GetApiListener().GetApiListener(); al != nil {
		h := &hcmv3.HttpConnectionManager{}
		if al.UnmarshalTo(h) == nil {
			hcms = append(hcms, h)
		}
	}
	return hcms, tcpClusters
}

// RouteClusters lists the clusters a route configuration sends traffic to.
func RouteClusters(rc *routev3.RouteConfiguration, add func(string)) {
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			ra := r.GetRoute()
			if ra == nil {
				continue
			}
			if c := ra.GetCluster(); c != "" {
				add(c)
			}
			for _, w := range ra.GetWeightedClusters().GetClusters() {
				add(w.GetName())
			}
			for _, m := range ra.GetRequestMirrorPolicies() {
				add(m.GetCluster())
			}
		}
	}
}
