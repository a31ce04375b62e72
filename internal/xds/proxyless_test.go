package xds_test

import (
	"fmt"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	router "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/translate"
)

// proxylessGenerator makes a proxyless gRPC configuration: per service
// port an api_listener "host:port" using RDS "route-host", an EDS cluster
// and its (empty) assignment.
func proxylessGenerator(snap *model.Snapshot, p *model.Proxy) *translate.Resources {
	ads := &core.ConfigSource{ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}, ResourceApiVersion: core.ApiVersion_V3}
	routerAny, _ := anypb.New(&router.Router{})
	res := &translate.Resources{}
	for _, svc := range snap.Services() {
		for _, port := range svc.Ports {
			cname := fmt.Sprintf("outbound|%d||%s", port.Number, svc.Hostname)
			rname := "route-" + svc.Hostname
			m, _ := anypb.New(&hcm.HttpConnectionManager{
				RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{RouteConfigName: rname, ConfigSource: ads}},
				HttpFilters:    []*hcm.HttpFilter{{Name: "router", ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: routerAny}}},
			})
			res.Clusters = append(res.Clusters, &cluster.Cluster{Name: cname, ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
				EdsClusterConfig: &cluster.Cluster_EdsClusterConfig{EdsConfig: ads}})
			res.Endpoints = append(res.Endpoints, &endpoint.ClusterLoadAssignment{ClusterName: cname})
			res.Listeners = append(res.Listeners, &listener.Listener{Name: fmt.Sprintf("%s:%d", svc.Hostname, port.Number), ApiListener: &listener.ApiListener{ApiListener: m}})
			res.Routes = append(res.Routes, &route.RouteConfiguration{Name: rname, VirtualHosts: []*route.VirtualHost{{
				Name: svc.Hostname, Domains: []string{"*"}, Routes: []*route.Route{{
					Match:  &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
					Action: &route.Route_Route{Route: &route.RouteAction{ClusterSpecifier: &route.RouteAction_Cluster{Cluster: cname}}},
				}},
			}}})
		}
	}
	return res
}
