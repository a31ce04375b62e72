package xds_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/translate"
	"github.com/weftmesh/weft/internal/xds/loadtest"
)

// TestWithTranslator serves the real translator's output to an Envoy-like
// client: it arrives in ADS order, every resource validates, and an
// endpoint change sends EDS alone.
func TestWithTranslator(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(fmt.Sprintf("delta=%v", delta), func(t *testing.T) {
			e := start(t, translate.Generate, loadtest.Mesh("test", 20, 2, 0))
			node := loadtest.Node(0)
			c := e.connect(node, delta, nil)
			waitFor(t, "sync", func() bool { return e.synced(node.Id, 1) })
			var order []string
			for _, ev := range c.log() {
				if n := len(order); n == 0 || order[n-1] != ev.TypeURL {
					order = append(order, ev.TypeURL)
				}
			}
			if want := []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType}; !slices.Equal(order, want) {
				t.Errorf("response types in order %v, want %v", order, want)
			}
			for _, typ := range []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType} {
				names := c.Names(typ)
				if len(names) == 0 {
					t.Errorf("no %s resources", typ)
				}
				for _, n := range names {
					m, err := c.Resource(typ, n).UnmarshalNew()
					if err != nil {
						t.Fatal(err)
					}
					if err := m.(interface{ ValidateAll() error }).ValidateAll(); err != nil {
						t.Errorf("%s %s: %v", typ, n, err)
					}
				}
			}
			if !slices.Contains(c.Names(resource.ClusterType), "outbound|8080||svc-3.ns-0.svc.cluster.local") {
				t.Errorf("clusters %v", c.Names(resource.ClusterType))
			}
			before := c.counts()
			snap := e.store.Update(loadtest.Mesh("test", 20, 2, 1))
			waitFor(t, "sync after endpoint change", func() bool { return e.synced(node.Id, snap.Version) })
			after := c.counts()
			if after["eds"] != before["eds"]+1 || after["cds"] != before["cds"] || after["lds"] != before["lds"] || after["rds"] != before["rds"] {
				t.Errorf("endpoint change: responses %v before, %v after; want one more EDS only", before, after)
			}
		})
	}
}

// TestProxylessWithTranslator asks for one service the way grpc-go does:
// a listener by its host:port name, then its route configuration, cluster
// and endpoints by name.
func TestProxylessWithTranslator(t *testing.T) {
	e := start(t, translate.Generate, loadtest.Mesh("test", 5, 2, 0))
	node := &core.Node{Id: "sidecar~10.1.0.1~client-1.ns-0~ns-0.svc.cluster.local", Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
		"GENERATOR": structpb.NewStringValue("grpc"),
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := discovery.NewAggregatedDiscoveryServiceClient(e.conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	host := "svc-2.ns-0.svc.cluster.local"
	lname := translate.GRPCListenerName(host, 8080)
	ask := func(typ string, names ...string) *discovery.DiscoveryResponse {
		t.Helper()
		if err := st.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: typ, ResourceNames: names}); err != nil {
			t.Fatal(err)
		}
		resp, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetTypeUrl() != typ || len(resp.GetResources()) != len(names) {
			t.Fatalf("asked for %s %v, got %s with %d resources", typ, names, resp.GetTypeUrl(), len(resp.GetResources()))
		}
		// ACK.
		if err := st.Send(&discovery.DiscoveryRequest{TypeUrl: typ, ResourceNames: names, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	ask(resource.ListenerType, lname)
	ask(resource.RouteType, lname)
	cname := "outbound|8080||" + host
	ask(resource.ClusterType, cname)
	resp := ask(resource.EndpointType, cname)
	if resp.GetResources()[0].GetTypeUrl() != resource.EndpointType {
		t.Errorf("EDS resource type %s", resp.GetResources()[0].GetTypeUrl())
	}
}
