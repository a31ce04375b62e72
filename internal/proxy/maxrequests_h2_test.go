package proxy

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

// TestMaxRequestsPerConnectionHTTP2Upstream: through the proxy, an
// HTTP/2 (h2c) upstream connection carries at most
// max_requests_per_connection requests, then a new one is opened; the
// stat upstream_cx_max_requests counts the drained connections.
func TestMaxRequestsPerConnectionHTTP2Upstream(t *testing.T) {
	var conns, h1 atomic.Int64
	up := httptest.NewUnstartedServer(h2c.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			h1.Add(1)
		}
		fmt.Fprint(w, "h2")
	}), &http2.Server{}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	t.Cleanup(up.Close)

	const name = "outbound|80||h2.default.svc.cluster.local"
	cl := xdstest.StaticCluster(name, up.Listener.Addr().String())
	cl.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": xdstest.Any(&httpv3.HttpProtocolOptions{
		CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{MaxRequestsPerConnection: wrapperspb.UInt32(3)},
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}}}})}
	lis := xdstest.FreeAddr(t)
	h := newHarness(t, xdstest.Resources{
		Clusters:  []*clusterv3.Cluster{cl},
		Listeners: []*listenerv3.Listener{xdstest.HTTPListener("0.0.0.0_80", lis, xdstest.HCM("80", "80"))},
		Routes:    []*routev3.RouteConfiguration{xdstest.RouteConfig("80", name)},
	})
	waitFor(t, "listener", func() bool { return h.p.ListenerAddr(lis) != "" })
	for i := range 9 {
		if code, body, _ := get(t, "http://"+lis+"/"); code != 200 || body != "h2" {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("9 requests with max_requests_per_connection 3 used %d HTTP/2 upstream connections, want 3", n)
	}
	if h1.Load() != 0 {
		t.Error("requests reached the upstream over HTTP/1.1")
	}
	if st := grep(adminGet(t, h.p.Addr("admin"), "/stats?filter=upstream_cx_max_requests"), name); st != "cluster."+name+".upstream_cx_max_requests: 3" {
		t.Errorf("stats: %q", st)
	}
}
