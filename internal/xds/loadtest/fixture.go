package loadtest

import (
	"fmt"
	"strconv"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	router "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/translate"
)

// Mesh returns a synthetic source state with the given number of HTTP
// services (svc-N.ns-M.svc.cluster.local, port 8080, ten per namespace)
// and endpoints per service. Generation g shifts every endpoint's address
// so that successive generations differ in endpoints only.
func Mesh(source string, services, endpoints, g int) *model.SourceState {
	st := &model.SourceState{Source: source, Synced: true}
	for i := range services {
		ns := "ns-" + strconv.Itoa(i/10)
		host := fmt.Sprintf("svc-%d.%s.svc.cluster.local", i, ns)
		st.Services = append(st.Services, &model.Service{
			Hostname: host, Namespace: ns,
			Addresses: []string{fmt.Sprintf("10.96.%d.%d", i/250, i%250+1)},
			Ports:     []model.Port{{Name: "http", Number: 8080, Protocol: model.ProtocolHTTP}},
		})
		for e := range endpoints {
			n := i*endpoints + e + g
			st.Endpoints = append(st.Endpoints, &model.Endpoint{
				Service: host, Address: fmt.Sprintf("10.%d.%d.%d", 1+n/65536%200, n/256%256, n%256),
				Namespace: ns, Workload: fmt.Sprintf("svc-%d", i), TLSMode: model.TLSModeIstio, Healthy: true,
				Labels: map[string]string{"app": fmt.Sprintf("svc-%d", i)},
			})
		}
	}
	return st
}

// Node returns an Istio-style sidecar node for simulated client i.
func Node(i int) *core.Node {
	ns := "ns-" + strconv.Itoa(i%10)
	ip := fmt.Sprintf("10.200.%d.%d", i/250, i%250+1)
	return &core.Node{
		Id: fmt.Sprintf("sidecar~%s~load-%d.%s~%s.svc.cluster.local", ip, i, ns, ns),
		Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			"NAMESPACE": structpb.NewStringValue(ns),
			"LABELS":    structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"app": structpb.NewStringValue(fmt.Sprintf("load-%d", i))}}),
		}},
	}
}

// Generator is a small stand-in for the real translator, for load tests
// and unit tests: for every service visible from the proxy's namespace
// it makes an EDS cluster "outbound|PORT||HOST" with its endpoints, and
// for every port a listener "0.0.0.0_PORT" whose HTTP connection manager
// reads route configuration "PORT" over ADS, with one virtual host per
// service. Its output passes ValidateAll.
func Generator(snap *model.Snapshot, p *model.Proxy) *translate.Resources {
	res := &translate.Resources{}
	vhosts := map[uint32][]*route.VirtualHost{}
	var ports []uint32
	ads := &core.ConfigSource{ResourceApiVersion: core.ApiVersion_V3, ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}}
	for _, svc := range snap.Services() {
		if !svc.VisibleFrom(p.Namespace) {
			continue
		}
		for _, port := range svc.Ports {
			name := fmt.Sprintf("outbound|%d||%s", port.Number, svc.Hostname)
			res.Clusters = append(res.Clusters, &cluster.Cluster{
				Name:                 name,
				ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
				EdsClusterConfig:     &cluster.Cluster_EdsClusterConfig{EdsConfig: ads},
				ConnectTimeout:       durationpb.New(10e9),
			})
			cla := &endpoint.ClusterLoadAssignment{ClusterName: name}
			var lbs []*endpoint.LbEndpoint
			for _, ep := range snap.Endpoints(svc.Hostname) {
				lbs = append(lbs, &endpoint.LbEndpoint{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
					Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
						Address: ep.Address, PortSpecifier: &core.SocketAddress_PortValue{PortValue: ep.TargetPort(port)},
					}}},
				}}})
			}
			if len(lbs) > 0 {
				cla.Endpoints = []*endpoint.LocalityLbEndpoints{{Locality: &core.Locality{}, LoadBalancingWeight: wrapperspb.UInt32(1), LbEndpoints: lbs}}
			}
			res.Endpoints = append(res.Endpoints, cla)
			if _, ok := vhosts[port.Number]; !ok {
				ports = append(ports, port.Number)
			}
			vhosts[port.Number] = append(vhosts[port.Number], &route.VirtualHost{
				Name:    fmt.Sprintf("%s:%d", svc.Hostname, port.Number),
				Domains: []string{svc.Hostname, fmt.Sprintf("%s:%d", svc.Hostname, port.Number)},
				Routes: []*route.Route{{
					Match:  &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
					Action: &route.Route_Route{Route: &route.RouteAction{ClusterSpecifier: &route.RouteAction_Cluster{Cluster: name}}},
				}},
			})
		}
	}
	routerAny, _ := anypb.New(&router.Router{})
	for _, port := range ports {
		rname := strconv.Itoa(int(port))
		res.Routes = append(res.Routes, &route.RouteConfiguration{Name: rname, VirtualHosts: vhosts[port]})
		m := &hcm.HttpConnectionManager{
			StatPrefix:     "outbound_0.0.0.0_" + rname,
			RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{RouteConfigName: rname, ConfigSource: ads}},
			HttpFilters:    []*hcm.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: routerAny}}},
		}
		mAny, _ := anypb.New(m)
		res.Listeners = append(res.Listeners, &listener.Listener{
			Name: "0.0.0.0_" + rname,
			Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
				Address: "0.0.0.0", PortSpecifier: &core.SocketAddress_PortValue{PortValue: port},
			}}},
			FilterChains: []*listener.FilterChain{{Filters: []*listener.Filter{{
				Name: "envoy.filters.network.http_connection_manager", ConfigType: &listener.Filter_TypedConfig{TypedConfig: mAny},
			}}}},
		})
	}
	return res
}
