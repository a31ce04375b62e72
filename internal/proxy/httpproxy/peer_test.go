package httpproxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/proxy/router"
	"github.com/weftmesh/weft/internal/proxy/telemetry/peermeta"
	"github.com/weftmesh/weft/internal/proxy/upstream"
	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

// oneClusterResolver routes everything to its cluster "c".
type oneClusterResolver struct {
	tab *router.Table
	cl  *upstream.Cluster
}

func (r oneClusterResolver) RouteTable(string) *router.Table { return r.tab }
func (r oneClusterResolver) Cluster(name string) *upstream.Cluster {
	if name == "c" {
		return r.cl
	}
	return nil
}

// peerRecorder keeps the peers of the last observed request.
type peerRecorder struct {
	mu         sync.Mutex
	down, up   *peermeta.Peer
	status     int
	observedOK bool
}

func (p *peerRecorder) Observe(i *Info) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down, p.up, p.status, p.observedOK = i.DownstreamPeer, i.UpstreamPeer, i.Status, true
}

func exchange(t *testing.T, workload, app string) *peermeta.Exchange {
	t.Helper()
	md, err := structpb.NewStruct(map[string]any{"NAMESPACE": "default", "WORKLOAD_NAME": workload, "LABELS": map[string]any{"app": app}})
	if err != nil {
		t.Fatal(err)
	}
	x, err := peermeta.New("sidecar~"+workload, peermeta.NodeMetadata(md, "Kubernetes"))
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// peerSetup starts an application that records the request headers it
// got and answers with the response headers resp; it returns a resolver
// routing to it, its endpoint labelled as a mesh workload when mesh.
func peerSetup(t *testing.T, mesh bool, resp http.Header) (oneClusterResolver, *http.Header) {
	t.Helper()
	var mu sync.Mutex
	got := new(http.Header)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		*got = r.Header.Clone()
		mu.Unlock()
		for k, vs := range resp {
			w.Header()[k] = vs
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(app.Close)
	cfg := xdstest.StaticCluster("c", strings.TrimPrefix(app.URL, "http://"))
	if mesh {
		cfg.LoadAssignment.Endpoints[0].LbEndpoints[0].Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			"istio": {Fields: map[string]*structpb.Value{"workload": structpb.NewStringValue("echo-v1;default;echo;v1;Kubernetes")}},
		}}
	}
	cl, err := upstream.Compile(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	tab, err := router.Compile(&routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{
		Name: "vh", Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}},
		}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return oneClusterResolver{tab: tab, cl: cl}, got
}

// TestPeerExchangeInbound: an inbound connection manager strips the
// client's peer headers before the application, reports the client, and
// answers with its own metadata, on local replies too; a client that
// sent none gets none.
func TestPeerExchangeInbound(t *testing.T) {
	client, server := exchange(t, "client", "client"), exchange(t, "echo-v1", "echo")
	res, got := peerSetup(t, false, nil)
	rec := &peerRecorder{}
	h := &Handler{Resolver: res, RouteName: "r", Observer: rec, PeerExchange: server, Inbound: true}

	req := httptest.NewRequest("GET", "http://echo/x", nil)
	client.Propagate(req.Header, res.cl, &upstream.Host{Labels: map[string]string{"workload": "echo-v1"}})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 200 {
		t.Fatalf("status %d %q", w.Code, w.Body)
	}
	if got.Get(peermeta.HeaderMetadata) != "" || got.Get(peermeta.HeaderID) != "" {
		t.Errorf("the application got the peer headers: %v", *got)
	}
	if w.Header().Get(peermeta.HeaderMetadata) != server.Value() || w.Header().Get(peermeta.HeaderID) != "sidecar~echo-v1" {
		t.Errorf("response peer headers %v, want the server's", w.Header())
	}
	if rec.down == nil || rec.down.Workload != "client" || rec.up != nil {
		t.Errorf("observed downstream %+v upstream %+v", rec.down, rec.up)
	}

	// No metadata from the client: none back.
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "http://echo/x", nil))
	if w.Header().Get(peermeta.HeaderMetadata) != "" || rec.down != nil {
		t.Errorf("a client without metadata got %v, observed %+v", w.Header(), rec.down)
	}

	// A filter's local reply carries it as well.
	h.Filters = []Filter{&recordFilter{reply: &LocalReply{Status: 403, Body: "RBAC: access denied"}}}
	req = httptest.NewRequest("GET", "http://echo/x", nil)
	client.Propagate(req.Header, res.cl, &upstream.Host{Labels: map[string]string{"workload": "echo-v1"}})
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 403 || w.Header().Get(peermeta.HeaderMetadata) != server.Value() {
		t.Errorf("local reply %d with headers %v", w.Code, w.Header())
	}

	// Direct responses and no-route replies too.
	h = &Handler{Static: echoTable(t), PeerExchange: server, Inbound: true}
	for path, code := range map[string]int{"/a/direct": 200, "/nowhere": 404} {
		req = httptest.NewRequest("GET", "http://echo"+path, nil)
		client.Propagate(req.Header, res.cl, &upstream.Host{Labels: map[string]string{"workload": "echo-v1"}})
		w = httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != code || w.Header().Get(peermeta.HeaderMetadata) != server.Value() {
			t.Errorf("%s: %d with headers %v", path, w.Code, w.Header())
		}
	}
}

// TestPeerExchangeOutbound: an outbound connection manager sends its
// metadata to a mesh endpoint only, and reads and strips the server's
// from the response.
func TestPeerExchangeOutbound(t *testing.T) {
	client, server := exchange(t, "client", "client"), exchange(t, "echo-v1", "echo")
	resp := http.Header{}
	server.Respond(resp)
	for _, mesh := range []bool{true, false} {
		res, got := peerSetup(t, mesh, resp)
		rec := &peerRecorder{}
		h := &Handler{Resolver: res, RouteName: "r", Observer: rec, PeerExchange: client}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "http://echo/x", nil))
		if w.Code != 200 {
			t.Fatalf("status %d %q", w.Code, w.Body)
		}
		sent := got.Get(peermeta.HeaderMetadata) == client.Value() && got.Get(peermeta.HeaderID) == "sidecar~client"
		if sent != mesh {
			t.Errorf("mesh endpoint %v: request headers %v", mesh, *got)
		}
		if w.Header().Get(peermeta.HeaderMetadata) != "" || w.Header().Get(peermeta.HeaderID) != "" {
			t.Errorf("the client got the peer headers: %v", w.Header())
		}
		if rec.up == nil || rec.up.Workload != "echo-v1" || rec.up.App != "echo" || rec.down != nil {
			t.Errorf("observed upstream %+v downstream %+v", rec.up, rec.down)
		}
	}
}

// BenchmarkPeerExchange is one request through a connection manager to a
// mesh endpoint without the exchange, on the outbound side (headers
// added, the server's read back) and on the inbound side (the client's
// read through the cache, ours added to the response).
func BenchmarkPeerExchange(b *testing.B) {
	t := &testing.T{}
	client, server := exchange(t, "client", "client"), exchange(t, "echo-v1", "echo")
	resp := http.Header{}
	server.Respond(resp)
	res, _ := peerSetup(t, true, resp)
	clientHeaders := http.Header{}
	client.Propagate(clientHeaders, res.cl, &upstream.Host{Labels: map[string]string{"workload": "echo-v1"}})
	for _, c := range []struct {
		name    string
		x       *peermeta.Exchange
		inbound bool
	}{{"off", nil, false}, {"outbound", client, false}, {"inbound", server, true}} {
		b.Run(c.name, func(b *testing.B) {
			h := &Handler{Resolver: res, RouteName: "r", Observer: &peerRecorder{}, PeerExchange: c.x, Inbound: c.inbound}
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("GET", "http://echo/x", nil)
				if c.inbound {
					for k, vs := range clientHeaders {
						req.Header[k] = vs
					}
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
