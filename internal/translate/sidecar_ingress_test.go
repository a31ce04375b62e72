package translate

import (
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/weftmesh/weft/internal/translate/sim"
)

func TestSidecarIngressCaptureModeNone(t *testing.T) {
	snap := loadCase(t, "local-mode")
	proxy := sidecarProxy("reviews", "v1", "10.1.0.31")
	proxy.Metadata = map[string]string{MetadataInterceptionMode: "NONE"}
	res := Generate(snap, proxy)
	validateResources(t, res)

	var names []string
	for _, l := range res.Listeners {
		names = append(names, l.Name)
		if l.Name == VirtualInboundListener || l.Name == VirtualOutboundListener {
			t.Errorf("listener %s generated for a proxy with INTERCEPTION_MODE NONE", l.Name)
		}
	}
	bound := findListener(res, "10.1.0.31_9080")
	if bound == nil {
		t.Fatalf("no listener 10.1.0.31_9080 among %v", names)
	}
	if sa := bound.Address.GetSocketAddress(); sa.Address != "10.1.0.31" || sa.GetPortValue() != 9080 {
		t.Errorf("bound listener address = %v", sa)
	}
	c := findCluster(res, "inbound|9080||")
	if c == nil {
		t.Fatal("no inbound|9080|| cluster")
	}
	ep := c.LoadAssignment.Endpoints[0].LbEndpoints[0].GetEndpoint().Address.GetSocketAddress()
	if ep.Address != "127.0.1.31" || ep.GetPortValue() != 9080 {
		t.Errorf("inbound cluster endpoint = %v, want the Sidecar's defaultEndpoint 127.0.1.31:9080", ep)
	}

	// A request arriving on the bound listener reaches the application.
	s := sim.New(sim.Config{Listeners: res.Listeners, Routes: res.Routes, Clusters: res.Clusters, Endpoints: res.Endpoints})
	got, err := s.Run(sim.Request{Address: "10.1.0.31", Port: 9080, Host: "reviews:9080", Path: "/reviews/0"})
	if err != nil {
		t.Fatalf("simulated inbound request: %v", err)
	}
	if got.Listener != "10.1.0.31_9080" || got.Cluster != "inbound|9080||" || len(got.Endpoints) != 1 || got.Endpoints[0] != "127.0.1.31:9080" {
		t.Errorf("simulated inbound request = %+v, want listener 10.1.0.31_9080 → inbound|9080|| → 127.0.1.31:9080", got)
	}
}

func TestSidecarIngressWithInterceptionKeepsVirtualListeners(t *testing.T) {
	snap := loadCase(t, "base")
	res := Generate(snap, sidecarProxy("reviews", "v1", "10.1.0.31"))
	if findListener(res, VirtualInboundListener) == nil || findListener(res, VirtualOutboundListener) == nil {
		t.Error("a proxy with interception lost its virtual listeners")
	}
}

func findListener(r *Resources, name string) *listener.Listener {
	for _, l := range r.Listeners {
		if l.Name == name {
			return l
		}
	}
	return nil
}
