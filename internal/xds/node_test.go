package xds

import (
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/weftmesh/weft/internal/translate"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/model"
)

func meta(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestProxyFromNodeIstioID(t *testing.T) {
	p, err := ProxyFromNode(&core.Node{Id: "sidecar~10.0.0.1~productpage-v1-6b746f74dc-9stvs.default~default.svc.cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Type != model.ProxySidecar || p.Namespace != "default" || p.Workload != "productpage-v1-6b746f74dc-9stvs" ||
		len(p.IPs) != 1 || p.IPs[0] != "10.0.0.1" || p.Generator != "" {
		t.Errorf("got %+v", p)
	}
	p, err = ProxyFromNode(&core.Node{Id: "router~10.0.0.9~istio-ingressgateway-x.istio-system~istio-system.svc.cluster.local"})
	if err != nil || p.Type != model.ProxyRouter || p.Namespace != "istio-system" {
		t.Errorf("router: %+v, %v", p, err)
	}
}

func TestProxyFromNodeMetadata(t *testing.T) {
	p, err := ProxyFromNode(&core.Node{
		Id: "sidecar~10.0.0.1~reviews-v2-abc.bookinfo~bookinfo.svc.cluster.local",
		Metadata: meta(t, map[string]any{
			"NAMESPACE":         "bookinfo",
			"WORKLOAD_NAME":     "reviews-v2",
			"LABELS":            map[string]any{"app": "reviews", "version": "v2"},
			"SERVICE_ACCOUNT":   "bookinfo-reviews",
			"INSTANCE_IPS":      "10.0.0.1,fd00::1",
			"GENERATOR":         "grpc",
			"ISTIO_VERSION":     "1.32.0",
			"PLATFORM_METADATA": map[string]any{"x": "y"},
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.Namespace != "bookinfo" || p.Workload != "reviews-v2" || p.ServiceAccount != "bookinfo-reviews" ||
		p.Labels["app"] != "reviews" || p.Labels["version"] != "v2" || len(p.IPs) != 2 || p.IPs[1] != "fd00::1" ||
		p.Generator != model.GeneratorGRPC || p.Metadata["ISTIO_VERSION"] != "1.32.0" || p.Metadata["PLATFORM_METADATA"] != `{"x":"y"}` {
		t.Errorf("got %+v", p)
	}
	if _, ok := p.Metadata["LABELS"]; ok {
		t.Error("LABELS kept in Metadata")
	}
}

func TestProxyFromNodePlainID(t *testing.T) {
	p, err := ProxyFromNode(&core.Node{Id: "my-client", Metadata: meta(t, map[string]any{"NAMESPACE": "shop"})})
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "my-client" || p.Namespace != "shop" || p.Type != model.ProxySidecar {
		t.Errorf("got %+v", p)
	}
	p, err = ProxyFromNode(&core.Node{Id: "bare"})
	if err != nil || p.Namespace != "default" {
		t.Errorf("bare id: %+v, %v", p, err)
	}
}

func TestProxyFromNodeErrors(t *testing.T) {
	for _, tc := range []struct {
		node *core.Node
		want string
	}{
		{&core.Node{}, "node.id: empty"},
		{&core.Node{Id: "gateway~10.0.0.1~a.b~b.svc.cluster.local"}, `unknown proxy type "gateway"`},
		{&core.Node{Id: "sidecar~not-an-ip~a.b~b.svc.cluster.local"}, `invalid IP address "not-an-ip"`},
		{&core.Node{Id: "sidecar~10.0.0.1~nonamespace~b.svc.cluster.local"}, "must be POD.NAMESPACE"},
		{&core.Node{Id: "sidecar~10.0.0.1~a.b"}, "has 3 '~'-separated parts"},
		{&core.Node{Id: "x", Metadata: meta(t, map[string]any{"NAMESPACE": 3.0})}, "metadata.NAMESPACE: must be a string"},
		{&core.Node{Id: "x", Metadata: meta(t, map[string]any{"LABELS": "app=x"})}, "metadata.LABELS: must be a struct"},
		{&core.Node{Id: "x", Metadata: meta(t, map[string]any{"LABELS": map[string]any{"n": 1.0}})}, "metadata.LABELS.n: must be a string"},
		{&core.Node{Id: "x", Metadata: meta(t, map[string]any{"INSTANCE_IPS": "10.0.0.1,bad"})}, `metadata.INSTANCE_IPS: invalid IP address "bad"`},
		{&core.Node{Id: "x", Metadata: meta(t, map[string]any{"GENERATOR": "envoy"})}, `unknown generator "envoy"`},
	} {
		_, err := ProxyFromNode(tc.node)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("node %v: error %v, want it to contain %q", tc.node, err, tc.want)
		}
	}
}

func TestProxyFromNodeLocality(t *testing.T) {
	p, err := ProxyFromNode(&core.Node{Id: "sidecar~10.0.0.1~a.default~default.svc.cluster.local", Locality: &core.Locality{Region: "us-east1", Zone: "us-east1-b"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Metadata[MetaLocality]; got != "us-east1/us-east1-b" {
		t.Errorf("LOCALITY = %q, want us-east1/us-east1-b", got)
	}
	if MetaLocality != translate.MetadataLocality {
		t.Errorf("xds and translate disagree on the locality key: %q vs %q", MetaLocality, translate.MetadataLocality)
	}
}
