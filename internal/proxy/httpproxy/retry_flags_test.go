package httpproxy

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/router"
	"github.com/weftmesh/weft/internal/proxy/upstream"
)

// oneCluster resolves every route table to t and every cluster to c.
type oneCluster struct {
	t *router.Table
	c *upstream.Cluster
}

func (o oneCluster) RouteTable(string) *router.Table  { return o.t }
func (o oneCluster) Cluster(string) *upstream.Cluster { return o.c }

// loopbackCluster starts backend on loopback and returns a STATIC
// cluster "backend" of it (with breakers cb, if any).
func loopbackCluster(t *testing.T, backend http.Handler, cb *clusterv3.CircuitBreakers) *upstream.Cluster {
	t.Helper()
	srv := httptest.NewUnstartedServer(backend)
	srv.EnableHTTP2 = true
	srv.Start()
	t.Cleanup(srv.Close)
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	c := &clusterv3.Cluster{Name: "backend", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout: durationpb.New(time.Second), CircuitBreakers: cb,
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "backend", Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)}}}}}}}},
		}}}}
	s, commit, err := upstream.Build(map[string]*clusterv3.Cluster{c.Name: c}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	commit()
	cl := s.Get(c.Name)
	t.Cleanup(cl.Close)
	return cl
}

// routeTo compiles one catch-all route to cluster "backend" with action
// a's fields added by edit.
func routeTo(t *testing.T, edit func(*routev3.RouteAction)) *router.Table {
	t.Helper()
	a := &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "backend"}}
	if edit != nil {
		edit(a)
	}
	tab, err := router.Compile(&routev3.RouteConfiguration{Name: "t", VirtualHosts: []*routev3.VirtualHost{{
		Name: "vh", Domains: []string{"*"},
		Routes: []*routev3.Route{{Name: "r", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: a}}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// serveInfo sends r through h and returns the response and the request's
// Info as the observer saw it.
func serveInfo(h *Handler, r *http.Request) (*httptest.ResponseRecorder, Info) {
	var got Info
	h.Observer = observerFunc(func(i *Info) { got = *i })
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w, got
}

// TestRetryFlags checks Envoy's router flags when retries end on a
// retriable response: URX when the retry limit is reached, UO when the
// max_retries breaker refuses one; the upstream's response is passed on.
func TestRetryFlags(t *testing.T) {
	var tries atomic.Int32
	failing := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tries.Add(1)
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte("ok"))
			return
		case "/slow":
			select {
			case <-time.After(time.Second):
			case <-r.Context().Done():
			}
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("down"))
	})
	retries := func(a *routev3.RouteAction) {
		a.RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(2),
			RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Millisecond)}}
	}
	cases := []struct {
		name   string
		cb     *clusterv3.CircuitBreakers
		edit   func(*routev3.RouteAction)
		path   string
		status int
		tries  int32
		flags  string
	}{
		{"limit reached", nil, retries, "/fail", 503, 3, "URX"},
		{"no retry policy", nil, nil, "/fail", 503, 1, ""},
		{"success", nil, retries, "/ok", 200, 1, ""},
		{"retry breaker", &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{MaxRetries: wrapperspb.UInt32(0)}}}, retries, "/fail", 503, 1, "UO"},
		// Every try ends at the per-try timeout: UT, then URX.
		{"per-try timeouts", nil, func(a *routev3.RouteAction) {
			retries(a)
			a.RetryPolicy.PerTryTimeout = durationpb.New(50 * time.Millisecond)
		}, "/slow", 504, 3, "UT,URX"},
		// The route's timeout ends the retries: UT only.
		{"route timeout", nil, func(a *routev3.RouteAction) {
			retries(a)
			a.Timeout = durationpb.New(80 * time.Millisecond)
			a.RetryPolicy.PerTryTimeout = durationpb.New(50 * time.Millisecond)
		}, "/slow", 504, -1, "UT"}, // tries: 2 or 3, by timing
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tries.Store(0)
			h := &Handler{Resolver: oneCluster{routeTo(t, c.edit), loopbackCluster(t, failing, c.cb)}}
			w, info := serveInfo(h, httptest.NewRequest("GET", "http://h"+c.path, nil))
			if w.Code != c.status || c.tries >= 0 && tries.Load() != c.tries || info.Flags != c.flags {
				t.Errorf("%d after %d tries, flags %q; want %d after %d, flags %q", w.Code, tries.Load(), info.Flags, c.status, c.tries, c.flags)
			}
			if c.path == "/fail" && w.Body.String() != "down" {
				t.Errorf("body %q, want the upstream's", w.Body)
			}
		})
	}
}
