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
	tls "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
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
	a, err := buildSnapshot(generate(t, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range typeURLs {
		for name, r := range a.resources(u) {
			m, err := decodeResource(u, r)
			if err != nil {
				t.Fatalf("%s %s: %v", TypeName(u), name, err)
			}
			b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m)
			if got := a.hashes[u][name]; got != cache.HashResource(b) {
				t.Errorf("%s %s: version %s, go-control-plane's hash %s", TypeName(u), name, got, cache.HashResource(b))
			}
		}
	}
	again, _ := buildSnapshot(generate(t, 0), nil)
	for _, u := range typeURLs {
		if a.versions[u] != again.versions[u] {
			t.Errorf("%s: same resources, versions %q and %q", TypeName(u), a.versions[u], again.versions[u])
		}
	}
	b, _ := buildSnapshot(generate(t, 1), nil) // endpoints moved
	for _, u := range typeURLs {
		changed := a.versions[u] != b.versions[u]
		if changed != (u == resource.EndpointType) {
			t.Errorf("%s: version changed=%v after an endpoint-only change", TypeName(u), changed)
		}
	}
	if got := len(a.resources(resource.ClusterType)); got != 5 {
		t.Errorf("%d clusters, want 5", got)
	}
	if v := a.hashes[resource.EndpointType]; len(v) != 5 {
		t.Errorf("EDS version map has %d entries, want 5", len(v))
	}
}

func TestBuildSnapshotConsistency(t *testing.T) {
	res := generate(t, 0)
	missing := res.Endpoints[0].ClusterName
	res.Endpoints = append(res.Endpoints[1:], &endpoint.ClusterLoadAssignment{ClusterName: "outbound|1||nobody.uses.me"})
	res.Routes = append(res.Routes, &route.RouteConfiguration{Name: "orphan"})
	ps, err := buildSnapshot(res, nil)
	if err != nil {
		t.Fatal(err)
	}
	eds := ps.resources(resource.EndpointType)
	if r, ok := eds[missing]; !ok {
		t.Errorf("missing assignment %q not filled in", missing)
	} else if cla, err := decodeResource(resource.EndpointType, r); err != nil || cla.(*endpoint.ClusterLoadAssignment).GetClusterName() != missing ||
		len(cla.(*endpoint.ClusterLoadAssignment).GetEndpoints()) != 0 {
		t.Errorf("missing assignment %q not filled with an empty one: %v, %v", missing, cla, err)
	}
	if _, ok := eds["outbound|1||nobody.uses.me"]; ok {
		t.Error("unreferenced assignment kept")
	}
	if _, ok := ps.resources(resource.RouteType)["orphan"]; ok {
		t.Error("unreferenced route configuration kept")
	}

	res = generate(t, 0)
	res.Routes = res.Routes[:0]
	if _, err := buildSnapshot(res, nil); err == nil || !strings.Contains(err.Error(), `route configuration "8080"`) {
		t.Errorf("missing route configuration: err = %v", err)
	}
	res = generate(t, 0)
	res.Clusters = append(res.Clusters, res.Clusters[0])
	if _, err := buildSnapshot(res, nil); err == nil || !strings.Contains(err.Error(), "two cds resources named") {
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
	ps, err := buildSnapshot(proxylessResources(t, "echo.default.svc.cluster.local"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ps.resources(resource.RouteType)["route-echo.default.svc.cluster.local"]; !ok {
		t.Error("route configuration used by an api_listener was dropped")
	}
}

func TestRawResourcesShared(t *testing.T) {
	a, _ := buildSnapshot(generate(t, 0), nil)
	b, _ := buildSnapshot(generate(t, 0), nil)
	name := "outbound|8080||svc-1.ns-0.svc.cluster.local"
	ra := a.resources(resource.ClusterType)[name].GetValue()
	rb := b.resources(resource.ClusterType)[name].GetValue()
	if len(ra) == 0 || &ra[0] != &rb[0] {
		t.Error("identical resources of two proxies are not shared")
	}
	m, err := decodeResource(resource.ClusterType, a.resources(resource.ClusterType)[name])
	if err != nil {
		t.Fatal(err)
	}
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil || string(out) != string(ra) {
		t.Errorf("resource decodes and marshals to %d bytes (%v), want its %d", len(out), err, len(ra))
	}
}

func TestEncodingMemo(t *testing.T) {
	res := generate(t, 0)
	var memo encodingMemo
	a, err := buildSnapshot(res, &memo)
	if err != nil {
		t.Fatal(err)
	}
	if len(memo.m) != len(res.Endpoints) {
		t.Fatalf("memo has %d entries, want %d", len(memo.m), len(res.Endpoints))
	}
	// The same assignment objects again: encodings come from the memo.
	enc, ok := memo.lookup(res.Endpoints[0])
	if !ok {
		t.Fatal("shared assignment not remembered")
	}
	b, _ := buildSnapshot(res, &memo)
	name := res.Endpoints[0].ClusterName
	if b.resources(resource.EndpointType)[name] != enc.any || a.versions[resource.EndpointType] != b.versions[resource.EndpointType] {
		t.Error("second snapshot did not reuse the remembered encoding")
	}
	// An equal but distinct object is not found by identity.
	if _, ok := memo.lookup(proto.Clone(res.Endpoints[0]).(*endpoint.ClusterLoadAssignment)); ok {
		t.Error("memo found a different object")
	}
}

func TestBuildSnapshotSecrets(t *testing.T) {
	res := generate(t, 0)
	sds := func(name string) *tls.SdsSecretConfig {
		return &tls.SdsSecretConfig{Name: name, SdsConfig: &core.ConfigSource{ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}}}
	}
	up, err := anypb.New(&tls.UpstreamTlsContext{CommonTlsContext: &tls.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tls.SdsSecretConfig{sds("default")},
		ValidationContextType:          &tls.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: sds("ROOTCA")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	res.Clusters[0].TransportSocket = &core.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: up}}
	down, _ := anypb.New(&tls.DownstreamTlsContext{CommonTlsContext: &tls.CommonTlsContext{TlsCertificateSdsSecretConfigs: []*tls.SdsSecretConfig{sds("gateway-cert")}}})
	res.Listeners[0].FilterChains[0].TransportSocket = &core.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: down}}
	for _, n := range []string{"default", "ROOTCA", "gateway-cert", "unused"} {
		res.Secrets = append(res.Secrets, &tls.Secret{Name: n})
	}
	ps, err := buildSnapshot(res, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := ps.resources(resource.SecretType)
	if len(got) != 3 || got["unused"] != nil || got["default"] == nil || got["ROOTCA"] == nil || got["gateway-cert"] == nil {
		t.Errorf("secrets %v, want default, ROOTCA and gateway-cert", sortedKeys(got))
	}
}
