package xds

import (
	"strings"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	router "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/translate"
	"github.com/weftmesh/weft/internal/xds/loadtest"
)

func generate(t *testing.T, g int) *translate.Resources {
	t.Helper()
	store := model.NewStore()
	snap := store.Update(loadtest.Mesh("test", 5, 2, g))
	return loadtest.Generator(snap, &model.Proxy{ID: "p", Namespace: "ns-0"})
}

func TestBuildSnapshotVersions(t *testing.T) {
	a, err := buildSnapshot(generate(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.snap.Consistent(); err != nil {
		t.Errorf("go-control-plane consistency: %v", err)
	}
	again, _ := buildSnapshot(generate(t, 0))
	for _, u := range typeURLs {
		if a.versions[u] != again.versions[u] {
			t.Errorf("%s: same resources, versions %q and %q", TypeName(u), a.versions[u], again.versions[u])
		}
	}
	b, _ := buildSnapshot(generate(t, 1)) // endpoints moved
	for _, u := range typeURLs {
		changed := a.versions[u] != b.versions[u]
		if changed != (u == resource.EndpointType) {
			t.Errorf("%s: version changed=%v after an endpoint-only change", TypeName(u), changed)
		}
	}
	if got := len(a.snap.GetResources(resource.ClusterType)); got != 5 {
		t.Errorf("%d clusters, want 5", got)
	}
	if v := a.snap.GetVersionMap(resource.EndpointType); len(v) != 5 {
		t.Errorf("EDS version map has %d entries, want 5", len(v))
	}
}

func TestBuildSnapshotConsistency(t *testing.T) {
	res := generate(t, 0)
	missing := res.Endpoints[0].ClusterName
	res.Endpoints = append(res.Endpoints[1:], &endpoint.ClusterLoadAssignment{ClusterName: "outbound|1||nobody.uses.me"})
	res.Routes = append(res.Routes, &route.RouteConfiguration{Name: "orphan"})
	ps, err := buildSnapshot(res)
	if err != nil {
		t.Fatal(err)
	}
	eds := ps.snap.GetResources(resource.EndpointType)
	if cla, ok := eds[missing]; !ok || len(cla.(*endpoint.ClusterLoadAssignment).Endpoints) != 0 {
		t.Errorf("missing assignment %q not filled with an empty one: %v", missing, cla)
	}
	if _, ok := eds["outbound|1||nobody.uses.me"]; ok {
		t.Error("unreferenced assignment kept")
	}
	if _, ok := ps.snap.GetResources(resource.RouteType)["orphan"]; ok {
		t.Error("unreferenced route configuration kept")
	}
	if err := ps.snap.Consistent(); err != nil {
		t.Errorf("go-control-plane consistency: %v", err)
	}

	res = generate(t, 0)
	res.Routes = res.Routes[:0]
	if _, err := buildSnapshot(res); err == nil || !strings.Contains(err.Error(), `route configuration "8080"`) {
		t.Errorf("missing route configuration: err = %v", err)
	}
	res = generate(t, 0)
	res.Clusters = append(res.Clusters, res.Clusters[0])
	if _, err := buildSnapshot(res); err == nil || !strings.Contains(err.Error(), "two cds resources named") {
		t.Errorf("duplicate cluster: err = %v", err)
	}
}

// proxylessResources is a proxyless gRPC configuration: an api_listener
// named host:port whose connection manager uses RDS.
func proxylessResources(t *testing.T, host string) *translate.Resources {
	t.Helper()
	ads := &core.ConfigSource{ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}, ResourceApiVersion: core.ApiVersion_V3}
	routerAny, _ := anypb.New(&router.Router{})
	m, err := anypb.New(&hcm.HttpConnectionManager{
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{RouteConfigName: "route-" + host, ConfigSource: ads}},
		HttpFilters:    []*hcm.HttpFilter{{Name: "router", ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: routerAny}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cname := "outbound|8080||" + host
	return &translate.Resources{
		Clusters:  []*cluster.Cluster{{Name: cname, ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS}, EdsClusterConfig: &cluster.Cluster_EdsClusterConfig{EdsConfig: ads}}},
		Endpoints: []*endpoint.ClusterLoadAssignment{{ClusterName: cname}},
		Listeners: []*listener.Listener{{Name: host + ":8080", ApiListener: &listener.ApiListener{ApiListener: m}}},
		Routes: []*route.RouteConfiguration{{Name: "route-" + host, VirtualHosts: []*route.VirtualHost{{
			Name: host, Domains: []string{"*"}, Routes: []*route.Route{{
				Match:  &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
				Action: &route.Route_Route{Route: &route.RouteAction{ClusterSpecifier: &route.RouteAction_Cluster{Cluster: cname}}},
			}},
		}}}},
	}
}

func TestBuildSnapshotAPIListener(t *testing.T) {
	ps, err := buildSnapshot(proxylessResources(t, "echo.default.svc.cluster.local"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ps.snap.GetResources(resource.RouteType)["route-echo.default.svc.cluster.local"]; !ok {
		t.Error("route configuration used by an api_listener was dropped")
	}
	// go-control-plane does not see the api_listener's reference: this is
	// why buildSnapshot checks consistency itself.
	if err := ps.snap.Consistent(); err == nil {
		t.Log("go-control-plane now understands api_listener references")
	}
}
