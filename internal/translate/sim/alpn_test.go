package sim_test

import (
	"testing"

	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/translate"
	"github.com/weftmesh/weft/internal/translate/sim"
)

// autoService is a mesh service whose port 7070 has no protocol (sniffed),
// with one workload, optionally under a STRICT PeerAuthentication.
const autoService = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: auto, namespace: default}
spec:
  hosts: [auto.default.svc.cluster.local]
  addresses: [10.0.0.40]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 7070, name: web}
  workloadSelector:
    labels: {app: auto}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: auto-v1, namespace: default}
spec:
  address: 10.1.0.40
  labels: {app: auto, version: v1, security.istio.io/tlsMode: istio}
  serviceAccount: auto
`

const strictAuto = `
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: default}
spec:
  mtls: {mode: STRICT}
`

func simulateYAML(t *testing.T, yaml string, proxy *model.Proxy) *sim.Simulator {
	t.Helper()
	configs, diags := manifest.Decode("auto.yaml", []byte(yaml), "file")
	if len(diags) > 0 {
		t.Fatalf("%v", diags)
	}
	snap := model.NewStore().Update(&model.SourceState{Source: "file", Configs: configs, Synced: true})
	r := translate.Generate(snap, proxy)
	return sim.New(sim.Config{Listeners: r.Listeners, Routes: r.Routes, Clusters: r.Clusters, Endpoints: r.Endpoints})
}

// Istio's inbound listener on a port of unknown protocol tells HTTP
// requests from other mesh connections by the client's ALPN: an Istio (or
// weft) client offers istio-http/1.1 or istio-h2 for HTTP requests (the
// HTTP chain), istio-peer-exchange and istio for TCP (the tcp_proxy
// chain); on known-protocol ports every Istio ALPN value is mesh mTLS.
func TestInboundMTLSALPNOnSniffedPort(t *testing.T) {
	proxy := &model.Proxy{Type: model.ProxySidecar, Namespace: "default", Workload: "auto-v1",
		Labels: map[string]string{"app": "auto", "version": "v1"}, IPs: []string{"10.1.0.40"}}
	req := func(p sim.Protocol, alpn ...string) sim.Request {
		return sim.Request{Listener: "virtualInbound", Protocol: p, ALPN: alpn, Port: 7070, Host: "auto:7070"}
	}
	for _, mode := range []struct{ name, yaml string }{{"permissive", autoService}, {"strict", autoService + strictAuto}} {
		s := simulateYAML(t, mode.yaml, proxy)
		for _, alpn := range [][]string{{"istio-http/1.1", "istio", "http/1.1"}, {"istio-h2", "istio", "h2"}, {"istio-http/1.0", "istio", "http/1.0"}} {
			res := run(t, s, req(sim.HTTPS, alpn...))
			if res.FilterChain != "inbound|7070||-mtls-http" || !res.TerminatesTLS || res.RouteConfig == "" || res.Cluster != "inbound|7070||" {
				t.Errorf("%s, HTTP request offering %q: chain %q, route %q, cluster %q, TLS terminated %v; want the mTLS HTTP chain",
					mode.name, alpn, res.FilterChain, res.RouteConfig, res.Cluster, res.TerminatesTLS)
			}
		}
		res := run(t, s, req(sim.TLS, "istio-peer-exchange", "istio"))
		if res.FilterChain != "inbound|7070||-mtls" || !res.TerminatesTLS || res.RouteConfig != "" || res.Cluster != "inbound|7070||" {
			t.Errorf("%s, TCP offering istio-peer-exchange: chain %q, route %q, TLS terminated %v; want the mTLS TCP chain",
				mode.name, res.FilterChain, res.RouteConfig, res.TerminatesTLS)
		}
	}
	// A known HTTP port accepts every Istio ALPN value as mesh mTLS.
	s := simulate(t, "base", reviewsV2())
	for _, alpn := range [][]string{{"istio-http/1.1", "istio", "http/1.1"}, {"istio-h2", "istio", "h2"}, {"istio-peer-exchange", "istio"}, {"istio-http/1.0"}} {
		res := run(t, s, sim.Request{Listener: "virtualInbound", Protocol: sim.HTTPS, ALPN: alpn, Port: 9080, Host: "svc:9080"})
		if !res.TerminatesTLS || res.Cluster != "inbound|9080||" {
			t.Errorf("known HTTP port, ALPN %q: %+v", alpn, res)
		}
	}
}
