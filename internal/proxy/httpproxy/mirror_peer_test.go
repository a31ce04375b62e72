package httpproxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/proxy/router"
	"github.com/weftmesh/weft/internal/proxy/telemetry/peermeta"
	"github.com/weftmesh/weft/internal/proxy/upstream"
	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

// twoClusterResolver routes to "c" and mirrors to "m".
type twoClusterResolver struct {
	tab  *router.Table
	c, m *upstream.Cluster
}

func (r twoClusterResolver) RouteTable(string) *router.Table { return r.tab }
func (r twoClusterResolver) Cluster(name string) *upstream.Cluster {
	switch name {
	case "c":
		return r.c
	case "m":
		return r.m
	}
	return nil
}

// TestMirrorCarriesPeerMetadata: a shadow request to a mesh endpoint
// carries the client's peer metadata exchange headers like the original
// (Istio's exchange filter runs before the router, which copies the
// request for the mirror).
func TestMirrorCarriesPeerMetadata(t *testing.T) {
	client := exchange(t, "client", "client")
	got := make(chan http.Header, 4)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		h.Set("Host", r.Host)
		got <- h
	}))
	defer app.Close()
	mesh := func(name string) *upstream.Cluster {
		cfg := xdstest.StaticCluster(name, strings.TrimPrefix(app.URL, "http://"))
		cfg.LoadAssignment.Endpoints[0].LbEndpoints[0].Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			"istio": {Fields: map[string]*structpb.Value{"workload": structpb.NewStringValue("echo-v2;default;echo;v2;Kubernetes")}},
		}}
		cl, err := upstream.Compile(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	tab, err := router.Compile(&routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{
		Name: "vh", Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier:      &routev3.RouteAction_Cluster{Cluster: "c"},
				RequestMirrorPolicies: []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "m"}},
			}},
		}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{Resolver: twoClusterResolver{tab: tab, c: mesh("c"), m: mesh("m")}, RouteName: "r", PeerExchange: client}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "http://echo/x", nil))
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	seen := map[string]http.Header{}
	for len(seen) < 2 {
		select {
		case hd := <-got:
			seen[hd.Get("Host")] = hd
		case <-time.After(10 * time.Second):
			t.Fatalf("requests seen: %v", seen)
		}
	}
	for _, host := range []string{"echo", "echo-shadow"} {
		hd, ok := seen[host]
		if !ok {
			t.Fatalf("no request with Host %s: %v", host, seen)
		}
		if hd.Get(peermeta.HeaderMetadata) != client.Value() || hd.Get(peermeta.HeaderID) != "sidecar~client" {
			t.Errorf("%s request without the peer metadata headers: %v", host, hd)
		}
	}
}
