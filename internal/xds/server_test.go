package xds_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/xds"
	"github.com/weftmesh/weft/internal/xds/loadtest"
)

// env is a running xDS server on loopback with its store.
type env struct {
	t     *testing.T
	store *model.Store
	srv   *xds.Server
	reg   *prometheus.Registry
	addr  string
	conn  *grpc.ClientConn
}

func start(t *testing.T, gen xds.Generator, initial *model.SourceState) *env {
	t.Helper()
	e := &env{t: t, store: model.NewStore(), reg: prometheus.NewRegistry()}
	if initial != nil {
		e.store.Update(initial)
	}
	if gen == nil {
		gen = loadtest.Generator
	}
	e.srv = xds.New(xds.Options{
		Generator: gen, Store: e.store, Debounce: 5 * time.Millisecond, Registerer: e.reg,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = lis.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Run(ctx, lis) }()
	e.conn = dial(t, e.addr)
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return e
}

// dial connects to addr; the connection closes when the test ends.
func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// recorder is a running simulated client with the responses it answered.
type recorder struct {
	*loadtest.Client
	mu     sync.Mutex
	events []loadtest.Response
	stop   context.CancelFunc
	done   chan error
}

func (e *env) connect(node *core.Node, delta bool, reject func(string, []*anypb.Any) error) *recorder {
	r := &recorder{Client: &loadtest.Client{Node: node, Delta: delta, Reject: reject}, done: make(chan error, 1)}
	r.OnResponse = func(ev loadtest.Response) {
		r.mu.Lock()
		r.events = append(r.events, ev)
		r.mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go func() { r.done <- r.Run(ctx, e.conn) }()
	e.t.Cleanup(r.close)
	return r
}

func (r *recorder) close() {
	r.stop()
	<-r.done
	r.done <- nil // let close be called twice
}

func (r *recorder) log() []loadtest.Response {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// counts returns the number of responses per type short name.
func (r *recorder) counts() map[string]int {
	out := map[string]int{}
	for _, ev := range r.log() {
		out[xds.TypeName(ev.TypeURL)]++
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (e *env) status(id string) *xds.ProxyStatus {
	for _, st := range e.srv.Status() {
		if st.Proxy.ID == id {
			return &st
		}
	}
	return nil
}

// synced reports whether the proxy acknowledged the current version of
// every type and its configuration comes from model version >= v.
func (e *env) synced(id string, v uint64) bool {
	st := e.status(id)
	if st == nil || st.ModelVersion < v || len(st.Types) < 4 {
		return false
	}
	for _, ts := range st.Types {
		if ts.State != xds.StateSynced {
			return false
		}
	}
	return true
}

func TestInitialConfigInOrder(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(fmt.Sprintf("delta=%v", delta), func(t *testing.T) {
			e := start(t, nil, loadtest.Mesh("test", 20, 3, 0))
			node := loadtest.Node(0)
			c := e.connect(node, delta, nil)
			waitFor(t, "sync", func() bool { return e.synced(node.Id, 1) })
			var order []string
			for _, ev := range c.log() {
				order = append(order, xds.TypeName(ev.TypeURL))
			}
			if !slices.Equal(order, []string{"cds", "eds", "lds", "rds"}) {
				t.Errorf("responses in order %v, want cds eds lds rds", order)
			}
			// Namespace ns-0 sees all 20 services (no exportTo).
			if n := len(c.Names(resource.ClusterType)); n != 20 {
				t.Errorf("%d clusters, want 20", n)
			}
			if n := len(c.Names(resource.EndpointType)); n != 20 {
				t.Errorf("%d endpoint assignments, want 20", n)
			}
			if got := c.Names(resource.RouteType); !slices.Equal(got, []string{"8080"}) {
				t.Errorf("routes %v", got)
			}
			st := e.status(node.Id)
			if st.Proxy.Namespace != "ns-0" || st.Streams != 1 {
				t.Errorf("status %+v", st)
			}
			for _, ts := range st.Types {
				if ts.Acked == "" || ts.Acked != ts.Current || ts.AckedNonce != ts.SentNonce {
					t.Errorf("%s: %+v", ts.Type, ts)
				}
			}
			if got := metric(t, e.reg, "pilot_xds", ""); got != 1 {
				t.Errorf("pilot_xds = %v, want 1", got)
			}
		})
	}
}

// metric returns the value of a counter or gauge with the given label
// value (or no labels), summing histograms' counts.
func metric(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && (len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() != label) {
				continue
			}
			return m.GetGauge().GetValue() + m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return 0
}

func TestACKAndNACK(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(fmt.Sprintf("delta=%v", delta), func(t *testing.T) {
			e := start(t, nil, loadtest.Mesh("test", 3, 1, 0))
			node := loadtest.Node(1)
			var mu sync.Mutex
			rejectLDS := true
			c := e.connect(node, delta, func(typeURL string, _ []*anypb.Any) error {
				mu.Lock()
				defer mu.Unlock()
				if typeURL == resource.ListenerType && rejectLDS {
					return errors.New("listener 0.0.0.0_8080: unsupported filter")
				}
				return nil
			})
			var lds xds.TypeStatus
			waitFor(t, "NACK recorded", func() bool {
				st := e.status(node.Id)
				if st == nil {
					return false
				}
				for _, ts := range st.Types {
					if ts.Type == "lds" && ts.LastNACK != nil {
						lds = ts
						return true
					}
				}
				return false
			})
			if lds.State != xds.StateNACKed || lds.LastNACK.Message != "listener 0.0.0.0_8080: unsupported filter" ||
				lds.LastNACK.Version != lds.Sent || lds.Acked != "" || lds.LastNACK.Time.IsZero() {
				t.Errorf("lds status after NACK: %+v (nack %+v)", lds, lds.LastNACK)
			}
			if got := metric(t, e.reg, "pilot_total_xds_rejects", "lds"); got != 1 {
				t.Errorf("pilot_total_xds_rejects{type=lds} = %v, want 1", got)
			}
			if c.Count(resource.RouteType) != 0 {
				t.Error("client asked for routes of rejected listeners")
			}

			// The next change is accepted.
			mu.Lock()
			rejectLDS = false
			mu.Unlock()
			// A new port means a new listener.
			st := loadtest.Mesh("test", 3, 1, 0)
			st.Services = append(st.Services, &model.Service{Hostname: "new.ns-0.svc.cluster.local", Namespace: "ns-0",
				Ports: []model.Port{{Name: "http", Number: 9090, Protocol: model.ProtocolHTTP}}})
			snap := e.store.Update(st)
			waitFor(t, "sync after change", func() bool { return e.synced(node.Id, snap.Version) })
			for _, ts := range e.status(node.Id).Types {
				if ts.Type == "lds" && (ts.LastNACK == nil || ts.State != xds.StateSynced) {
					t.Errorf("lds after accepted push: %+v", ts)
				}
			}
			if metric(t, e.reg, "pilot_proxy_convergence_time", "") < 1 {
				t.Error("no convergence time observed")
			}
		})
	}
}

// exportedTo makes every service visible only in its own namespace.
func exportedTo(st *model.SourceState) *model.SourceState {
	for _, s := range st.Services {
		s.ExportTo = []string{"."}
	}
	return st
}

func TestPushOnlyToAffectedProxies(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(fmt.Sprintf("delta=%v", delta), func(t *testing.T) {
			// 20 services: svc-0..9 in ns-0, svc-10..19 in ns-1.
			e := start(t, nil, exportedTo(loadtest.Mesh("test", 20, 2, 0)))
			a, b := loadtest.Node(0), loadtest.Node(1) // namespaces ns-0, ns-1
			ca, cb := e.connect(a, delta, nil), e.connect(b, delta, nil)
			waitFor(t, "initial sync", func() bool { return e.synced(a.Id, 1) && e.synced(b.Id, 1) })
			if n := len(ca.Names(resource.ClusterType)); n != 10 {
				t.Fatalf("proxy in ns-0 sees %d clusters, want 10", n)
			}
			before := cb.counts()

			// A new service in ns-0 only.
			st := exportedTo(loadtest.Mesh("test", 20, 2, 0))
			st.Services = append(st.Services, &model.Service{Hostname: "new.ns-0.svc.cluster.local", Namespace: "ns-0", ExportTo: []string{"."},
				Ports: []model.Port{{Name: "http", Number: 9090, Protocol: model.ProtocolHTTP}}})
			snap := e.store.Update(st)
			waitFor(t, "ns-0 proxy sync", func() bool { return e.synced(a.Id, snap.Version) })
			waitFor(t, "ns-1 proxy recomputed", func() bool { return e.status(b.Id).ModelVersion == snap.Version })
			if !slices.Contains(ca.Names(resource.ClusterType), "outbound|9090||new.ns-0.svc.cluster.local") {
				t.Errorf("new cluster not received: %v", ca.Names(resource.ClusterType))
			}
			if got := ca.counts(); got["cds"] != 2 || got["lds"] != 2 || got["rds"] != 2 {
				t.Errorf("ns-0 proxy responses %v, want a second cds, lds and rds", got)
			}
			if after := cb.counts(); !mapsEqual(before, after) {
				t.Errorf("unaffected proxy was pushed: responses %v before, %v after", before, after)
			}
		})
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestEndpointChangeSendsEDSOnly(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(fmt.Sprintf("delta=%v", delta), func(t *testing.T) {
			e := start(t, nil, loadtest.Mesh("test", 10, 2, 0))
			nodes := []*core.Node{loadtest.Node(0), loadtest.Node(1)}
			var cs []*recorder
			for _, n := range nodes {
				cs = append(cs, e.connect(n, delta, nil))
			}
			waitFor(t, "initial sync", func() bool { return e.synced(nodes[0].Id, 1) && e.synced(nodes[1].Id, 1) })
			before := []map[string]int{cs[0].counts(), cs[1].counts()}
			pushes := metric(t, e.reg, "pilot_xds_pushes", "eds")

			snap := e.store.Update(loadtest.Mesh("test", 10, 2, 1)) // every endpoint moves
			for i, n := range nodes {
				waitFor(t, "sync", func() bool { return e.synced(n.Id, snap.Version) })
				after := cs[i].counts()
				want := map[string]int{"cds": before[i]["cds"], "eds": before[i]["eds"] + 1, "lds": before[i]["lds"], "rds": before[i]["rds"]}
				if !mapsEqual(after, want) {
					t.Errorf("proxy %d: responses %v, want %v (one more EDS only)", i, after, want)
				}
				last := cs[i].log()[len(cs[i].log())-1]
				if delta && len(last.Names) != 10 {
					t.Errorf("delta EDS update carries %d assignments, want 10", len(last.Names))
				}
			}
			if got := metric(t, e.reg, "pilot_xds_pushes", "eds"); got != pushes+2 {
				t.Errorf("pilot_xds_pushes{type=eds} went from %v to %v, want +2", pushes, got)
			}
		})
	}
}

func TestDeltaRemoval(t *testing.T) {
	e := start(t, nil, loadtest.Mesh("test", 3, 1, 0))
	node := loadtest.Node(0)
	c := e.connect(node, true, nil)
	waitFor(t, "initial sync", func() bool { return e.synced(node.Id, 1) })
	gone := "outbound|8080||svc-2.ns-0.svc.cluster.local"
	snap := e.store.Update(loadtest.Mesh("test", 2, 1, 0))
	waitFor(t, "sync", func() bool { return e.synced(node.Id, snap.Version) })
	var removed bool
	for _, ev := range c.log() {
		if ev.TypeURL == resource.ClusterType && slices.Contains(ev.Removed, gone) {
			removed = true
			if len(ev.Names) != 0 {
				t.Errorf("removal response also carries %v", ev.Names)
			}
		}
	}
	if !removed {
		t.Errorf("no CDS response removed %s: %+v", gone, c.log())
	}
	if slices.Contains(c.Names(resource.ClusterType), gone) || slices.Contains(c.Names(resource.EndpointType), gone) {
		t.Error("client still holds the removed cluster or its endpoints")
	}
}

func TestReconnect(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(fmt.Sprintf("delta=%v", delta), func(t *testing.T) {
			e := start(t, nil, loadtest.Mesh("test", 5, 1, 0))
			node := loadtest.Node(3)
			c := e.connect(node, delta, nil)
			waitFor(t, "sync", func() bool { return e.synced(node.Id, 1) })
			c.close()
			waitFor(t, "disconnect", func() bool { return e.status(node.Id) == nil })
			if got := metric(t, e.reg, "pilot_xds", ""); got != 0 {
				t.Errorf("pilot_xds = %v after disconnect", got)
			}
			// The configuration changes while the proxy is away.
			snap := e.store.Update(loadtest.Mesh("test", 6, 1, 0))
			c2 := e.connect(node, delta, nil)
			waitFor(t, "sync after reconnect", func() bool { return e.synced(node.Id, snap.Version) })
			if n := len(c2.Names(resource.ClusterType)); n != 6 {
				t.Errorf("%d clusters after reconnect, want 6", n)
			}
			if st := e.status(node.Id); st.Streams != 1 {
				t.Errorf("%d streams", st.Streams)
			}
		})
	}
}

func TestBadNodeRefused(t *testing.T) {
	e := start(t, nil, loadtest.Mesh("test", 1, 1, 0))
	c := &loadtest.Client{Node: &core.Node{Id: "sidecar~bad-ip~a.b~b.svc.cluster.local"}}
	err := c.Run(context.Background(), e.conn)
	if err == nil || !strings.Contains(err.Error(), `invalid IP address "bad-ip"`) {
		t.Errorf("Run = %v, want the node id error", err)
	}
	if len(e.srv.Status()) != 0 {
		t.Error("refused proxy registered")
	}
}

func TestPerTypeService(t *testing.T) {
	e := start(t, nil, loadtest.Mesh("test", 4, 1, 0))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := clusterservice.NewClusterDiscoveryServiceClient(e.conn).StreamClusters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := loadtest.Node(0)
	if err := st.Send(&discovery.DiscoveryRequest{Node: node}); err != nil {
		t.Fatal(err)
	}
	resp, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetTypeUrl() != resource.ClusterType || len(resp.GetResources()) != 4 {
		t.Fatalf("CDS response: type %s, %d resources", resp.GetTypeUrl(), len(resp.GetResources()))
	}
	if err := st.Send(&discovery.DiscoveryRequest{VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ACK", func() bool {
		s := e.status(node.Id)
		return s != nil && len(s.Types) == 1 && s.Types[0].State == xds.StateSynced
	})
}

func TestProxylessGRPC(t *testing.T) {
	// A proxyless client asks for one listener by name; the other
	// listeners of its configuration must not hold the response back.
	e := start(t, proxylessGenerator, loadtest.Mesh("test", 3, 2, 0))
	node := &core.Node{Id: "sidecar~10.1.0.1~client-1.ns-0~ns-0.svc.cluster.local", Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
		"GENERATOR": structpb.NewStringValue("grpc"),
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := discovery.NewAggregatedDiscoveryServiceClient(e.conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := "svc-1.ns-0.svc.cluster.local:8080"
	if err := st.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resource.ListenerType, ResourceNames: []string{want}}); err != nil {
		t.Fatal(err)
	}
	resp, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetResources()) != 1 {
		t.Fatalf("LDS response has %d listeners, want 1", len(resp.GetResources()))
	}
	if err := st.Send(&discovery.DiscoveryRequest{TypeUrl: resource.ListenerType, ResourceNames: []string{want}, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&discovery.DiscoveryRequest{TypeUrl: resource.RouteType, ResourceNames: []string{"route-svc-1.ns-0.svc.cluster.local"}}); err != nil {
		t.Fatal(err)
	}
	resp, err = st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetTypeUrl() != resource.RouteType || len(resp.GetResources()) != 1 {
		t.Fatalf("RDS response: %s with %d resources", resp.GetTypeUrl(), len(resp.GetResources()))
	}
}

func TestDebugHandler(t *testing.T) {
	e := start(t, nil, loadtest.Mesh("test", 2, 1, 0))
	node := loadtest.Node(0)
	e.connect(node, true, nil)
	waitFor(t, "sync", func() bool { return e.synced(node.Id, 1) })
	h := e.srv.DebugHandler()

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/syncz", nil))
	var statuses []xds.ProxyStatus
	if err := json.Unmarshal(rec.Body.Bytes(), &statuses); err != nil || rec.Code != 200 {
		t.Fatalf("syncz: %d %v: %s", rec.Code, err, rec.Body)
	}
	if len(statuses) != 1 || statuses[0].Proxy.ID != node.Id || len(statuses[0].Types) != 4 || statuses[0].Types[0].State != xds.StateSynced {
		t.Errorf("syncz: %s", rec.Body)
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/config_dump?proxy="+node.Id, nil))
	var dump struct {
		Resources map[string][]map[string]any `json:"resources"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &dump); err != nil || rec.Code != 200 {
		t.Fatalf("config_dump: %d %v: %s", rec.Code, err, rec.Body)
	}
	if cds := dump.Resources["cds"]; len(cds) != 2 || cds[0]["name"] != "outbound|8080||svc-0.ns-0.svc.cluster.local" ||
		cds[0]["@type"] != resource.ClusterType {
		t.Errorf("config_dump cds: %v", cds)
	}
	if len(dump.Resources["eds"]) != 2 || len(dump.Resources["lds"]) != 1 || len(dump.Resources["rds"]) != 1 {
		t.Errorf("config_dump: %s", rec.Body)
	}

	for path, code := range map[string]int{"/debug/config_dump": http.StatusBadRequest, "/debug/config_dump?proxy=nobody": http.StatusNotFound} {
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != code || !strings.Contains(rec.Body.String(), "error") {
			t.Errorf("%s: %d %s", path, rec.Code, rec.Body)
		}
	}
}
