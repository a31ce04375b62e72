package translate

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/model"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/translate")

// goldenCases lists, per corpus case, the proxies whose configuration is
// recorded.
var goldenCases = map[string]map[string]*model.Proxy{
	"base":            {"productpage": sidecarProxy("productpage", "v1", "10.1.0.11")},
	"all-v1":          {"productpage": sidecarProxy("productpage", "v1", "10.1.0.11")},
	"jason-v2":        {"productpage": sidecarProxy("productpage", "v1", "10.1.0.11"), "productpage-grpc": grpcProxy()},
	"ratings-delay":   {"reviews-v2": sidecarProxy("reviews", "v2", "10.1.0.14")},
	"ratings-abort":   {"reviews-v2": sidecarProxy("reviews", "v2", "10.1.0.14")},
	"shift-50-v3":     {"productpage": sidecarProxy("productpage", "v1", "10.1.0.11")},
	"shift-100-v3":    {"productpage": sidecarProxy("productpage", "v1", "10.1.0.11")},
	"reviews-timeout": {"productpage": sidecarProxy("productpage", "v1", "10.1.0.11")},
	"circuit-breaker": {"productpage": sidecarProxy("productpage", "v1", "10.1.0.11")},
	"mirror":          {"productpage": sidecarProxy("productpage", "v1", "10.1.0.11")},
	"ingress-gateway": {"ingressgateway": gatewayProxy()},
	"registry-only":   {"productpage": sidecarProxy("productpage", "v1", "10.1.0.11")},
	"features":        {"productpage": sidecarProxy("productpage", "v1", "10.1.0.11"), "reviews-v2": sidecarProxy("reviews", "v2", "10.1.0.14")},
	"sidecar-scope":   {"productpage": sidecarProxy("productpage", "v1", "10.1.0.11")},
	"gateway-tls":     {"ingressgateway": gatewayProxy()},
	"locality":        {"productpage": localitySidecar()},
	"authorization":   {"productpage": sidecarProxy("productpage", "v1", "10.1.0.11"), "ingressgateway": gatewayProxy()},
	"egress-gateway": {
		"productpage":   sidecarProxy("productpage", "v1", "10.1.0.11"),
		"egressgateway": {Type: model.ProxyRouter, Namespace: "istio-system", Labels: map[string]string{"istio": "egressgateway"}, IPs: []string{"10.1.0.200"}},
	},
	"tls-origination": {"productpage": sidecarProxy("productpage", "v1", "10.1.0.11")},
	"peer-authentication": {
		"reviews-v2": sidecarProxy("reviews", "v2", "10.1.0.14"),
		"ratings-v1": sidecarProxy("ratings", "v1", "10.1.0.16"),
	},
}

func grpcProxy() *model.Proxy {
	p := sidecarProxy("productpage", "v1", "10.1.0.11")
	p.Generator = model.GeneratorGRPC
	return p
}

func localitySidecar() *model.Proxy {
	p := sidecarProxy("productpage", "v1", "10.1.0.11")
	p.Metadata = map[string]string{MetadataLocality: "us-east1/us-east1-b"}
	return p
}

// TestGolden generates every case's proxies, checks that each resource
// passes ValidateAll, and compares the output with the golden JSON files
// (refresh with go test ./internal/translate/... -update).
func TestGolden(t *testing.T) {
	for name, proxies := range goldenCases {
		t.Run(name, func(t *testing.T) {
			snap := loadCase(t, name)
			for pname, proxy := range proxies {
				r := Generate(snap, proxy)
				validateResources(t, r)
				got := marshalResources(t, r)
				file := filepath.Join(testdataDir, name, "golden", pname+".json")
				if *update {
					if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(file, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(file)
				if err != nil {
					t.Fatalf("%v (run with -update to create)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from the generated configuration; run with -update and review the diff", file)
				}
			}
		})
	}
}

// marshalResources renders resources as stable, indented JSON: protojson
// per message (its whitespace is deliberately unstable), re-indented by
// encoding/json, which sorts object keys.
func marshalResources(t testing.TB, r *Resources) []byte {
	t.Helper()
	list := func(msgs []proto.Message) []any {
		out := make([]any, 0, len(msgs))
		for _, m := range msgs {
			b, err := protojson.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatal(err)
			}
			out = append(out, v)
		}
		return out
	}
	doc := map[string]any{
		"clusters":  list(msgs(r.Clusters)),
		"endpoints": list(msgs(r.Endpoints)),
		"listeners": list(msgs(r.Listeners)),
		"routes":    list(msgs(r.Routes)),
		"secrets":   list(msgs(r.Secrets)),
	}
	if len(r.Diagnostics) > 0 {
		var ds []string
		for _, d := range r.Diagnostics {
			ds = append(ds, d.String())
		}
		doc["diagnostics"] = ds
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func msgs[M proto.Message](in []M) []proto.Message {
	out := make([]proto.Message, len(in))
	for i, m := range in {
		out[i] = m
	}
	return out
}

// TestGenerateDeterministic checks that generation is a pure function:
// two runs give equal output, and input snapshots are not modified.
func TestGenerateDeterministic(t *testing.T) {
	for name, proxies := range goldenCases {
		snap := loadCase(t, name)
		for _, proxy := range proxies {
			a, b := Generate(snap, proxy), Generate(snap, proxy)
			if !bytes.Equal(marshalResources(t, a), marshalResources(t, b)) {
				t.Errorf("%s: two runs differ", name)
			}
		}
	}
}
