package xds_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weftmesh/weft/internal/xds"
	"github.com/weftmesh/weft/internal/xds/loadtest"
)

// sotwStream is the common shape of the per-type discovery streams.
type sotwStream interface {
	Send(*discovery.DiscoveryRequest) error
	Recv() (*discovery.DiscoveryResponse, error)
}

// TestPerTypeStreams serves one proxy over four separate streams (CDS,
// EDS, LDS, RDS), as Envoy does without ADS.
func TestPerTypeStreams(t *testing.T) {
	e := start(t, nil, loadtest.Mesh("test", 3, 1, 0))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	node := loadtest.Node(0)
	open := map[string]func() (sotwStream, error){
		resource.ClusterType: func() (sotwStream, error) {
			return clusterservice.NewClusterDiscoveryServiceClient(e.conn).StreamClusters(ctx)
		},
		resource.EndpointType: func() (sotwStream, error) {
			return endpointservice.NewEndpointDiscoveryServiceClient(e.conn).StreamEndpoints(ctx)
		},
		resource.ListenerType: func() (sotwStream, error) {
			return listenerservice.NewListenerDiscoveryServiceClient(e.conn).StreamListeners(ctx)
		},
		resource.RouteType: func() (sotwStream, error) {
			return routeservice.NewRouteDiscoveryServiceClient(e.conn).StreamRoutes(ctx)
		},
	}
	names := map[string][]string{
		resource.EndpointType: {"outbound|8080||svc-0.ns-0.svc.cluster.local", "outbound|8080||svc-1.ns-0.svc.cluster.local", "outbound|8080||svc-2.ns-0.svc.cluster.local"},
		resource.RouteType:    {"8080"},
	}
	for typ, o := range open {
		st, err := o()
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&discovery.DiscoveryRequest{Node: node, ResourceNames: names[typ]}); err != nil {
			t.Fatal(err)
		}
		resp, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetTypeUrl() != typ || len(resp.GetResources()) == 0 {
			t.Fatalf("%s stream: response %s with %d resources", xds.TypeName(typ), resp.GetTypeUrl(), len(resp.GetResources()))
		}
		if err := st.Send(&discovery.DiscoveryRequest{ResourceNames: names[typ], VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "four streams synced", func() bool {
		st := e.status(node.Id)
		return st != nil && st.Streams == 4 && e.synced(node.Id, 1)
	})
}

// TestOverlappingStreams reconnects a proxy before its old stream is
// gone: closing the old one must not forget the proxy.
func TestOverlappingStreams(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(fmt.Sprintf("delta=%v", delta), func(t *testing.T) {
			e := start(t, nil, loadtest.Mesh("test", 3, 1, 0))
			node := loadtest.Node(0)
			old := e.connect(node, delta, nil)
			waitFor(t, "sync", func() bool { return e.synced(node.Id, 1) })
			cur := e.connect(node, delta, nil)
			waitFor(t, "second stream synced", func() bool {
				return e.status(node.Id).Streams == 2 && cur.Count(resource.RouteType) == 1
			})
			old.close()
			waitFor(t, "old stream gone", func() bool { return e.status(node.Id).Streams == 1 })
			snap := e.store.Update(loadtest.Mesh("test", 3, 1, 1))
			waitFor(t, "push to the remaining stream", func() bool {
				return cur.Count(resource.EndpointType) == 2 && e.synced(node.Id, snap.Version)
			})
		})
	}
}

// TestMixedModeStreams connects one state-of-the-world proxy and one delta
// proxy. go-control-plane numbers both kinds of stream from 1, so the
// server must not mix up their records of what was sent and acknowledged:
// after a change both proxies are synced, and closing one stream leaves
// the other proxy connected.
func TestMixedModeStreams(t *testing.T) {
	e := start(t, nil, loadtest.Mesh("test", 3, 1, 0))
	sotwNode, deltaNode := loadtest.Node(0), loadtest.Node(1)
	sotw := e.connect(sotwNode, false, nil)
	e.connect(deltaNode, true, nil)
	waitFor(t, "both synced", func() bool { return e.synced(sotwNode.Id, 1) && e.synced(deltaNode.Id, 1) })
	snap := e.store.Update(loadtest.Mesh("test", 4, 1, 0))
	waitFor(t, "both synced after a service is added", func() bool {
		return e.synced(sotwNode.Id, snap.Version) && e.synced(deltaNode.Id, snap.Version)
	})
	sotw.close()
	waitFor(t, "the SotW proxy gone", func() bool { return e.status(sotwNode.Id) == nil })
	if st := e.status(deltaNode.Id); st == nil || st.Streams != 1 {
		t.Fatalf("closing the SotW stream changed the delta proxy: %+v", st)
	}
	snap = e.store.Update(loadtest.Mesh("test", 4, 1, 1))
	waitFor(t, "delta proxy synced after an endpoint change", func() bool { return e.synced(deltaNode.Id, snap.Version) })
}
