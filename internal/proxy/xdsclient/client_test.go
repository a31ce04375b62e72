package xdsclient_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/proxy/xdsclient"
	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

// recorder is a Handler that rejects HTTP filters it does not know, like
// the proxy does, and records what it applies.
type recorder struct {
	applied chan *xdsclient.Snapshot
}

func (r *recorder) Validate(typeURL, name string, m proto.Message) error {
	l, ok := m.(*listenerv3.Listener)
	if !ok {
		return nil
	}
	hcms, _ := xdsclient.ListenerHCMs(l)
	for _, h := range hcms {
		for _, f := range h.GetHttpFilters() {
			if f.GetName() != "envoy.filters.http.router" && !f.GetIsOptional() {
				return errors.New("listener " + name + ": unsupported http filter " + f.GetName())
			}
		}
	}
	return nil
}

func (r *recorder) Apply(s *xdsclient.Snapshot) { r.applied <- s }

func (r *recorder) next(t *testing.T, within time.Duration) *xdsclient.Snapshot {
	t.Helper()
	select {
	case s := <-r.applied:
		return s
	case <-time.After(within):
		t.Fatalf("no config applied within %v", within)
		return nil
	}
}

func (r *recorder) none(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case s := <-r.applied:
		t.Fatalf("unexpected apply: versions %v missing %v", s.Versions, s.Missing)
	case <-time.After(within):
	}
}

const node = "sidecar~10.0.0.1~app.default~default.svc.cluster.local"

func fullConfig(upstream string) xdstest.Resources {
	return xdstest.Resources{
		Clusters:  []*clusterT{xdstest.EDSCluster("outbound|80||a.default.svc.cluster.local")},
		Endpoints: []*claT{xdstest.CLA("outbound|80||a.default.svc.cluster.local", upstream)},
		Listeners: []*listenerv3.Listener{xdstest.HTTPListener("0.0.0.0_80", "127.0.0.1:18080", xdstest.HCM("80", "80"))},
		Routes:    []*routeT{xdstest.RouteConfig("80", "outbound|80||a.default.svc.cluster.local")},
	}
}

func start(t *testing.T, addr string, delta bool, warming time.Duration) (*recorder, *xdsclient.Client) {
	t.Helper()
	rec := &recorder{applied: make(chan *xdsclient.Snapshot, 16)}
	md, _ := structpb.NewStruct(map[string]any{"NAMESPACE": "default"})
	c, err := xdsclient.New(xdsclient.Options{
		Address: addr, Node: &corev3.Node{Id: node, Metadata: md}, Delta: delta, Handler: rec,
		WarmingTimeout: warming, Logger: slog.New(slog.DiscardHandler), BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return rec, c
}

func modes(t *testing.T, f func(t *testing.T, delta bool)) {
	t.Run("sotw", func(t *testing.T) { f(t, false) })
	t.Run("delta", func(t *testing.T) { f(t, true) })
}

func TestFullConfigApplied(t *testing.T) {
	modes(t, func(t *testing.T, delta bool) {
		srv := xdstest.NewServer(t, "127.0.0.1:0")
		srv.Set(t, node, "v1", fullConfig("127.0.0.1:9001"))
		rec, c := start(t, srv.Addr, delta, 0)
		s := rec.next(t, 5*time.Second)
		if !s.Complete || len(s.Clusters) != 1 || len(s.Endpoints) != 1 || len(s.Listeners) != 1 || len(s.Routes) != 1 {
			t.Fatalf("snapshot %+v", s)
		}
		// An update of endpoints only flows through.
		cfg := fullConfig("127.0.0.1:9002")
		srv.Set(t, node, "v2", cfg)
		s = rec.next(t, 5*time.Second)
		got := s.Endpoints["outbound|80||a.default.svc.cluster.local"].GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetPortValue()
		if got != 9002 || s.Versions[xdsclient.EndpointType] != "v2" {
			t.Fatalf("endpoint port %d (versions %v) after update; unchanged types must not cause an apply", got, s.Versions)
		}
		st := c.Status()
		if !st.Connected || st.Types[xdsclient.ClusterType].ACKs == 0 || st.Types[xdsclient.RouteType].ACKs == 0 {
			t.Fatalf("status %+v", st)
		}
	})
}

func TestWarmingWaitsForReferences(t *testing.T) {
	modes(t, func(t *testing.T, delta bool) {
		srv := xdstest.NewServer(t, "127.0.0.1:0")
		cfg := fullConfig("127.0.0.1:9001")
		partial := cfg
		partial.Endpoints = nil
		partial.Routes = nil
		srv.Set(t, node, "v1", partial)
		rec, _ := start(t, srv.Addr, delta, 0)
		rec.none(t, 400*time.Millisecond) // endpoints and routes missing: keep warming
		srv.Set(t, node, "v2", cfg)
		s := rec.next(t, 5*time.Second)
		if !s.Complete || len(s.Endpoints) != 1 || len(s.Routes) != 1 {
			t.Fatalf("snapshot %+v", s)
		}
	})
}

func TestWarmingTimeoutAppliesIncomplete(t *testing.T) {
	srv := xdstest.NewServer(t, "127.0.0.1:0")
	cfg := fullConfig("127.0.0.1:9001")
	cfg.Routes = nil // listener references route "80", never sent
	srv.Set(t, node, "v1", cfg)
	rec, _ := start(t, srv.Addr, false, 300*time.Millisecond)
	s := rec.next(t, 5*time.Second)
	if s.Complete || len(s.Missing) != 1 || !strings.Contains(s.Missing[0], "route 80") {
		t.Fatalf("want incomplete snapshot missing route 80, got complete=%v missing=%v", s.Complete, s.Missing)
	}
}

func TestUnsupportedFilterIsNACKed(t *testing.T) {
	modes(t, func(t *testing.T, delta bool) {
		srv := xdstest.NewServer(t, "127.0.0.1:0")
		srv.Set(t, node, "v1", fullConfig("127.0.0.1:9001"))
		rec, c := start(t, srv.Addr, delta, 0)
		rec.next(t, 5*time.Second)

		bad := fullConfig("127.0.0.1:9001")
		h := xdstest.HCM("80", "80", &hcmv3.HttpFilter{Name: "envoy.filters.http.lua"})
		bad.Listeners = []*listenerv3.Listener{xdstest.HTTPListener("0.0.0.0_80", "127.0.0.1:18081", h)}
		srv.Set(t, node, "v2", bad)
		deadline := time.Now().Add(5 * time.Second)
		for len(srv.NACKs()) == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		nacks := srv.NACKs()
		if len(nacks) == 0 || !strings.Contains(nacks[0], "unsupported http filter envoy.filters.http.lua") {
			t.Fatalf("NACKs %q", nacks)
		}
		rec.none(t, 700*time.Millisecond) // nothing half-applied
		// go-control-plane re-sends a NACKed version at once; repeated
		// NACKs are paced, so the loop does not spin.
		if n := len(srv.NACKs()); n > 3 {
			t.Errorf("%d NACKs in 700ms: NACK loop not paced", n)
		}
		if st := c.Status().Types[xdsclient.ListenerType]; st.NACKs == 0 || st.LastNACK == "" {
			t.Fatalf("listener status %+v", st)
		}
		// A fixed config is accepted again.
		srv.Set(t, node, "v3", fullConfig("127.0.0.1:9003"))
		rec.next(t, 5*time.Second)
	})
}

func TestInvalidResourceNACKedByValidateAll(t *testing.T) {
	srv := xdstest.NewServer(t, "127.0.0.1:0")
	cfg := fullConfig("127.0.0.1:9001")
	cfg.Clusters[0].ConnectTimeout.Seconds = -1 // violates the gt:0 rule
	srv.Set(t, node, "v1", cfg)
	rec, _ := start(t, srv.Addr, false, 0)
	deadline := time.Now().Add(5 * time.Second)
	for len(srv.NACKs()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := srv.NACKs(); len(n) == 0 || !strings.Contains(n[0], "ConnectTimeout") {
		t.Fatalf("NACKs %q", n)
	}
	rec.none(t, 200*time.Millisecond)
}

func TestReconnectKeepsLastConfig(t *testing.T) {
	modes(t, func(t *testing.T, delta bool) {
		srv := xdstest.NewServer(t, "127.0.0.1:0")
		srv.Set(t, node, "v1", fullConfig("127.0.0.1:9001"))
		rec, c := start(t, srv.Addr, delta, 0)
		rec.next(t, 5*time.Second)
		addr := srv.Addr
		srv.Stop()
		deadline := time.Now().Add(5 * time.Second)
		for c.Status().Connected && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if c.Status().Connected {
			t.Fatal("still connected after server stop")
		}
		rec.none(t, 300*time.Millisecond) // nothing replaces the last good config
		srv.Set(t, node, "v2", fullConfig("127.0.0.1:9002"))
		if err := srv.Start(addr); err != nil {
			t.Fatal(err)
		}
		s := rec.next(t, 10*time.Second)
		if s.Versions[xdsclient.EndpointType] != "v2" {
			t.Fatalf("versions after reconnect %v", s.Versions)
		}
		if c.Status().Streams < 2 {
			t.Fatalf("streams %d", c.Status().Streams)
		}
	})
}

type (
	clusterT = clusterv3.Cluster
	claT     = endpointv3.ClusterLoadAssignment
	routeT   = routev3.RouteConfiguration
)
