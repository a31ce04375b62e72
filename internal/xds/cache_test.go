package xds

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"
	"unique"
	"unsafe"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/translate"
	"github.com/weftmesh/weft/internal/xds/loadtest"
)

// runServer runs a server with the translator's shared generation on
// loopback until the test ends, and returns it and its address. hook, if
// not nil, sees every state-of-the-world response sent.
func runServer(t testing.TB, store *model.Store, hook func(string, *discovery.DiscoveryResponse)) (*Server, string) {
	t.Helper()
	s := New(Options{
		Generator: translate.NewCache().Generate, Store: store, Debounce: 5 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	s.sentHook = hook
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s, lis.Addr().String()
}

// runClients connects simulated sidecars loadtest.Node(i) for each i in
// ids, each on its own connection, until the test ends.
func runClients(t testing.TB, addr string, ids []int) []*loadtest.Client {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var clients []*loadtest.Client
	for _, i := range ids {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		c := &loadtest.Client{Node: loadtest.Node(i), Discard: true}
		clients = append(clients, c)
		wg.Go(func() {
			defer conn.Close()
			_ = c.Run(ctx, conn)
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return clients
}

// waitSynced waits until n proxies are connected and every one has
// acknowledged its configuration of model version v or later.
func waitSynced(t testing.TB, s *Server, n int, v uint64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := s.Status()
		ok := len(st) == n
		for _, p := range st {
			if p.ModelVersion < v || len(p.Types) < 4 {
				ok = false
				break
			}
			for _, ts := range p.Types {
				if ts.State != StateSynced {
					ok = false
				}
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d proxies connected, not all synced at model version %d", len(st), v)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestProxiesOfOneClassShareResponses checks that two sidecars the
// translator cannot tell apart (same namespace) are sent responses built
// on the very same bytes, and that a sidecar of another namespace is not
// handed that configuration's bytes, though it has equal services.
func TestProxiesOfOneClassShareResponses(t *testing.T) {
	store := model.NewStore()
	store.Update(loadtest.Mesh("t", 30, 2, 0))
	var mu sync.Mutex
	sent := map[string]map[string]*discovery.DiscoveryResponse{} // node → type → last response
	s, addr := runServer(t, store, func(node string, r *discovery.DiscoveryResponse) {
		mu.Lock()
		defer mu.Unlock()
		if sent[node] == nil {
			sent[node] = map[string]*discovery.DiscoveryResponse{}
		}
		sent[node][r.GetTypeUrl()] = r
	})
	// Nodes 0 and 10 are sidecars in ns-0; node 1 is in ns-1.
	clients := runClients(t, addr, []int{0, 10, 1})
	waitSynced(t, s, 3, store.Snapshot().Version)

	id := func(i int) string { return clients[i].Node.GetId() }
	mu.Lock()
	defer mu.Unlock()
	for _, typ := range []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType} {
		a, b, other := sent[id(0)][typ], sent[id(1)][typ], sent[id(2)][typ]
		if a == nil || b == nil || other == nil {
			t.Fatalf("%s: not every proxy was sent a response", TypeName(typ))
		}
		if a == b {
			t.Fatalf("%s: two streams were handed one response message (the server sets each one's nonce)", TypeName(typ))
		}
		ra, rb, ro := a.ProtoReflect().GetUnknown(), b.ProtoReflect().GetUnknown(), other.ProtoReflect().GetUnknown()
		if len(ra) == 0 || len(a.GetResources()) != 0 {
			t.Fatalf("%s: response does not carry the shared encoding of its resources", TypeName(typ))
		}
		if &ra[0] != &rb[0] || len(ra) != len(rb) {
			t.Errorf("%s: proxies of one namespace were sent copies, not the same bytes", TypeName(typ))
		}
		if len(ro) > 0 && &ro[0] == &ra[0] {
			t.Errorf("%s: a proxy of another namespace was sent the first namespace's configuration", TypeName(typ))
		}
		// What went out decodes to what the snapshot holds.
		ps := s.cache.snapshot(id(0))
		var got discovery.DiscoveryResponse
		if err := proto.Unmarshal(ra, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.GetResources()) != len(ps.types[typ].anys) {
			t.Fatalf("%s: shared encoding holds %d resources, the snapshot %d", TypeName(typ), len(got.GetResources()), len(ps.types[typ].anys))
		}
		for i, r := range got.GetResources() {
			if !proto.Equal(r, ps.types[typ].anys[i]) {
				t.Fatalf("%s: resource %d differs from the snapshot's", TypeName(typ), i)
			}
		}
	}
	if s.cache.snapshot(id(0)) != s.cache.snapshot(id(1)) || s.cache.snapshot(id(0)) == s.cache.snapshot(id(2)) {
		t.Error("snapshots are not shared by class")
	}
}

// TestWireCodecSharesBytes checks that the codec writes a response that
// carries a shared encoding from that encoding, without a copy, and that
// the result decodes to the response with its resources.
func TestWireCodecSharesBytes(t *testing.T) {
	ps, err := buildSnapshot(generate(t, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := ps.types[resource.ClusterType]
	r := &sotwResponse{req: &discovery.DiscoveryRequest{TypeUrl: resource.ClusterType}, version: tr.version, all: tr}
	out, _ := r.GetDiscoveryResponse()
	out.Nonce = "7"
	c := newWireCodec()
	data, err := c.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	shared := false
	for _, buf := range data {
		if b := buf.ReadOnlyData(); len(b) == len(tr.wire()) && &b[0] == &tr.wire()[0] {
			shared = true
		}
	}
	if !shared {
		t.Error("the shared encoding was copied")
	}
	var got discovery.DiscoveryResponse
	if err := proto.Unmarshal(data.Materialize(), &got); err != nil {
		t.Fatal(err)
	}
	want := &discovery.DiscoveryResponse{VersionInfo: tr.version, Resources: tr.anys, TypeUrl: resource.ClusterType, Nonce: "7"}
	if !proto.Equal(&got, want) {
		t.Error("the codec's encoding decodes to another response")
	}
	// A delta response carrying every resource, likewise.
	dr := &deltaResponse{req: &discovery.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType}, version: tr.version, all: tr, removed: []string{"gone"}}
	dout, _ := dr.GetDeltaDiscoveryResponse()
	ddata, err := c.Marshal(dout)
	if err != nil {
		t.Fatal(err)
	}
	var dgot discovery.DeltaDiscoveryResponse
	if err := proto.Unmarshal(ddata.Materialize(), &dgot); err != nil {
		t.Fatal(err)
	}
	dwant := &discovery.DeltaDiscoveryResponse{SystemVersionInfo: tr.version, Resources: tr.deltaResources(), TypeUrl: resource.ClusterType, RemovedResources: []string{"gone"}}
	if !proto.Equal(&dgot, dwant) {
		t.Error("the codec's delta encoding decodes to another response")
	}
	if len(deltaResponseResources(dout)) != len(tr.names) {
		t.Error("deltaResponseResources does not read the shared encoding")
	}
	// Requests' names come out interned.
	req := &discovery.DiscoveryRequest{ResourceNames: []string{"a-cluster", "b-cluster"}}
	b1, _ := proto.Marshal(req)
	var r1, r2 discovery.DiscoveryRequest
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b1)}, &r1); err != nil {
		t.Fatal(err)
	}
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b1)}, &r2); err != nil {
		t.Fatal(err)
	}
	if unsafeStringData(r1.ResourceNames[0]) != unsafeStringData(r2.ResourceNames[0]) {
		t.Error("equal resource names of two requests are not shared")
	}
}

func unsafeStringData(s string) *byte { return unsafe.StringData(s) }

// TestWireCodecDecodesRequests checks that the codec's own decoding of
// requests gives what proto.Unmarshal gives, including for requests it
// hands back to proto.Unmarshal (fields it does not read, bad UTF-8).
func TestWireCodecDecodesRequests(t *testing.T) {
	c := newWireCodec()
	reqs := []*discovery.DiscoveryRequest{
		{},
		{TypeUrl: resource.EndpointType, VersionInfo: "v1", ResponseNonce: "3", ResourceNames: []string{"a", "b", "a"}, Node: loadtest.Node(3)},
		{TypeUrl: resource.ClusterType, ErrorDetail: &status.Status{Code: 3, Message: "bad cluster"}},
		{TypeUrl: resource.ListenerType, ResourceLocators: []*discovery.ResourceLocator{{Name: "x"}}}, // not read by the codec
	}
	for i, want := range reqs {
		b, err := proto.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		var got discovery.DiscoveryRequest
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &got); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if !proto.Equal(&got, want) {
			t.Errorf("request %d: decoded %v, want %v", i, &got, want)
		}
	}
	// A resource name that is not UTF-8 is refused, as proto.Unmarshal
	// refuses it.
	bad := protowire.AppendTag(nil, 3, protowire.BytesType)
	bad = protowire.AppendBytes(bad, []byte{0xff, 0xfe})
	var got discovery.DiscoveryRequest
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(bad)}, &got); err == nil {
		t.Error("a request with an invalid resource name was accepted")
	}
}

// TestDeltaDumpSharesBase checks a delta stream's record of what it holds:
// a full response records the snapshot's resources without a copy; later
// changes and removals apply on top of it.
func TestDeltaDumpSharesBase(t *testing.T) {
	ps, err := buildSnapshot(generate(t, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := ps.types[resource.ClusterType]
	d := &typeDump{typeURL: resource.ClusterType}
	d.resetDelta(tr, ps.pins[resource.ClusterType])
	if d.delta != nil || d.deltaBase != tr {
		t.Fatal("a full response was copied into the record")
	}
	held := func() map[string]string {
		out := map[string]string{}
		d.eachDelta(func(n string, e deltaEntry) bool { out[n] = e.version; return true })
		return out
	}
	if got := held(); len(got) != len(tr.names) || got[tr.names[0]] != tr.hashes[tr.names[0]] {
		t.Fatalf("record %v, want the snapshot's %d resources", got, len(tr.names))
	}
	first, second := tr.names[0], tr.names[1]
	d.putDelta(first, deltaEntry{version: "changed", value: unique.Make("x")})
	d.removeDelta(second)
	d.putDelta("new", deltaEntry{version: "n", value: unique.Make("y")})
	d.removeDelta("new")
	got := held()
	if got[first] != "changed" || len(got) != len(tr.names)-1 {
		t.Errorf("after changes: %v", got)
	}
	if _, ok := got[second]; ok {
		t.Error("a removed resource is still recorded")
	}
	if _, ok := got["new"]; ok {
		t.Error("a resource added then removed is still recorded")
	}
	if len(d.resources()) != len(tr.names)-1 {
		t.Errorf("dump has %d resources, want %d", len(d.resources()), len(tr.names)-1)
	}
	d.putDelta(second, deltaEntry{version: "back", value: unique.Make("z")})
	if held()[second] != "back" {
		t.Error("a resource sent again after its removal is not recorded")
	}
}
