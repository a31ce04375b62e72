package telemetry

import (
	"bytes"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/proxy/httpproxy"
	"github.com/weftmesh/weft/internal/proxy/sds"
	"github.com/weftmesh/weft/internal/proxy/telemetry/peermeta"
	"github.com/weftmesh/weft/internal/proxy/upstream"
	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

func scrape(m *Metrics) string {
	var b bytes.Buffer
	m.WritePrometheus(&b)
	return b.String()
}

// labelsOf returns the label values of the first istio_requests_total
// series.
func labelsOf(t *testing.T, out string) map[string]string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "istio_requests_total{") {
			continue
		}
		inner := line[len("istio_requests_total{"):strings.LastIndex(line, "}")]
		got := map[string]string{}
		for _, kv := range strings.Split(inner, `",`) {
			k, v, _ := strings.Cut(kv, `="`)
			got[k] = strings.TrimSuffix(v, `"`)
		}
		return got
	}
	t.Fatalf("no istio_requests_total series in:\n%s", out)
	return nil
}

func checkLabels(t *testing.T, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

// TestHistogramNumbersAsEnvoy: bucket bounds and sums are written as
// Envoy writes them ({:.32g}): le="1800000", never an exponent. Durations
// are whole milliseconds, as Istio records them.
func TestHistogramNumbersAsEnvoy(t *testing.T) {
	m := New(Local{Workload: "client", Namespace: "default"})
	m.Observe(&httpproxy.Info{Cluster: "outbound|80||echo.default.svc.cluster.local", Status: 200, Duration: 2500 * time.Microsecond, BytesOut: 1234567})
	m.Observe(&httpproxy.Info{Cluster: "outbound|80||echo.default.svc.cluster.local", Status: 200, Duration: 700 * time.Microsecond, BytesOut: 1234567})
	out := scrape(m)
	for _, want := range []string{`le="0.5"`, `le="1800000"`, `le="3600000"`, `le="1000000000"`,
		"istio_request_duration_milliseconds_sum{", "} 2\n", "} 2469134\n", `le="0.5"} 1` + "\n", `le="1"} 1` + "\n", `le="5"} 2` + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %s in the output", want)
		}
	}
	if strings.Contains(out, "e+") {
		t.Errorf("exponent form in the output:\n%s", out)
	}
	for v, want := range map[float64]string{0.1: "0.10000000000000000555111512312578", 1800000: "1800000", 1e33: "9.9999999999999994557523098704282e+32", 0: "0"} {
		if got := envoyFloat(v); got != want {
			t.Errorf("envoyFloat(%v) = %q, want %q (C's %%.32g)", v, got, want)
		}
	}
}

type clusters map[string]*upstream.Cluster

func (c clusters) Cluster(name string) *upstream.Cluster { return c[name] }

// TestInboundDestinationServiceFromClusterMetadata: the inbound cluster's
// istio.services metadata names the destination service host, as
// Istio's stats filter reports it.
func TestInboundDestinationServiceFromClusterMetadata(t *testing.T) {
	cfg := xdstest.StaticCluster("inbound|8080||", "127.0.0.1:8080")
	md, err := structpb.NewStruct(map[string]any{"services": []any{
		map[string]any{"host": "echo.default.svc.cluster.local", "name": "echo", "namespace": "default"},
		map[string]any{"host": "echo-alias.default.svc.cluster.local", "name": "echo-alias", "namespace": "default"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": md}}
	cl, err := upstream.Compile(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := New(Local{Workload: "echo-v1", Namespace: "default", Labels: map[string]string{"app": "echo", "version": "v1"},
		Clusters: clusters{"inbound|8080||": cl}})
	m.Observe(&httpproxy.Info{Cluster: "inbound|8080||", Status: 200, Conn: &httpproxy.ConnInfo{Listener: "virtualInbound"}})
	checkLabels(t, labelsOf(t, scrape(m)), map[string]string{"reporter": "destination",
		"destination_service": "echo.default.svc.cluster.local", "destination_service_name": "echo", "destination_service_namespace": "default",
		"destination_workload": "echo-v1", "destination_canonical_service": "echo"})

	// Without metadata: the canonical service, as before.
	m = New(Local{Workload: "echo-v1", Namespace: "default", Labels: map[string]string{"app": "echo"}})
	m.Observe(&httpproxy.Info{Cluster: "inbound|8080||", Status: 200, Conn: &httpproxy.ConnInfo{Listener: "virtualInbound"}})
	checkLabels(t, labelsOf(t, scrape(m)), map[string]string{"destination_service": "echo", "destination_service_name": "echo"})
}

// TestPeerLabelsFromMetadataExchange: the server side fills the source
// labels from the client's exchanged metadata (principal and namespace
// from mTLS); the client side takes the destination labels from the
// server's metadata, else from the endpoint metadata, as Istio's stats
// filter does.
func TestPeerLabelsFromMetadataExchange(t *testing.T) {
	client := peermeta.Peer{Workload: "client", Namespace: "default", App: "client", Version: "v1",
		CanonicalService: "client", CanonicalRevision: "v1", Cluster: "Kubernetes"}
	m := New(Local{Workload: "echo-v1", Namespace: "default", Labels: map[string]string{"app": "echo"}})
	m.Observe(&httpproxy.Info{Cluster: "inbound|8080||", Status: 200, DownstreamPeer: &client,
		Conn: &httpproxy.ConnInfo{Listener: "virtualInbound"}})
	checkLabels(t, labelsOf(t, scrape(m)), map[string]string{"reporter": "destination",
		"source_workload": "client", "source_workload_namespace": "default", "source_app": "client", "source_version": "v1",
		"source_canonical_service": "client", "source_canonical_revision": "v1", "source_cluster": "Kubernetes",
		"source_principal": "unknown", "connection_security_policy": "none"})

	server := peermeta.Peer{Workload: "echo-v1", Namespace: "default", App: "echo", Version: "v1",
		CanonicalService: "echo", CanonicalRevision: "v1", Cluster: "Kubernetes"}
	m = New(Local{Workload: "client", Namespace: "default"})
	bare := &upstream.Host{Addr: "10.0.0.1:8080"} // no endpoint metadata
	m.Observe(&httpproxy.Info{Cluster: "outbound|80||echo.default.svc.cluster.local", Status: 200, Upstream: bare, UpstreamPeer: &server})
	checkLabels(t, labelsOf(t, scrape(m)), map[string]string{"reporter": "source",
		"destination_workload": "echo-v1", "destination_workload_namespace": "default", "destination_app": "echo",
		"destination_version": "v1", "destination_canonical_service": "echo", "destination_cluster": "Kubernetes",
		"destination_service": "echo.default.svc.cluster.local"})

	// The exchanged metadata wins over the endpoint's; without it, the
	// endpoint's; with neither, the canonical revision is "latest".
	labelled := &upstream.Host{Addr: "10.0.0.1:8080", Labels: map[string]string{"workload": "echo-v2;default;echo;v2;Kubernetes"}}
	for _, c := range []struct {
		host *upstream.Host
		peer *peermeta.Peer
		want map[string]string
	}{
		{labelled, &server, map[string]string{"destination_workload": "echo-v1", "destination_canonical_revision": "v1"}},
		{labelled, nil, map[string]string{"destination_workload": "echo-v2", "destination_canonical_revision": "v2"}},
		{bare, nil, map[string]string{"destination_workload": "unknown", "destination_canonical_revision": "latest"}},
	} {
		m = New(Local{Workload: "client", Namespace: "default"})
		m.Observe(&httpproxy.Info{Cluster: "outbound|80||echo.default.svc.cluster.local", Status: 200, Upstream: c.host, UpstreamPeer: c.peer})
		checkLabels(t, labelsOf(t, scrape(m)), c.want)
	}

	// Server side over mTLS without exchanged metadata: principal and
	// namespace from the SPIFFE ID, revision "latest".
	m = New(Local{Workload: "echo-v1", Namespace: "default"})
	m.Observe(&httpproxy.Info{Cluster: "inbound|8080||", Status: 200,
		Conn: &httpproxy.ConnInfo{Listener: "virtualInbound", TLS: true, Peer: &sds.Peer{Principal: "spiffe://cluster.local/ns/shop/sa/cart"}}})
	checkLabels(t, labelsOf(t, scrape(m)), map[string]string{"source_principal": "spiffe://cluster.local/ns/shop/sa/cart",
		"source_workload_namespace": "shop", "source_workload": "unknown", "source_canonical_revision": "latest",
		"connection_security_policy": "mutual_tls"})
}

// TestTCPInboundPeerLabels: an inbound tcp_proxy connection over mesh
// mTLS reports the client's exchanged metadata and principal, and
// mutual_tls, on its opened and closed counters alike.
func TestTCPInboundPeerLabels(t *testing.T) {
	m := New(Local{Workload: "echo-v1", Namespace: "default", Labels: map[string]string{"app": "echo"}})
	client := peermeta.Peer{Workload: "client", Namespace: "default", App: "client", CanonicalService: "client", CanonicalRevision: "latest"}
	conn := &httpproxy.ConnInfo{Listener: "virtualInbound", TLS: true, DownstreamPeer: &client,
		Peer: &sds.Peer{Principal: "spiffe://cluster.local/ns/default/sa/client"}}
	m.TCPOpened("inbound|9000||", nil, conn)
	m.TCPClosed("inbound|9000||", nil, conn, "", 10, 20)
	out := scrape(m)
	for _, metric := range []string{"istio_tcp_connections_opened_total", "istio_tcp_connections_closed_total", "istio_tcp_received_bytes_total"} {
		want := metric + `{reporter="destination",source_workload="client",source_workload_namespace="default",source_principal="spiffe://cluster.local/ns/default/sa/client",source_app="client"`
		if !strings.Contains(out, want) {
			t.Errorf("no %s... in:\n%s", want, out)
		}
	}
	if !strings.Contains(out, `connection_security_policy="mutual_tls"} 20`) {
		t.Errorf("received bytes not under mutual_tls:\n%s", out)
	}
}
