package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/bootstrap"
	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

// flakyHealth is a gRPC health server whose first failures calls
// answer UNAVAILABLE (a trailers-only response).
type flakyHealth struct {
	healthpb.UnimplementedHealthServer
	calls    atomic.Int64
	failures atomic.Int64
}

func (f *flakyHealth) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if f.calls.Add(1) <= f.failures.Load() {
		return nil, status.Error(codes.Unavailable, "warming up")
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// h2Options is the HttpProtocolOptions selecting HTTP/2 (h2c) upstream.
func h2Options(common *corev3.HttpProtocolOptions) map[string]*anypb.Any {
	return map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": xdstest.Any(&httpv3.HttpProtocolOptions{
		CommonHttpProtocolOptions: common,
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}}}})}
}

// TestRetryOnGRPCStatus runs a real gRPC server behind an h2c cluster
// that fails its first calls with UNAVAILABLE: retry_on "unavailable"
// hides the failures from a real gRPC client, within num_retries.
func TestRetryOnGRPCStatus(t *testing.T) {
	fh := &flakyHealth{}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, fh)
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(gl)
	defer srv.Stop()

	cl := xdstest.StaticCluster("outbound|50051||grpc", gl.Addr().String())
	cl.TypedExtensionProtocolOptions = h2Options(nil)
	retry := toCluster("outbound|50051||grpc")
	retry.RetryPolicy = &routev3.RetryPolicy{RetryOn: "cancelled,deadline-exceeded,internal,resource-exhausted,unavailable",
		NumRetries: wrapperspb.UInt32(2), PerTryTimeout: durationpb.New(2 * time.Second)}
	rc := &routev3.RouteConfiguration{Name: "50051", VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"},
		Routes: []*routev3.Route{route("retry", "/", retry)}}}}
	lis := xdstest.FreeAddr(t)
	newHarness(t, xdstest.Resources{
		Clusters:  []*clusterv3.Cluster{cl},
		Listeners: []*listenerv3.Listener{xdstest.HTTPListener("0.0.0.0_50051", lis, xdstest.HCM("50051", "50051"))},
		Routes:    []*routev3.RouteConfiguration{rc},
	})
	conn, err := grpc.NewClient(lis, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Two failures, two retries: the client sees SERVING after 3 calls.
	fh.failures.Store(2)
	resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("with 2 failures and num_retries 2: %v, %v", resp, err)
	}
	if n := fh.calls.Load(); n != 3 {
		t.Errorf("upstream saw %d calls, want 3", n)
	}
	// Three failures exhaust the retries: UNAVAILABLE reaches the client.
	fh.calls.Store(0)
	fh.failures.Store(3)
	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "warming up") {
		t.Fatalf("with 3 failures: %v, want UNAVAILABLE from upstream", err)
	}
	if n := fh.calls.Load(); n != 3 {
		t.Errorf("upstream saw %d calls, want 3 (1 + num_retries)", n)
	}
}

// connCountingBackend is a backend that counts its distinct connections.
func connCountingBackend(t *testing.T, name string) (*backend, *atomic.Int64) {
	var conns atomic.Int64
	b := &backend{name: name}
	b.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		fmt.Fprint(w, name)
	}))
	b.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	b.Start()
	t.Cleanup(b.Close)
	return b, &conns
}

// TestMaxRequestsPerConnection: an upstream HTTP/1.1 connection carries
// at most max_requests_per_connection requests, set either through
// HttpProtocolOptions or the deprecated cluster field.
func TestMaxRequestsPerConnection(t *testing.T) {
	typed, typedConns := connCountingBackend(t, "typed")
	legacy, legacyConns := connCountingBackend(t, "legacy")
	pooled, pooledConns := connCountingBackend(t, "pooled")
	typedCl := xdstest.StaticCluster("outbound|80||typed", typed.addr())
	typedCl.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": xdstest.Any(&httpv3.HttpProtocolOptions{
		CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{MaxRequestsPerConnection: wrapperspb.UInt32(3)},
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}}}}})}
	legacyCl := xdstest.StaticCluster("outbound|80||legacy", legacy.addr())
	legacyCl.MaxRequestsPerConnection = wrapperspb.UInt32(2) //nolint:staticcheck // the deprecated field is still honoured
	pooledCl := xdstest.StaticCluster("outbound|80||pooled", pooled.addr())
	rc := &routev3.RouteConfiguration{Name: "80", VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{
		route("typed", "/typed", toCluster("outbound|80||typed")), route("legacy", "/legacy", toCluster("outbound|80||legacy")),
		route("pooled", "/pooled", toCluster("outbound|80||pooled"))}}}}
	lis := xdstest.FreeAddr(t)
	newHarness(t, xdstest.Resources{
		Clusters:  []*clusterv3.Cluster{typedCl, legacyCl, pooledCl},
		Listeners: []*listenerv3.Listener{xdstest.HTTPListener("0.0.0.0_80", lis, xdstest.HCM("80", "80"))},
		Routes:    []*routev3.RouteConfiguration{rc},
	})
	for i := range 9 {
		for _, p := range []string{"typed", "legacy", "pooled"} {
			if status, body, _ := get(t, "http://"+lis+"/"+p); status != 200 || body != p {
				t.Fatalf("%s request %d: %d %q", p, i, status, body)
			}
		}
	}
	if n := typedConns.Load(); n != 3 {
		t.Errorf("max_requests_per_connection 3 (HttpProtocolOptions): 9 requests used %d connections, want 3", n)
	}
	if n := legacyConns.Load(); n != 5 {
		t.Errorf("max_requests_per_connection 2 (cluster field): 9 requests used %d connections, want 5", n)
	}
	if n := pooledConns.Load(); n != 1 {
		t.Errorf("no limit: 9 sequential requests used %d connections, want 1", n)
	}
}

// TestUpstreamServiceTimeAndLocalAddress: a routed response carries
// x-envoy-upstream-service-time (ms until the upstream's headers), and
// the access log's upstream_local_address is the address the upstream
// saw the proxy connect from.
func TestUpstreamServiceTimeAndLocalAddress(t *testing.T) {
	var peer atomic.Value
	b := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		peer.Store(r.RemoteAddr)
		time.Sleep(40 * time.Millisecond)
		fmt.Fprint(w, "slow")
	})
	rc := &routev3.RouteConfiguration{Name: "80", VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{
		route("slow", "/", toCluster("outbound|80||slow"))}}}}
	lis := xdstest.FreeAddr(t)
	logPath := filepath.Join(t.TempDir(), "access.log")
	newHarnessWith(t, xdstest.Resources{
		Clusters:  []*clusterv3.Cluster{xdstest.StaticCluster("outbound|80||slow", b.addr())},
		Listeners: []*listenerv3.Listener{xdstest.HTTPListener("0.0.0.0_80", lis, xdstest.HCM("80", "80"))},
		Routes:    []*routev3.RouteConfiguration{rc},
	}, func(c *bootstrap.Config) { c.AccessLog = logPath })
	status, _, hdr := get(t, "http://"+lis+"/timed")
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	ms, err := strconv.Atoi(hdr.Get("X-Envoy-Upstream-Service-Time"))
	if err != nil || ms < 40 || ms > 5000 {
		t.Errorf("x-envoy-upstream-service-time %q, want the upstream's ~40ms", hdr.Get("X-Envoy-Upstream-Service-Time"))
	}
	line := waitLine(t, logPath, "the access log line", pathIs("/timed"))
	if got, want := line["upstream_local_address"], peer.Load(); got != want {
		t.Errorf("upstream_local_address %v, want %v (the backend's view of the proxy)", got, want)
	}
}

// echoServer accepts connections and echoes them until closed; closed
// reports how many of its connections ended.
func echoServer(t *testing.T) (addr string, closed *atomic.Int64) {
	closed = new(atomic.Int64)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close(); closed.Add(1) }()
		}
	}()
	return l.Addr().String(), closed
}

// TestTCPProxyIdleTimeout: tcp_proxy closes a proxied connection on which
// nothing moved for idle_timeout, both towards the client and the
// upstream, but keeps a connection with regular traffic open past it.
func TestTCPProxyIdleTimeout(t *testing.T) {
	echo, upClosed := echoServer(t)
	lis := xdstest.FreeAddr(t)
	l := xdstest.TCPListener("0.0.0.0_7000", lis, "outbound|7000||echo")
	tp := &tcpv3.TcpProxy{StatPrefix: "echo", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "outbound|7000||echo"},
		IdleTimeout: durationpb.New(time.Second)}
	l.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: xdstest.Any(tp)}
	h := newHarness(t, xdstest.Resources{
		Clusters:  []*clusterv3.Cluster{xdstest.StaticCluster("outbound|7000||echo", echo)},
		Listeners: []*listenerv3.Listener{l},
	})
	c, err := net.Dial("tcp", lis)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second)) // a hang fails the test instead of blocking it
	buf := make([]byte, 1)
	// Traffic every 100ms for longer than the timeout keeps it open (each
	// gap far below the timeout, so a loaded machine's scheduling delays
	// do not make it idle).
	for i := range 15 {
		if _, err := c.Write([]byte{byte('a' + i)}); err != nil {
			t.Fatalf("write %d while active: %v", i, err)
		}
		if _, err := io.ReadFull(c, buf); err != nil || buf[0] != byte('a'+i) {
			t.Fatalf("echo %d while active: %q %v", i, buf, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Silence: the proxy closes the connection (EOF, not our deadline).
	if n, err := c.Read(buf); err != io.EOF {
		t.Fatalf("idle connection: read %d, %v; want EOF from the idle timeout", n, err)
	}
	waitFor(t, "the upstream connection to close", func() bool { return upClosed.Load() == 1 })
	if s := adminGet(t, h.p.Addr("admin"), "/stats"); !strings.Contains(s, "tcp.idle_timeout: 1\n") {
		t.Errorf("stats lack tcp.idle_timeout: 1:\n%s", grep(s, "tcp."))
	}
}

// lle is one locality's endpoints; unhealthy addresses are marked so in EDS.
func lle(zone string, priority, weight uint32, healthy []string, unhealthy ...string) *endpointv3.LocalityLbEndpoints {
	l := &endpointv3.LocalityLbEndpoints{Locality: &corev3.Locality{Region: "r1", Zone: zone}, Priority: priority}
	if weight > 0 {
		l.LoadBalancingWeight = wrapperspb.UInt32(weight)
	}
	for i, a := range append(append([]string{}, healthy...), unhealthy...) {
		hs := corev3.HealthStatus_HEALTHY
		if i >= len(healthy) {
			hs = corev3.HealthStatus_UNHEALTHY
		}
		l.LbEndpoints = append(l.LbEndpoints, &endpointv3.LbEndpoint{HealthStatus: hs,
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: xdstest.SocketAddress(a)}}})
	}
	return l
}

// TestPriorityOverprovisioningAndLocalityWeights: with half of priority
// 0 unhealthy, Envoy's overprovisioning factor (1.4) keeps 70% of the
// traffic on priority 0 and spills 30% to priority 1 (50% with factor
// 1.0); with locality_weighted_lb_config, localities weighted 3:1 get
// 75%:25% of the traffic.
func TestPriorityOverprovisioningAndLocalityWeights(t *testing.T) {
	p0 := newBackend(t, "p0", nil)
	p1 := newBackend(t, "p1", nil)
	za := newBackend(t, "za", nil)
	zb := newBackend(t, "zb", nil)
	dead := deadAddr(t)
	spill := xdstest.StaticCluster("outbound|80||spill", p0.addr())
	spill.LoadAssignment = &endpointv3.ClusterLoadAssignment{ClusterName: "outbound|80||spill", Endpoints: []*endpointv3.LocalityLbEndpoints{
		lle("z1", 0, 1, []string{p0.addr()}, dead), lle("z2", 1, 1, []string{p1.addr()})}}
	spill100 := proto.Clone(spill).(*clusterv3.Cluster)
	spill100.Name, spill100.LoadAssignment.ClusterName = "outbound|80||spill100", "outbound|80||spill100"
	spill100.LoadAssignment.Policy = &endpointv3.ClusterLoadAssignment_Policy{OverprovisioningFactor: wrapperspb.UInt32(100)}
	weighted := xdstest.StaticCluster("outbound|80||weighted", za.addr())
	weighted.LoadAssignment = &endpointv3.ClusterLoadAssignment{ClusterName: "outbound|80||weighted", Endpoints: []*endpointv3.LocalityLbEndpoints{
		lle("a", 0, 3, []string{za.addr()}), lle("b", 0, 1, []string{zb.addr()})}}
	weighted.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{LocalityConfigSpecifier: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig_{
		LocalityWeightedLbConfig: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig{}}}
	rc := &routev3.RouteConfiguration{Name: "80", VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{
		route("spill100", "/spill100", toCluster("outbound|80||spill100")), route("spill", "/spill", toCluster("outbound|80||spill")),
		route("weighted", "/weighted", toCluster("outbound|80||weighted"))}}}}
	lis := xdstest.FreeAddr(t)
	newHarness(t, xdstest.Resources{
		Clusters:  []*clusterv3.Cluster{spill, spill100, weighted},
		Listeners: []*listenerv3.Listener{xdstest.HTTPListener("0.0.0.0_80", lis, xdstest.HCM("80", "80"))},
		Routes:    []*routev3.RouteConfiguration{rc},
	})
	const n = 400
	share := func(path, want string) float64 {
		hits := 0
		for range n {
			status, _, hdr := get(t, "http://"+lis+path)
			if status != 200 {
				t.Fatalf("%s: status %d", path, status)
			}
			if hdr.Get("X-Backend") == want {
				hits++
			}
		}
		return float64(hits) / n
	}
	// Binomial standard deviations are ~2.3%; the bounds are 4 of them.
	if s := share("/spill", "p1"); s < 0.2 || s > 0.4 {
		t.Errorf("priority 1 got %.0f%% of the traffic with priority 0 half healthy, want ~30%%", 100*s)
	}
	if s := share("/spill100", "p1"); s < 0.4 || s > 0.6 {
		t.Errorf("with overprovisioning_factor 100 priority 1 got %.0f%%, want ~50%%", 100*s)
	}
	if s := share("/weighted", "za"); s < 0.65 || s > 0.85 {
		t.Errorf("locality weighted 3:1 gave locality a %.0f%%, want ~75%%", 100*s)
	}
}
