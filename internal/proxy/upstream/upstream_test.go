package upstream

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func cla(name string, weights ...uint32) *endpointv3.ClusterLoadAssignment {
	var eps []*endpointv3.LbEndpoint
	for i, w := range weights {
		eps = append(eps, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: fmt.Sprintf("10.0.0.%d", i+1), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 80}}}}}},
			LoadBalancingWeight: wrapperspb.UInt32(w),
		})
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: eps}}}
}

func eds(name string, lb clusterv3.Cluster_LbPolicy) *clusterv3.Cluster {
	return &clusterv3.Cluster{Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		ConnectTimeout: durationpb.New(time.Second), LbPolicy: lb}
}

func build(t *testing.T, c *clusterv3.Cluster, a *endpointv3.ClusterLoadAssignment) *Cluster {
	t.Helper()
	s, commit, err := Build(map[string]*clusterv3.Cluster{c.Name: c}, map[string]*endpointv3.ClusterLoadAssignment{c.Name: a}, nil)
	if err != nil {
		t.Fatal(err)
	}
	commit()
	return s.Get(c.Name)
}

func TestWeightedRoundRobin(t *testing.T) {
	cl := build(t, eds("c", clusterv3.Cluster_ROUND_ROBIN), cla("c", 1, 3))
	counts := map[string]int{}
	for range 400 {
		counts[cl.Pick("", 0, false, nil).Addr]++
	}
	if counts["10.0.0.1:80"] != 100 || counts["10.0.0.2:80"] != 300 {
		t.Fatalf("1:3 weights gave %v", counts)
	}
}

func TestConsistentHashing(t *testing.T) {
	for _, lb := range []clusterv3.Cluster_LbPolicy{clusterv3.Cluster_RING_HASH, clusterv3.Cluster_MAGLEV} {
		cl := build(t, eds("c", lb), cla("c", 1, 1, 1, 1))
		seen := map[string]bool{}
		for i := range 200 {
			h := HashString(fmt.Sprint("user-", i))
			a := cl.Pick("", h, true, nil).Addr
			if b := cl.Pick("", h, true, nil).Addr; a != b {
				t.Fatalf("%v: same hash picked %s then %s", lb, a, b)
			}
			seen[a] = true
		}
		if len(seen) != 4 {
			t.Fatalf("%v: only %d hosts used", lb, len(seen))
		}
	}
}

func TestLeastRequestPrefersIdle(t *testing.T) {
	cl := build(t, eds("c", clusterv3.Cluster_LEAST_REQUEST), cla("c", 1, 1))
	busy := cl.Hosts()[0]
	busy.Active.Store(100)
	n := 0
	for range 1000 {
		if cl.Pick("", 0, false, nil) == busy {
			n++
		}
	}
	// Only when both choices are the busy host (about 1/4).
	if n > 350 {
		t.Fatalf("busy host picked %d/1000", n)
	}
}

func TestOutlierEjection(t *testing.T) {
	c := eds("c", clusterv3.Cluster_ROUND_ROBIN)
	c.OutlierDetection = &clusterv3.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(2), BaseEjectionTime: durationpb.New(time.Minute), MaxEjectionPercent: wrapperspb.UInt32(100)}
	cl := build(t, c, cla("c", 1, 1, 1))
	bad := cl.Hosts()[1]
	cl.Record(bad, 503)
	cl.Record(bad, 200) // resets the streak
	cl.Record(bad, 503)
	if bad.Ejected(time.Now().UnixNano()) {
		t.Fatal("ejected without 2 consecutive 5xx")
	}
	cl.Record(bad, 500)
	if !bad.Ejected(time.Now().UnixNano()) || cl.Stats.OutlierEjections.Load() != 1 {
		t.Fatal("not ejected after 2 consecutive 5xx")
	}
	for range 100 {
		if cl.Pick("", 0, false, nil) == bad {
			t.Fatal("ejected host picked")
		}
	}
	// Ejection state survives an endpoint update.
	s2, commit, err := Build(map[string]*clusterv3.Cluster{"c": c}, map[string]*endpointv3.ClusterLoadAssignment{"c": cla("c", 1, 1, 1, 1)}, &Set{clusters: map[string]*Cluster{"c": cl}})
	if err != nil {
		t.Fatal(err)
	}
	commit()
	if s2.Get("c") != cl || !cl.Hosts()[1].Ejected(time.Now().UnixNano()) || len(cl.Hosts()) != 4 {
		t.Fatal("cluster or host state not reused across EDS update")
	}
}

func TestCircuitBreakers(t *testing.T) {
	c := eds("c", clusterv3.Cluster_ROUND_ROBIN)
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		MaxConnections: wrapperspb.UInt32(1), MaxPendingRequests: wrapperspb.UInt32(1), MaxRetries: wrapperspb.UInt32(1)}}}
	c.ConnectTimeout = durationpb.New(100 * time.Millisecond)
	cl := build(t, c, cla("c", 1))
	rel1, err := cl.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pendingDone := make(chan error, 1)
	go func() {
		rel, err := cl.Acquire(context.Background())
		if err == nil {
			rel()
		}
		pendingDone <- err
	}()
	for cl.Stats.RqPendingActive.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if _, err := cl.Acquire(context.Background()); !errors.Is(err, ErrOverflow) {
		t.Fatalf("third request: %v, want overflow", err)
	}
	if cl.Stats.RqPendingOverflow.Load() != 1 {
		t.Fatalf("upstream_rq_pending_overflow %d", cl.Stats.RqPendingOverflow.Load())
	}
	rel1()
	if err := <-pendingDone; err != nil {
		t.Fatalf("pending request: %v", err)
	}
	if !cl.AcquireRetry() || cl.AcquireRetry() {
		t.Fatal("max_retries 1 not enforced")
	}
}

func TestBuildErrors(t *testing.T) {
	c := eds("c", clusterv3.Cluster_ROUND_ROBIN)
	bad := cla("c", 1)
	bad.Endpoints[0].LbEndpoints[0].GetEndpoint().GetAddress().GetSocketAddress().Address = "not-an-ip"
	_, _, err := Build(map[string]*clusterv3.Cluster{"c": c}, map[string]*endpointv3.ClusterLoadAssignment{"c": bad}, nil)
	if err == nil || err.Error() != `cluster c: endpoints[0].lb_endpoints[0]: "not-an-ip" is not an IP address` {
		t.Fatalf("got %v", err)
	}
}

func BenchmarkPickRoundRobin(b *testing.B) {
	s, commit, _ := Build(map[string]*clusterv3.Cluster{"c": eds("c", clusterv3.Cluster_ROUND_ROBIN)}, map[string]*endpointv3.ClusterLoadAssignment{"c": cla("c", 1, 1, 1)}, nil)
	commit()
	cl := s.Get("c")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			cl.Pick("", 0, false, nil)
		}
	})
}

func TestPriorityFailover(t *testing.T) {
	c := eds("c", clusterv3.Cluster_ROUND_ROBIN)
	c.OutlierDetection = &clusterv3.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(1), MaxEjectionPercent: wrapperspb.UInt32(100)}
	a := cla("c", 1, 1)
	a.Endpoints = append(a.Endpoints, &endpointv3.LocalityLbEndpoints{Priority: 1, LbEndpoints: cla("c", 1, 1, 1).Endpoints[0].LbEndpoints[2:]})
	cl := build(t, c, a)
	if n := len(cl.Hosts()); n != 3 {
		t.Fatalf("%d hosts, want 3 across two priorities", n)
	}
	for range 20 {
		if h := cl.Pick("", 0, false, nil); h.Priority != 0 {
			t.Fatalf("picked priority %d while priority 0 is healthy", h.Priority)
		}
	}
	for _, h := range cl.Hosts()[:2] {
		cl.Record(h, 503) // eject both priority-0 hosts
	}
	for range 20 {
		if h := cl.Pick("", 0, false, nil); h == nil || h.Addr != "10.0.0.3:80" {
			t.Fatalf("picked %v, want failover to priority 1 (10.0.0.3:80)", h)
		}
	}
}

func TestStrictDNS(t *testing.T) {
	c := &clusterv3.Cluster{Name: "dns", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS},
		ConnectTimeout: durationpb.New(time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "dns", Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: "localhost", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080}}}}}}}},
		}}}}
	s, commit, err := Build(map[string]*clusterv3.Cluster{"dns": c}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	commit()
	h := s.Get("dns").Pick("", 0, false, nil)
	if h == nil || (h.Addr != "127.0.0.1:8080" && h.Addr != "[::1]:8080") {
		t.Fatalf("STRICT_DNS localhost resolved to %v", h)
	}
}

func TestManyWeightedHosts(t *testing.T) {
	weights := make([]uint32, 5000)
	for i := range weights {
		weights[i] = uint32(1 + i%3)
	}
	a := cla("c", weights...)
	for i, le := range a.Endpoints[0].LbEndpoints {
		le.GetEndpoint().GetAddress().GetSocketAddress().Address = fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
	}
	done := make(chan struct{})
	go func() {
		build(t, eds("c", clusterv3.Cluster_ROUND_ROBIN), a)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("building 5000 weighted hosts did not finish")
	}
}
