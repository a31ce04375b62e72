package interop_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	xdsgrpc "google.golang.org/grpc/xds"

	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy/listener"
	"github.com/weftmesh/weft/internal/proxy/router"
	"github.com/weftmesh/weft/internal/proxy/upstream"
	"github.com/weftmesh/weft/internal/translate"
	"github.com/weftmesh/weft/internal/xds"
)

// translateYAML decodes yaml (failing on any decoding diagnostic) and
// translates it for proxy.
func translateYAML(t *testing.T, file, yaml string, proxy *model.Proxy) *translate.Resources {
	t.Helper()
	cfgs, diags := manifest.Decode(file, []byte(yaml), "file")
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	snap := model.NewStore().Update(&model.SourceState{Source: "file", Configs: cfgs, Synced: true})
	return translate.Generate(snap, proxy)
}

// gatewayResources translates yaml for the ingress gateway proxy
// (istio=ingressgateway in istio-system), failing on any diagnostic.
func gatewayResources(t *testing.T, file, yaml string) *translate.Resources {
	t.Helper()
	res := translateYAML(t, file, yaml, &model.Proxy{Type: model.ProxyRouter, Namespace: "istio-system", Workload: "istio-ingressgateway",
		Labels: map[string]string{"istio": "ingressgateway"}, IPs: []string{"127.0.0.1"}})
	if len(res.Diagnostics) > 0 {
		t.Fatalf("diagnostics: %v", res.Diagnostics)
	}
	return res
}

// serveListeners runs res's listeners named in names (every listener
// when names is empty), each checked with ValidateAll, with weft-proxy's
// own compilers (clusters and endpoints, RDS route tables) until the test
// ends. deps supplies secrets and observers; its Resolver is set here. It
// returns the manager and the listeners it serves, in res's order.
func serveListeners(t *testing.T, res *translate.Resources, deps listener.Deps, names ...string) (*listener.Manager, []*listener.Listener) {
	t.Helper()
	cs := map[string]*clusterv3.Cluster{}
	for _, c := range res.Clusters {
		cs[c.Name] = c
	}
	es := map[string]*endpointv3.ClusterLoadAssignment{}
	for _, e := range res.Endpoints {
		es[e.ClusterName] = e
	}
	set, commit, err := upstream.Build(cs, es, nil)
	if err != nil {
		t.Fatal(err)
	}
	commit()
	rr := routedResolver{set: set, tables: map[string]*router.Table{}}
	for _, rc := range res.Routes {
		tab, err := router.Compile(rc)
		if err != nil {
			t.Fatal(err)
		}
		rr.tables[rc.Name] = tab
	}
	deps.Resolver = rr
	mgr := listener.NewManager(rr, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		mgr.Stop(ctx)
	})
	var ls []*listener.Listener
	for _, lc := range res.Listeners {
		if len(names) > 0 && !slices.Contains(names, lc.Name) {
			continue
		}
		if err := lc.ValidateAll(); err != nil {
			t.Fatalf("listener %s: ValidateAll: %v", lc.Name, err)
		}
		c, err := listener.Compile(lc, deps)
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, c)
	}
	if len(names) > 0 && len(ls) != len(names) {
		t.Fatalf("serving %d listeners, want %v", len(ls), names)
	}
	if err := mgr.Apply(ls); err != nil {
		t.Fatal(err)
	}
	return mgr, ls
}

// serveTranslated serves every listener of res (serveListeners) and
// returns how many.
func serveTranslated(t *testing.T, res *translate.Resources) int {
	t.Helper()
	_, ls := serveListeners(t, res, listener.Deps{})
	return len(ls)
}

// proxylessConn serves configs through weft's xDS server with generator
// gen and returns a grpc-go client connection to
// xds:///echo.default.svc.cluster.local:8080 that takes its configuration
// from it, as a proxyless client (GENERATOR grpc) in namespace default.
func proxylessConn(t *testing.T, configs []*model.Config, gen xds.Generator) *grpc.ClientConn {
	t.Helper()
	store := model.NewStore()
	store.Update(&model.SourceState{Source: "test", Configs: configs, Synced: true})
	srv := xds.New(xds.Options{Generator: gen, Store: store, Debounce: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, lis) }()
	bootstrap := fmt.Sprintf(`{
		"xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
		"node": {"id": "sidecar~127.0.0.9~client.default~default.svc.cluster.local", "metadata": {"GENERATOR": "grpc"}}
	}`, lis.Addr().String())
	resolver, err := xdsgrpc.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("xds:///echo.default.svc.cluster.local:8080", grpc.WithResolvers(resolver),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("xDS server: %v", err)
		}
	})
	return conn
}
