package validate

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/model"
)

var update = flag.Bool("update", false, "rewrite testdata/invalid/*.golden from the current output")

// repoRoot is where testdata lives; inputs are named relative to it so that
// goldens match `weft validate -f testdata/invalid/X.yaml` run there.
const repoRoot = "../.."

func readCorpus(t testing.TB, dir string) []Input {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(repoRoot, "testdata", dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []Input
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(repoRoot, p)
		out = append(out, Input{Name: filepath.ToSlash(rel), Data: data})
	}
	return out
}

// TestGoldenInvalid checks the output of `weft validate -f FILE` for every
// broken file against FILE.golden (refresh with -update).
func TestGoldenInvalid(t *testing.T) {
	inputs := readCorpus(t, "invalid")
	if len(inputs) < 35 {
		t.Fatalf("only %d invalid files; the corpus needs at least 35", len(inputs))
	}
	for _, in := range inputs {
		t.Run(strings.TrimSuffix(filepath.Base(in.Name), ".yaml"), func(t *testing.T) {
			rep := Check([]Input{in})
			var buf bytes.Buffer
			if err := rep.Write(&buf); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join(repoRoot, strings.TrimSuffix(in.Name, ".yaml")+".golden")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("missing golden (run go test ./internal/validate/... -update): %v", err)
			}
			if got := buf.String(); got != string(want) {
				t.Errorf("output differs from %s\n--- got\n%s--- want\n%s", golden, got, want)
			}
			if len(rep.Diagnostics) == 0 {
				t.Fatalf("no diagnostics for a file in testdata/invalid")
			}
			for _, d := range rep.Diagnostics {
				if d.Origin.File != in.Name || d.Origin.Line == 0 {
					t.Errorf("diagnostic without file and line: %s", d)
				}
				// Only YAML syntax errors cannot name a field.
				if d.Field == "" && !strings.HasPrefix(d.Message, "invalid YAML") {
					t.Errorf("diagnostic without field path: %s", d)
				}
			}
		})
	}
}

// TestValidCorpus: every valid file passes alone (warnings allowed), and
// bookinfo's gateway, rules, routes and security policies, with the
// external services and the advanced forms, together produce nothing.
func TestValidCorpus(t *testing.T) {
	inputs := readCorpus(t, "valid")
	if len(inputs) < 10 {
		t.Fatalf("only %d valid files", len(inputs))
	}
	for _, in := range inputs {
		rep := Check([]Input{in})
		if rep.Errors() > 0 || rep.Objects == 0 {
			var buf bytes.Buffer
			rep.Write(&buf)
			t.Errorf("%s: want no errors, got:\n%s", in.Name, buf.String())
		}
	}
	var set []Input
	for _, in := range inputs {
		switch filepath.Base(in.Name) {
		case "bookinfo-gateway.yaml", "destination-rule-all.yaml", "virtual-service-all-v1.yaml", "security.yaml", "external-services.yaml", "advanced-forms.yaml":
			set = append(set, in)
		}
	}
	rep := Check(set)
	if len(rep.Diagnostics) != 0 || rep.Objects != 34 {
		var buf bytes.Buffer
		rep.Write(&buf)
		t.Errorf("bookinfo set: want 34 objects and no diagnostics, got:\n%s", buf.String())
	}
}

func decodeOne(t *testing.T, yaml string) *model.Config {
	t.Helper()
	cs, diags := manifest.Decode("t.yaml", []byte(yaml), "test")
	if len(diags) != 0 || len(cs) != 1 {
		t.Fatalf("decode: %v", diags)
	}
	return cs[0]
}

func TestSetCrossObject(t *testing.T) {
	vs := decodeOne(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: prod}
spec:
  hosts: [reviews]
  gateways: [mesh, prod/ingress]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews.prod.svc.cluster.local, subset: v9}, weight: 20}
`)
	dr := decodeOne(t, "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: prod}\nspec: {host: reviews.prod.svc.cluster.local, subsets: [{name: v1}]}\n")
	gw := decodeOne(t, "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: ingress, namespace: prod}\nspec: {servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]}\n")
	ds := Set([]*model.Config{vs, dr, gw})
	if len(ds) != 1 || ds[0].Field != "spec.http[0].route[1].destination.subset" || ds[0].Severity != model.SeverityWarning || !strings.Contains(ds[0].Message, `"v9"`) {
		t.Fatalf("want one warning about subset v9 (short and long host names resolve alike), got %v", ds)
	}
	// Without the gateway, its absence is reported.
	ds = Set([]*model.Config{vs, dr})
	if len(ds) != 2 || !strings.Contains(ds[0].Message+ds[1].Message, "gateway prod/ingress") {
		t.Errorf("want missing gateway warning, got %v", ds)
	}

	sc1 := decodeOne(t, "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: a}\nspec: {egress: [{hosts: ['./*']}]}\n")
	sc2 := decodeOne(t, "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: b}\nspec: {egress: [{hosts: ['./*']}]}\n")
	sc3 := decodeOne(t, "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: c}\nspec: {workloadSelector: {labels: {app: x}}, egress: [{hosts: ['./*']}]}\n")
	ds = Set([]*model.Config{sc1, sc2, sc3})
	if len(ds) != 1 || ds[0].Name != "b" || ds[0].Severity != model.SeverityError {
		t.Errorf("want one error on the second namespace-wide Sidecar, got %v", ds)
	}

	dup := *dr
	dup.Origin.Line = 99
	ds = Set([]*model.Config{dr, &dup})
	found := false
	for _, d := range ds {
		if strings.Contains(d.Message, "duplicate object") && d.Severity == model.SeverityWarning {
			found = true
		}
	}
	if !found {
		t.Errorf("duplicate objects not reported: %v", ds)
	}
}

// TestSemanticLinesPointAtFields: semantic diagnostics carry the line of
// the offending field, not of the object.
func TestSemanticLinesPointAtFields(t *testing.T) {
	in := Input{Name: "x.yaml", Data: []byte(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: r
spec:
  hosts: [r]
  http:
  - route:
    - destination:
        host: r
    retries:
      attempts: 2
      retryOn: 5xx,bogus
`)}
	rep := Check([]Input{in})
	if len(rep.Diagnostics) != 1 || rep.Diagnostics[0].Origin.Line != 13 || rep.Diagnostics[0].Field != "spec.http[0].retries.retryOn" {
		t.Fatalf("got %v", rep.Diagnostics)
	}
}

// TestObjectToleratesNil: specs built in code may hold nil elements, which
// YAML input never produces; Object must report, not panic.
func TestObjectToleratesNil(t *testing.T) {
	meta := model.Meta{Name: "n", Namespace: "default"}
	specs := []any{
		&networking.VirtualService{Hosts: []string{"a"}, Http: []*networking.HTTPRoute{nil, {Match: []*networking.HTTPMatchRequest{nil}, Route: []*networking.HTTPRouteDestination{nil}, Mirrors: []*networking.HTTPMirrorPolicy{nil}, CorsPolicy: &networking.CorsPolicy{AllowOrigins: []*networking.StringMatch{nil}}}}, Tls: []*networking.TLSRoute{nil, {Match: []*networking.TLSMatchAttributes{nil}, Route: []*networking.RouteDestination{nil}}}, Tcp: []*networking.TCPRoute{nil, {Match: []*networking.L4MatchAttributes{nil}}}},
		&networking.DestinationRule{Host: "a", Subsets: []*networking.Subset{nil}, TrafficPolicy: &networking.TrafficPolicy{PortLevelSettings: []*networking.TrafficPolicy_PortTrafficPolicy{nil}, LoadBalancer: &networking.LoadBalancerSettings{LocalityLbSetting: &networking.LocalityLoadBalancerSetting{Distribute: []*networking.LocalityLoadBalancerSetting_Distribute{nil}, Failover: []*networking.LocalityLoadBalancerSetting_Failover{nil}}}}},
		&networking.Gateway{Servers: []*networking.Server{nil, {Tls: &networking.ServerTLSSettings{Mode: networking.ServerTLSSettings_SIMPLE, TlsCertificates: []*networking.ServerTLSSettings_TLSCertificate{nil}}}}},
		&networking.ServiceEntry{Ports: []*networking.ServicePort{nil}, Endpoints: []*networking.WorkloadEntry{nil}, Resolution: networking.ServiceEntry_STATIC},
		&networking.ServiceEntry{Ports: []*networking.ServicePort{nil}, Endpoints: []*networking.WorkloadEntry{nil}, Resolution: networking.ServiceEntry_DNS},
		&networking.Sidecar{Ingress: []*networking.IstioIngressListener{nil}, Egress: []*networking.IstioEgressListener{nil}},
		&security.PeerAuthentication{PortLevelMtls: map[uint32]*security.PeerAuthentication_MutualTLS{0: nil}},
		&security.RequestAuthentication{JwtRules: []*security.JWTRule{nil, {FromHeaders: []*security.JWTHeader{nil}, OutputClaimToHeaders: []*security.ClaimToHeader{nil}}}},
		&security.AuthorizationPolicy{Rules: []*security.Rule{nil, {From: []*security.Rule_From{nil}, To: []*security.Rule_To{nil}, When: []*security.Condition{nil}}}},
	}
	for _, s := range specs {
		c := &model.Config{Meta: meta}
		switch v := s.(type) {
		case *networking.VirtualService:
			c.Spec, c.Kind = v, model.KindVirtualService
		case *networking.DestinationRule:
			c.Spec, c.Kind = v, model.KindDestinationRule
		case *networking.Gateway:
			c.Spec, c.Kind = v, model.KindGateway
		case *networking.ServiceEntry:
			c.Spec, c.Kind = v, model.KindServiceEntry
		case *networking.Sidecar:
			c.Spec, c.Kind = v, model.KindSidecar
		case *security.PeerAuthentication:
			c.Spec, c.Kind = v, model.KindPeerAuthentication
		case *security.RequestAuthentication:
			c.Spec, c.Kind = v, model.KindRequestAuthentication
		case *security.AuthorizationPolicy:
			c.Spec, c.Kind = v, model.KindAuthorizationPolicy
		}
		if ds := Object(c); !ds.HasErrors() {
			t.Errorf("%T with nil elements: want errors, got %v", s, ds)
		}
		Set([]*model.Config{c})
	}
}

// FuzzDecodeValidate feeds arbitrary input through decoding, per-object
// and cross-object validation; none of it may panic, and decoded objects
// returned by Decode never carry errors.
func FuzzDecodeValidate(f *testing.F) {
	for _, dir := range []string{"valid", "invalid"} {
		for _, in := range readCorpus(f, dir) {
			f.Add(in.Data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var all []*model.Config
		for _, doc := range manifest.DecodeDocuments("fuzz.yaml", data, "fuzz") {
			for _, d := range doc.Diagnostics {
				if d.Message == "" {
					t.Fatalf("empty diagnostic message: %#v", d)
				}
			}
			if doc.Config != nil {
				all = append(all, doc.Config)
				Object(doc.Config) // even partially decoded specs
			}
		}
		Set(all)
		rep := Check([]Input{{Name: "fuzz.yaml", Data: data}})
		var buf bytes.Buffer
		rep.Write(&buf)
	})
}

// BenchmarkCheckBookinfo measures decoding and validating the valid corpus
// (15 files, about 40 objects) as one `weft validate` run.
func BenchmarkCheckBookinfo(b *testing.B) {
	inputs := readCorpus(b, "valid")
	b.ReportAllocs()
	for b.Loop() {
		Check(inputs)
	}
}

// BenchmarkAliasBomb measures the worst case the node budget allows: 500
// routes aliasing one route with 500 aliased matches expand to 250,000
// matches, far beyond the budget, from 4 KB of YAML.
func BenchmarkAliasBomb(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n")
	sb.WriteString("  - &h {route: [{destination: {host: r}}], match: [&m {uri: {prefix: /a}}" + strings.Repeat(", *m", 499) + "]}\n")
	sb.WriteString(strings.Repeat("  - *h\n", 499))
	in := []Input{{Name: "bomb.yaml", Data: []byte(sb.String())}}
	rep := Check(in)
	if rep.Errors() != 1 || !strings.Contains(rep.Diagnostics[0].Message, "too large") {
		b.Fatalf("alias bomb: %v", rep.Diagnostics)
	}
	b.SetBytes(int64(len(in[0].Data)))
	for b.Loop() {
		Check(in)
	}
}
