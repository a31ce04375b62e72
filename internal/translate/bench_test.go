package translate

import (
	"fmt"
	"testing"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/model"
)

// meshOfSize builds a snapshot of n HTTP services in namespace default,
// each with perService inline endpoints spread over three zones, through
// model.Store.Update with a memory source of ServiceEntry objects, plus a
// DestinationRule with two subsets for every tenth service.
func meshOfSize(n, perService int) *model.Snapshot {
	return meshWithRoutes(n, perService, false)
}

// meshWithRoutes is meshOfSize, plus, with routes, a VirtualService per
// service sending "end-user: jason" to subset v2 and the rest to v1, and
// a DestinationRule with those subsets for every service.
func meshWithRoutes(n, perService int, routes bool) *model.Snapshot {
	var configs []*model.Config
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("svc-%04d", i)
		se := &networking.ServiceEntry{
			Hosts:      []string{name + ".default.svc.cluster.local"},
			Addresses:  []string{fmt.Sprintf("10.%d.%d.1", 100+i/250, i%250)},
			Location:   networking.ServiceEntry_MESH_INTERNAL,
			Resolution: networking.ServiceEntry_STATIC,
			Ports:      []*networking.ServicePort{{Number: 8080, Name: "http", Protocol: "HTTP"}},
		}
		for j := 0; j < perService; j++ {
			se.Endpoints = append(se.Endpoints, &networking.WorkloadEntry{
				Address:        fmt.Sprintf("10.%d.%d.%d", i/250, i%250, j+2),
				Labels:         map[string]string{"app": name, "version": fmt.Sprintf("v%d", j%2+1), model.LabelTLSMode: "istio"},
				ServiceAccount: name,
				Locality:       fmt.Sprintf("region/zone-%d", j%3),
			})
		}
		configs = append(configs, &model.Config{
			Meta: model.Meta{Kind: model.KindServiceEntry, Name: name, Namespace: "default", Source: "memory"},
			Spec: se,
		})
		if routes {
			configs = append(configs, &model.Config{
				Meta: model.Meta{Kind: model.KindVirtualService, Name: name, Namespace: "default", Source: "memory"},
				Spec: &networking.VirtualService{Hosts: []string{name}, Http: []*networking.HTTPRoute{
					{
						Match: []*networking.HTTPMatchRequest{{Headers: map[string]*networking.StringMatch{"end-user": {MatchType: &networking.StringMatch_Exact{Exact: "jason"}}}}},
						Route: []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: name, Subset: "v2"}}},
					},
					{Route: []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: name, Subset: "v1"}}}},
				}},
			})
		}
		if i%10 == 0 || routes {
			configs = append(configs, &model.Config{
				Meta: model.Meta{Kind: model.KindDestinationRule, Name: name, Namespace: "default", Source: "memory"},
				Spec: &networking.DestinationRule{Host: name, Subsets: []*networking.Subset{
					{Name: "v1", Labels: map[string]string{"version": "v1"}},
					{Name: "v2", Labels: map[string]string{"version": "v2"}},
				}},
			})
		}
	}
	return model.NewStore().Update(&model.SourceState{Source: "memory", Configs: configs, Synced: true})
}

// BenchmarkGenerate measures one full generation for a sidecar in a mesh
// of 1000 services and 10000 endpoints.
func BenchmarkGenerate(b *testing.B) {
	snap := meshOfSize(1000, 10)
	proxy := &model.Proxy{Type: model.ProxySidecar, Namespace: "default", Labels: map[string]string{"app": "svc-0000"}, IPs: []string{"10.0.0.2"}}
	r := Generate(snap, proxy)
	if len(r.Clusters) < 1000 || len(r.Endpoints) < 1000 {
		b.Fatalf("generated %d clusters, %d load assignments", len(r.Clusters), len(r.Endpoints))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Generate(snap, proxy)
	}
}

// BenchmarkGenerateWithRoutes is BenchmarkGenerate with a VirtualService
// and DestinationRule (two subsets) for each of the 1000 services.
func BenchmarkGenerateWithRoutes(b *testing.B) {
	snap := meshWithRoutes(1000, 10, true)
	proxy := &model.Proxy{Type: model.ProxySidecar, Namespace: "default", Labels: map[string]string{"app": "svc-0000"}, IPs: []string{"10.0.0.2"}}
	if r := Generate(snap, proxy); len(r.Clusters) < 3000 || len(r.Diagnostics) > 0 {
		b.Fatalf("generated %d clusters, diagnostics %v", len(r.Clusters), r.Diagnostics)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Generate(snap, proxy)
	}
}

// BenchmarkGenerateCached generates the 1000-service mesh for ten proxies
// per iteration through one Cache, as the xDS server does on a push.
func BenchmarkGenerateCached(b *testing.B) {
	snap := meshOfSize(1000, 10)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c := NewCache()
		for p := 0; p < 10; p++ {
			c.Generate(snap, &model.Proxy{Type: model.ProxySidecar, Namespace: "default", IPs: []string{fmt.Sprintf("10.0.0.%d", p+2)}})
		}
	}
}

// BenchmarkGenerateUncached is BenchmarkGenerateCached without the cache.
func BenchmarkGenerateUncached(b *testing.B) {
	snap := meshOfSize(1000, 10)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		for p := 0; p < 10; p++ {
			Generate(snap, &model.Proxy{Type: model.ProxySidecar, Namespace: "default", IPs: []string{fmt.Sprintf("10.0.0.%d", p+2)}})
		}
	}
}

// TestCacheMatchesGenerate checks that cached generation equals plain
// generation, for every corpus case and across snapshots.
func TestCacheMatchesGenerate(t *testing.T) {
	c := NewCache()
	for name, proxies := range goldenCases {
		snap := loadCase(t, name)
		for round := 0; round < 2; round++ {
			for _, p := range proxies {
				want := marshalResources(t, Generate(snap, p))
				if got := marshalResources(t, c.Generate(snap, p)); string(got) != string(want) {
					t.Errorf("%s: cached output differs", name)
				}
			}
		}
	}
}

// TestMeshOfSizeValid checks the benchmark's output is valid Envoy
// configuration (at a smaller size, to stay fast).
func TestMeshOfSizeValid(t *testing.T) {
	r := Generate(meshOfSize(50, 10), &model.Proxy{Type: model.ProxySidecar, Namespace: "default", IPs: []string{"10.0.0.2"}})
	validateResources(t, r)
	if len(r.Endpoints) != 50+5*2 {
		t.Errorf("got %d load assignments, want 60", len(r.Endpoints))
	}
}
