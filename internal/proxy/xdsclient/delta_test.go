package xdsclient_test

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"

	"github.com/weftmesh/weft/internal/proxy/xdsclient"
	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

// deltaServer is go-control-plane's ADS server over a snapshot cache
// that records, per stream, the delta requests it received and how many
// resources its responses carried.
type deltaServer struct {
	cache cachev3.SnapshotCache
	addr  string
	grpc  *grpc.Server

	mu       sync.Mutex
	requests map[int64][]*discovery.DeltaDiscoveryRequest
	sent     map[int64]map[string]int // stream → type → resources sent
	removed  map[int64]int
	streams  []int64
	gen      int64
}

func newDeltaServer(t *testing.T) *deltaServer {
	s := &deltaServer{cache: cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil),
		requests: map[int64][]*discovery.DeltaDiscoveryRequest{}, sent: map[int64]map[string]int{}, removed: map[int64]int{}}
	s.start(t, "127.0.0.1:0")
	t.Cleanup(s.stop)
	return s
}

func (s *deltaServer) start(t *testing.T, addr string) {
	t.Helper()
	var lis net.Listener
	var err error
	for range 50 { // the port may linger briefly after stop
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.addr = lis.Addr().String()
	// Stream ids restart at 1 with each server: key them by generation.
	s.mu.Lock()
	s.gen++
	gen := s.gen << 32
	s.mu.Unlock()
	cb := serverv3.CallbackFuncs{
		DeltaStreamOpenFunc: func(_ context.Context, id int64, _ string) error {
			id |= gen
			s.mu.Lock()
			s.streams = append(s.streams, id)
			s.sent[id] = map[string]int{}
			s.mu.Unlock()
			return nil
		},
		StreamDeltaRequestFunc: func(id int64, r *discovery.DeltaDiscoveryRequest) error {
			id |= gen
			s.mu.Lock()
			s.requests[id] = append(s.requests[id], r)
			s.mu.Unlock()
			return nil
		},
		StreamDeltaResponseFunc: func(id int64, _ *discovery.DeltaDiscoveryRequest, r *discovery.DeltaDiscoveryResponse) {
			id |= gen
			s.mu.Lock()
			s.sent[id][r.GetTypeUrl()] += len(r.GetResources())
			s.removed[id] += len(r.GetRemovedResources())
			s.mu.Unlock()
		},
	}
	s.grpc = grpc.NewServer()
	discovery.RegisterAggregatedDiscoveryServiceServer(s.grpc, serverv3.NewServer(context.Background(), s.cache, cb))
	go s.grpc.Serve(lis)
}

func (s *deltaServer) stop() { s.grpc.Stop() }

// stream returns the i-th stream's id (0 when it has not opened yet).
func (s *deltaServer) stream(i int) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i >= len(s.streams) {
		return 0
	}
	return s.streams[i]
}

func (s *deltaServer) sentOn(id int64) (perType map[string]int, removed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.sent[id] {
		out[k] = v
	}
	return out, s.removed[id]
}

// firstRequests returns each type's first request on a stream.
func (s *deltaServer) firstRequests(id int64) map[string]*discovery.DeltaDiscoveryRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]*discovery.DeltaDiscoveryRequest{}
	for _, r := range s.requests[id] {
		if _, ok := out[r.GetTypeUrl()]; !ok {
			out[r.GetTypeUrl()] = r
		}
	}
	return out
}

func (s *deltaServer) set(t *testing.T, version string, res xdstest.Resources) {
	t.Helper()
	// xdstest.Server.Set builds the snapshot; reuse it on our cache.
	(&xdstest.Server{Cache: s.cache}).Set(t, node, version, res)
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func waitUntil(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDeltaReconnectSendsInitialResourceVersions: after a reconnect the
// delta client announces what it holds (initial_resource_versions, the
// EDS and RDS names re-subscribed, CDS and LDS still wildcard), so
// go-control-plane sends only what changed: nothing when nothing did
// (it answers the wildcard types' first requests with an empty response,
// and the others not at all), and only the changed resource otherwise.
func TestDeltaReconnectSendsInitialResourceVersions(t *testing.T) {
	srv := newDeltaServer(t)
	srv.set(t, "v1", fullConfig("127.0.0.1:9001"))
	rec, c := start(t, srv.addr, true, 0)
	rec.next(t, 5*time.Second)
	first, _ := srv.sentOn(srv.stream(0))
	if total(first) != 4 {
		t.Fatalf("first stream: %v resources sent, want 4 (one per type)", first)
	}

	// The server restarts with the same configuration.
	srv.stop()
	srv.start(t, srv.addr)
	waitUntil(t, "a second stream with all four types requested", func() bool {
		return len(srv.firstRequests(srv.stream(1))) == 4
	})
	second := srv.stream(1)
	reqs := srv.firstRequests(second)
	for _, typ := range []string{xdsclient.ClusterType, xdsclient.EndpointType, xdsclient.ListenerType, xdsclient.RouteType} {
		r := reqs[typ]
		if len(r.GetInitialResourceVersions()) != 1 {
			t.Errorf("%s: initial_resource_versions %v, want the one resource held", typ, r.GetInitialResourceVersions())
		}
		wildcard := typ == xdsclient.ClusterType || typ == xdsclient.ListenerType
		if subs := r.GetResourceNamesSubscribe(); wildcard && len(subs) != 0 || !wildcard && len(subs) != 1 {
			t.Errorf("%s: resource_names_subscribe %q (wildcard types subscribe nothing, the others the names held)", typ, subs)
		}
	}
	if !slices.Contains(reqs[xdsclient.EndpointType].GetResourceNamesSubscribe(), "outbound|80||a.default.svc.cluster.local") {
		t.Errorf("EDS not re-subscribed: %v", reqs[xdsclient.EndpointType])
	}
	waitUntil(t, "the client to ACK CDS and LDS on the new stream", func() bool {
		st := c.Status()
		return st.Connected && st.Streams == 2 && st.Types[xdsclient.ListenerType].ACKs >= 2 && st.Types[xdsclient.ClusterType].ACKs >= 2
	})
	rec.none(t, 300*time.Millisecond) // nothing changed: nothing applied
	if sent, removed := srv.sentOn(second); total(sent) != 0 || removed != 0 {
		t.Errorf("reconnect with nothing changed: server sent %v resources, %d removals; want none", sent, removed)
	}

	// A change while disconnected: only that resource is sent.
	srv.stop()
	srv.set(t, "v2", fullConfig("127.0.0.1:9002"))
	srv.start(t, srv.addr)
	s := rec.next(t, 10*time.Second)
	if got := s.Endpoints["outbound|80||a.default.svc.cluster.local"].GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetPortValue(); got != 9002 || !s.Complete {
		t.Fatalf("after reconnect: endpoint port %d complete %v", got, s.Complete)
	}
	sent, _ := srv.sentOn(srv.stream(2))
	if total(sent) != 1 || sent[xdsclient.EndpointType] != 1 {
		t.Errorf("reconnect after an endpoint change: server sent %v, want only the one ClusterLoadAssignment", sent)
	}

	// A resource removed while disconnected is removed on reconnect.
	srv.stop()
	gone := fullConfig("127.0.0.1:9002")
	gone.Listeners, gone.Routes = nil, nil
	srv.set(t, "v3", gone)
	srv.start(t, srv.addr)
	s = rec.next(t, 10*time.Second)
	if len(s.Listeners) != 0 || len(s.Routes) != 0 || len(s.Clusters) != 1 {
		t.Fatalf("after reconnect with the listener removed: %d listeners, %d routes, %d clusters", len(s.Listeners), len(s.Routes), len(s.Clusters))
	}
}
