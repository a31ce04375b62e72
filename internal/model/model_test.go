package model

import (
	"sync"
	"testing"

	networking "istio.io/api/networking/v1alpha3"
)

func TestProtocolForPort(t *testing.T) {
	for _, tc := range []struct {
		name, app string
		want      Protocol
	}{
		{"http", "", ProtocolHTTP},
		{"http-web", "", ProtocolHTTP},
		{"http2", "", ProtocolHTTP2},
		{"grpc", "", ProtocolGRPC},
		{"grpc-api", "", ProtocolGRPC},
		{"grpc-web", "", ProtocolGRPCWeb},
		{"tcp-db", "", ProtocolTCP},
		{"https", "", ProtocolHTTPS},
		{"tls-x", "", ProtocolTLS},
		{"mongo", "", ProtocolMongo},
		{"web", "", ProtocolUnknown},
		{"httpx", "", ProtocolUnknown},
		{"", "", ProtocolUnknown},
		{"web", "http", ProtocolHTTP},
		{"tcp", "grpc", ProtocolGRPC},          // appProtocol wins
		{"http", "unknownproto", ProtocolHTTP}, // unrecognised appProtocol falls back to the name
		{"web", "kubernetes.io/h2c", ProtocolHTTP2},
	} {
		if got := ProtocolForPort(tc.name, tc.app); got != tc.want {
			t.Errorf("ProtocolForPort(%q, %q) = %s, want %s", tc.name, tc.app, got, tc.want)
		}
	}
}

func cfg(kind Kind, ns, name, rev string, spec any) *Config {
	c := &Config{Meta: Meta{Kind: kind, Namespace: ns, Name: name, Source: "test", Revision: rev}}
	switch s := spec.(type) {
	case *networking.ServiceEntry:
		c.Spec = s
	case *networking.WorkloadEntry:
		c.Spec = s
	case *networking.VirtualService:
		c.Spec = s
	}
	return c
}

func reviewsEntry(rev string, port uint32) *Config {
	return cfg(KindServiceEntry, "default", "reviews", rev, &networking.ServiceEntry{
		Hosts:            []string{"reviews.default.svc.cluster.local"},
		Ports:            []*networking.ServicePort{{Number: port, Name: "http"}},
		Resolution:       networking.ServiceEntry_STATIC,
		WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{"app": "reviews"}},
	})
}

func workload(name, addr, version string) *Config {
	return cfg(KindWorkloadEntry, "default", name, addr+version, &networking.WorkloadEntry{
		Address:        addr,
		ServiceAccount: "bookinfo-reviews",
		Labels:         map[string]string{"app": "reviews", "version": version, LabelTLSMode: "istio"},
	})
}

func TestServiceEntryDerivation(t *testing.T) {
	st := NewStore()
	snap := st.Update(&SourceState{Source: "test", Synced: true, Configs: []*Config{
		reviewsEntry("1", 9080),
		workload("reviews-v1", "127.0.0.30", "v1"),
		workload("reviews-v2", "127.0.0.31", "v2"),
		cfg(KindWorkloadEntry, "other", "stray", "x", &networking.WorkloadEntry{Address: "10.0.0.1", Labels: map[string]string{"app": "reviews"}}),
	}})
	svc := snap.Service("reviews.default.svc.cluster.local", "default")
	if svc == nil {
		t.Fatal("service reviews not derived")
	}
	if p, ok := svc.Port(9080); !ok || p.Protocol != ProtocolHTTP {
		t.Errorf("port 9080 = %+v, want protocol HTTP from its name", p)
	}
	eps := snap.Endpoints("reviews.default.svc.cluster.local")
	if len(eps) != 2 {
		t.Fatalf("endpoints = %d, want 2 (the WorkloadEntry in another namespace must not match)", len(eps))
	}
	if eps[0].Address != "127.0.0.30" || eps[0].Workload != "reviews-v1" || eps[0].TLSMode != TLSModeIstio || eps[0].ServiceAccount != "bookinfo-reviews" {
		t.Errorf("endpoint = %+v", eps[0])
	}
}

func TestSnapshotsAreVersionedAndIsolated(t *testing.T) {
	st := NewStore()
	s1 := st.Update(&SourceState{Source: "a", Synced: true, Configs: []*Config{reviewsEntry("1", 9080)}})
	s2 := st.Update(&SourceState{Source: "a", Synced: true, Configs: []*Config{reviewsEntry("2", 9081)}})
	if s2.Version != s1.Version+1 {
		t.Errorf("versions %d then %d, want consecutive", s1.Version, s2.Version)
	}
	if _, ok := s1.Services()[0].Port(9080); !ok {
		t.Error("an old snapshot changed after a later update")
	}
	if _, ok := s2.Services()[0].Port(9081); !ok {
		t.Error("the new snapshot lacks the update")
	}
	// Two sources with the same kind/namespace/name coexist.
	s3 := st.Update(&SourceState{Source: "b", Synced: false, Configs: []*Config{{Meta: Meta{Kind: KindServiceEntry, Namespace: "default", Name: "reviews", Source: "b"}, Spec: &networking.ServiceEntry{}}}})
	if got := len(s3.List(KindServiceEntry)); got != 2 {
		t.Errorf("ServiceEntries from two sources = %d, want 2", got)
	}
	if s3.Synced() {
		t.Error("snapshot synced while source b is not")
	}
}

func TestDiff(t *testing.T) {
	se := reviewsEntry("1", 9080)
	w1 := workload("reviews-v1", "127.0.0.30", "v1")
	st := NewStore()
	s1 := st.Update(&SourceState{Source: "test", Configs: []*Config{se, w1}})
	// Same pointers: nothing changed.
	s2 := st.Update(&SourceState{Source: "test", Configs: []*Config{se, w1}})
	if cs := Diff(s1, s2); !cs.Empty() {
		t.Errorf("diff of identical states = %+v, want empty", cs)
	}
	// A workload added: endpoints only.
	w2 := workload("reviews-v2", "127.0.0.31", "v2")
	s3 := st.Update(&SourceState{Source: "test", Configs: []*Config{se, w1, w2}})
	cs := Diff(s2, s3)
	if !cs.EndpointsOnly || len(cs.Services) != 1 || cs.Services[0] != "reviews.default.svc.cluster.local" {
		t.Errorf("diff after adding a WorkloadEntry = %+v, want endpoints-only for reviews", cs)
	}
	// A service port changed: not endpoints only.
	s4 := st.Update(&SourceState{Source: "test", Configs: []*Config{reviewsEntry("2", 9090), w1, w2}})
	if cs := Diff(s3, s4); cs.EndpointsOnly || len(cs.Configs) != 1 {
		t.Errorf("diff after a ServiceEntry change = %+v", cs)
	}
	// A removal is a change.
	s5 := st.Update(&SourceState{Source: "test", Configs: []*Config{w1, w2}})
	if cs := Diff(s4, s5); len(cs.Configs) != 1 || cs.Configs[0].Kind != KindServiceEntry {
		t.Errorf("diff after removing the ServiceEntry = %+v", cs)
	}
}

// TestSubscribersNeverSeeHalfAppliedChanges updates the store from one
// goroutine with states that hold either all "a" objects or all "b"
// objects, and reads from others: every snapshot read is one or the other.
func TestSubscribersNeverSeeHalfAppliedChanges(t *testing.T) {
	st := NewStore()
	mk := func(tag string) *SourceState {
		var cs []*Config
		for _, n := range []string{"x", "y", "z"} {
			cs = append(cs, cfg(KindVirtualService, "default", n, tag, &networking.VirtualService{Hosts: []string{tag}}))
		}
		return &SourceState{Source: "test", Configs: cs, Synced: true}
	}
	ch, cancel := st.Subscribe()
	defer cancel()
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-ch:
			}
			snap := st.Snapshot()
			var tags = map[string]bool{}
			for _, c := range snap.List(KindVirtualService) {
				tags[c.Revision] = true
			}
			if len(tags) > 1 {
				t.Errorf("snapshot %d mixes states: %v", snap.Version, tags)
				return
			}
		}
	}()
	for i := 0; i < 500; i++ {
		if i%2 == 0 {
			st.Update(mk("a"))
		} else {
			st.Update(mk("b"))
		}
	}
	close(done)
	wg.Wait()
	if st.Snapshot().Version != 500 {
		t.Errorf("version = %d after 500 updates", st.Snapshot().Version)
	}
}
