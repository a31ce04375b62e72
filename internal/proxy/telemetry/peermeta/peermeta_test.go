package peermeta

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/proxy/upstream"
	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// istioValue encodes metadata the way Istio's Envoy does, independently
// of Encode: deterministic Struct bytes, standard base64.
func istioValue(t *testing.T, m map[string]any) string {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(mustStruct(t, m))
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// TestDecodeIstioSidecarMetadata: a value sent by an Istio sidecar (its
// canonical labels set by the injector) gives Istio's peer labels; an
// unpadded value decodes too (Envoy decodes without padding).
func TestDecodeIstioSidecarMetadata(t *testing.T) {
	v := istioValue(t, map[string]any{
		"NAME": "reviews-v2-5f8d", "NAMESPACE": "bookinfo", "WORKLOAD_NAME": "reviews-v2", "CLUSTER_ID": "Kubernetes",
		"SERVICE_ACCOUNT": "bookinfo-reviews", "MESH_ID": "cluster.local", "OWNER": "kubernetes://apis/apps/v1/namespaces/bookinfo/deployments/reviews-v2",
		"LABELS": map[string]any{"app": "reviews", "version": "v2",
			"service.istio.io/canonical-name": "reviews-canon", "service.istio.io/canonical-revision": "v2-canon"},
		"INSTANCE_IPS": "10.0.0.7", "PLATFORM_METADATA": map[string]any{}, "APP_CONTAINERS": "reviews",
	})
	want := Peer{Name: "reviews-v2-5f8d", Namespace: "bookinfo", Workload: "reviews-v2", ServiceAccount: "bookinfo-reviews", Cluster: "Kubernetes",
		App: "reviews", Version: "v2", CanonicalService: "reviews-canon", CanonicalRevision: "v2-canon"}
	for _, value := range []string{v, strings.TrimRight(v, "=")} {
		got, err := Decode(value)
		if err != nil {
			t.Fatalf("Decode(%q): %v", value, err)
		}
		if got != want {
			t.Errorf("Decode:\n got %+v\nwant %+v", got, want)
		}
	}
	if _, err := Decode("not base64 !"); err == nil {
		t.Error("Decode of garbage: no error")
	}
	if _, err := Decode(base64.StdEncoding.EncodeToString([]byte{0xff, 0xff})); err == nil {
		t.Error("Decode of a non-Struct: no error")
	}
}

// TestEncodeKeepsIstioKeys: only Istio's exchanged keys are sent, in a
// deterministic encoding, and they decode back; NodeMetadata adds the
// canonical labels and CLUSTER_ID Istio's injector would have set.
func TestEncodeKeepsIstioKeys(t *testing.T) {
	md := NodeMetadata(mustStruct(t, map[string]any{
		"NAMESPACE": "default", "WORKLOAD_NAME": "client", "SERVICE_ACCOUNT": "client", "INSTANCE_IPS": "127.0.0.2",
		"LABELS": map[string]any{"app": "client", "version": "v1"}, "PROXY_CONFIG": "secret-ish", "ISTIO_VERSION": "1.32",
	}), "Kubernetes")
	v, err := Encode(md)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Encode(md)
	if again != v {
		t.Error("Encode is not deterministic")
	}
	b, _ := base64.StdEncoding.DecodeString(v)
	var sent structpb.Struct
	if err := proto.Unmarshal(b, &sent); err != nil {
		t.Fatal(err)
	}
	for k := range sent.Fields {
		if k == "PROXY_CONFIG" || k == "ISTIO_VERSION" {
			t.Errorf("key %s is sent; Istio exchanges only %v", k, ExchangedKeys)
		}
	}
	labels := sent.Fields["LABELS"].GetStructValue().GetFields()
	if labels[LabelCanonicalName].GetStringValue() != "client" || labels[LabelCanonicalRevision].GetStringValue() != "v1" {
		t.Errorf("canonical labels not derived: %v", labels)
	}
	p, err := Decode(v)
	if err != nil {
		t.Fatal(err)
	}
	want := Peer{Namespace: "default", Workload: "client", ServiceAccount: "client", Cluster: "Kubernetes", App: "client", Version: "v1",
		CanonicalService: "client", CanonicalRevision: "v1"}
	if p != want {
		t.Errorf("round trip:\n got %+v\nwant %+v", p, want)
	}
}

func host(labels, socket map[string]string) *upstream.Host {
	return &upstream.Host{Addr: "10.0.0.1:80", Labels: labels, SocketMatch: socket}
}

// TestInMesh: metadata goes only to mesh endpoints (tlsMode istio or
// Istio workload metadata), never when the cluster disables it.
func TestInMesh(t *testing.T) {
	plain, err := upstream.Compile(xdstest.StaticCluster("outbound|80||a.default.svc.cluster.local", "10.0.0.1:80"), nil)
	if err != nil {
		t.Fatal(err)
	}
	disabledCfg := xdstest.StaticCluster("outbound|80||b.default.svc.cluster.local", "10.0.0.1:80")
	disabledCfg.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": mustStruct(t, map[string]any{"disable_mx": true})}}
	disabled, err := upstream.Compile(disabledCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	mesh := host(map[string]string{"workload": "echo-v1;default;echo;v1;Kubernetes"}, map[string]string{"tlsMode": "disabled"})
	for _, c := range []struct {
		name string
		cl   *upstream.Cluster
		h    *upstream.Host
		want bool
	}{
		{"workload metadata", plain, mesh, true},
		{"tlsMode istio", plain, host(nil, map[string]string{"tlsMode": "istio"}), true},
		{"external endpoint (no workload name)", plain, host(map[string]string{"workload": ";default;ext;latest;Kubernetes"}, nil), false},
		{"no metadata", plain, host(nil, nil), false},
		{"no host", plain, nil, false},
		{"cluster with disable_mx", disabled, mesh, false},
	} {
		if got := InMesh(c.cl, c.h); got != c.want {
			t.Errorf("%s: InMesh = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestExchangeHeaders: the outbound side adds the headers for a mesh
// host only and strips the server's from the response; the inbound side
// strips the client's and answers only a client that sent some.
func TestExchangeHeaders(t *testing.T) {
	client, err := New("sidecar~10.0.0.2~client.default~default.svc.cluster.local", NodeMetadata(mustStruct(t, map[string]any{
		"NAMESPACE": "default", "WORKLOAD_NAME": "client", "LABELS": map[string]any{"app": "client"}}), "Kubernetes"))
	if err != nil {
		t.Fatal(err)
	}
	server, err := New("sidecar~10.0.0.1~echo.default~default.svc.cluster.local", NodeMetadata(mustStruct(t, map[string]any{
		"NAMESPACE": "default", "WORKLOAD_NAME": "echo-v1", "LABELS": map[string]any{"app": "echo", "version": "v1"}}), "Kubernetes"))
	if err != nil {
		t.Fatal(err)
	}
	cl, _ := upstream.Compile(xdstest.StaticCluster("c", "10.0.0.1:80"), nil)
	mesh := host(map[string]string{"workload": "echo-v1;default;echo;v1;Kubernetes"}, nil)

	req := http.Header{}
	client.Propagate(req, cl, host(nil, nil))
	if len(req) != 0 {
		t.Fatalf("headers to a non-mesh host: %v", req)
	}
	client.Propagate(req, cl, mesh)
	if req.Get(HeaderMetadata) != client.Value() || req.Get(HeaderID) == "" {
		t.Fatalf("headers to a mesh host: %v", req)
	}
	// A retry to a non-mesh host does not carry them.
	retry := req.Clone()
	client.Propagate(retry, cl, host(nil, nil))
	if len(retry) != 0 {
		t.Errorf("headers left on a retry to a non-mesh host: %v", retry)
	}

	peer, respond := server.Downstream(req)
	if !respond || peer == nil || peer.Workload != "client" || peer.CanonicalService != "client" || peer.CanonicalRevision != "latest" {
		t.Fatalf("server read %+v, respond %v", peer, respond)
	}
	if len(req) != 0 {
		t.Errorf("headers not stripped before the application: %v", req)
	}
	if p, respond := server.Downstream(http.Header{"Accept": {"*/*"}}); p != nil || respond {
		t.Errorf("a client without metadata: %+v, respond %v", p, respond)
	}

	resp := http.Header{"Content-Type": {"text/plain"}}
	server.Respond(resp)
	up := client.Upstream(resp)
	if up == nil || up.Workload != "echo-v1" || up.App != "echo" || up.Version != "v1" {
		t.Fatalf("client read %+v", up)
	}
	if _, ok := resp[HeaderMetadata]; ok || len(resp) != 1 {
		t.Errorf("headers not stripped before the client: %v", resp)
	}
	// A bad value is stripped and ignored.
	bad := http.Header{HeaderMetadata: {"%%%"}, HeaderID: {"x"}}
	if p := client.Upstream(bad); p != nil || len(bad) != 0 {
		t.Errorf("bad value: %+v, headers %v", p, bad)
	}
}
