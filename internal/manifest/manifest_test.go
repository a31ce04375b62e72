package manifest

import (
	"strings"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/weftmesh/weft/internal/model"
)

const twoDocs = `# leading comment
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
---

apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: prod
spec:
  hosts: [reviews]
  http:
  - timeout: 1.5s
    retries:
      attempts: 3
      per_try_timeout: 30ms
    mirrorPercentage: {value: 50}
    route:
    - destination: {host: reviews, subset: v1, port: {number: 9080}}
      weight: 100
`

func TestDecodeTwoDocuments(t *testing.T) {
	cs, diags := Decode("f.yaml", []byte(twoDocs), "file")
	if len(diags) != 0 {
		t.Fatalf("unexpected diagnostics: %v", diags)
	}
	if len(cs) != 2 {
		t.Fatalf("got %d objects, want 2", len(cs))
	}
	dr, vs := cs[0], cs[1]
	if dr.Origin.Line != 2 || vs.Origin.Line != 13 {
		t.Errorf("origin lines = %d, %d; want 2, 13 (first key of each document)", dr.Origin.Line, vs.Origin.Line)
	}
	if dr.Namespace != DefaultNamespace || vs.Namespace != "prod" || vs.Source != "file" {
		t.Errorf("namespaces/source = %q %q %q", dr.Namespace, vs.Namespace, vs.Source)
	}
	spec := vs.Spec.(*networking.VirtualService)
	h := spec.Http[0]
	if got := h.Timeout.AsDuration(); got != 1500*time.Millisecond {
		t.Errorf("timeout = %v", got)
	}
	if got := h.Retries.PerTryTimeout.AsDuration(); got != 30*time.Millisecond {
		t.Errorf("perTryTimeout (snake_case input) = %v", got)
	}
	if h.MirrorPercentage.GetValue() != 50 || h.Route[0].Destination.Port.Number != 9080 {
		t.Errorf("decoded route = %v", h)
	}
	if dr.Revision == "" || dr.Revision == vs.Revision {
		t.Errorf("revisions %q %q", dr.Revision, vs.Revision)
	}
}

func TestRevisionIgnoresFormatting(t *testing.T) {
	a := "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r, labels: {a: b, c: d}}\nspec: {host: r, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}\n"
	b := "# comment\nkind: DestinationRule\napiVersion: networking.istio.io/v1\nmetadata:\n  labels:\n    c: d\n    a: b\n  name: r\nspec:\n  traffic_policy:\n    tls:\n      mode: ISTIO_MUTUAL\n  host: r\n"
	c := strings.Replace(a, "ISTIO_MUTUAL", "SIMPLE", 1)
	ra, rb, rc := rev(t, a), rev(t, b), rev(t, c)
	if ra != rb {
		t.Errorf("equivalent inputs have revisions %s and %s", ra, rb)
	}
	if ra == rc {
		t.Errorf("different specs share revision %s", ra)
	}
}

func rev(t *testing.T, s string) string {
	t.Helper()
	cs, diags := Decode("x.yaml", []byte(s), "")
	if len(diags) != 0 || len(cs) != 1 {
		t.Fatalf("decode: %v", diags)
	}
	return cs[0].Revision
}

func TestDecodeAcceptsIstioForms(t *testing.T) {
	in := `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: p}
spec:
  selector: {matchLabels: {app: x}}
  mtls: {mode: STRICT}
  portLevelMtls:
    8080: {mode: DISABLE}
    "9090": {mode: PERMISSIVE}
`
	cs, diags := Decode("p.yaml", []byte(in), "")
	if len(diags) != 0 {
		t.Fatalf("diagnostics: %v", diags)
	}
	pa := cs[0].Spec.(*security.PeerAuthentication)
	if pa.PortLevelMtls[8080].Mode != security.PeerAuthentication_MutualTLS_DISABLE || pa.PortLevelMtls[9090] == nil {
		t.Errorf("portLevelMtls = %v", pa.PortLevelMtls)
	}

	se := `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: s}
spec:
  hosts: [a.example.com]
  ports: [{number: 443, name: https, protocol: TLS}]
  resolution: DNS
`
	if _, diags := Decode("s.yaml", []byte(se), ""); len(diags) != 0 {
		t.Errorf("diagnostics: %v", diags)
	}
}

func TestDecodeErrors(t *testing.T) {
	head := "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n"
	tests := []struct {
		name, in, field, msg string
		line                 int
	}{
		{"unknown field", head + "  hosts: [r]\n  http:\n  - route:\n    - destination: {host: r}\n      wieght: 3\n", "spec.http[0].route[0].wieght", `did you mean "weight"`, 9},
		{"string for number", head + "  hosts: [r]\n  http:\n  - route:\n    - destination: {host: r, port: {number: \"80\"}}\n", "spec.http[0].route[0].destination.port.number", "expected non-negative integer", 8},
		{"list for map", head + "  hosts: [r]\n  http:\n  - match:\n    - headers: [a, b]\n", "spec.http[0].match[0].headers", "expected a mapping", 8},
		{"bad duration", head + "  hosts: [r]\n  http:\n  - timeout: 3x\n", "spec.http[0].timeout", `invalid duration "3x"`, 7},
		{"number for duration", head + "  hosts: [r]\n  http:\n  - timeout: 3\n", "spec.http[0].timeout", "expected a duration", 7},
		{"two oneof fields", head + "  hosts: [r]\n  http:\n  - match:\n    - uri: {exact: /a, prefix: /b}\n", "spec.http[0].match[0].uri.prefix", "only one of exact, prefix, regex", 8},
		{"number for string", head + "  hosts: [r]\n  http:\n  - name: 5\n", "spec.http[0].name", "quote it", 7},
		{"negative uint", head + "  hosts: [r]\n  http:\n  - route:\n    - destination: {host: r, port: {number: -1}}\n", "spec.http[0].route[0].destination.port.number", "non-negative", 8},
		{"duplicate field", head + "  hosts: [r]\n  hosts: [s]\n", "spec.hosts", "duplicate field", 6},
		{"missing name", "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {namespace: x}\nspec: {}\n", "metadata.name", "required", 3},
		{"bad name", "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: My_GW}\nspec: {}\n", "metadata.name", "DNS-1123 subdomain", 3},
		{"bad namespace", "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g, namespace: a.b}\nspec: {}\n", "metadata.namespace", "DNS-1123 label", 3},
		{"unknown metadata", "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: g\n  lables: {a: b}\nspec: {}\n", "metadata.lables", "unknown field", 5},
		{"bad label value", "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: g\n  labels: {app: \"a b\"}\nspec: {}\n", "metadata.labels[app]", "invalid label value", 5},
		{"unknown kind", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {}\n", "kind", `apiVersion "v1" kind "Service"`, 2},
		{"wrong group", "apiVersion: security.istio.io/v1\nkind: Gateway\nmetadata: {name: s}\nspec: {}\n", "apiVersion", "does not exist", 1},
		{"unknown top-level", "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: s}\nspek: {}\n", "spek", "unknown field", 4},
		{"bad enum", "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: s}\nspec:\n  mtls: {mode: STRIKT}\n", "spec.mtls.mode", `unknown value "STRIKT" (want one of UNSET, DISABLE, PERMISSIVE, STRICT)`, 5},
		{"int32 range", head + "  hosts: [r]\n  http:\n  - route:\n    - destination: {host: r}\n      weight: 99999999999\n", "spec.http[0].route[0].weight", "out of range", 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, diags := Decode("e.yaml", []byte(tt.in), "")
			if len(cs) != 0 {
				t.Errorf("objects with errors must not be returned")
			}
			if len(diags) == 0 {
				t.Fatalf("no diagnostics")
			}
			d := diags[0]
			if d.Field != tt.field || !strings.Contains(d.Message, tt.msg) || d.Origin.Line != tt.line || d.Severity != model.SeverityError {
				t.Errorf("got %s (field %q line %d); want field %q, line %d, message containing %q", d, d.Field, d.Origin.Line, tt.field, tt.line, tt.msg)
			}
		})
	}
}

func TestYAMLSyntaxError(t *testing.T) {
	_, diags := Decode("bad.yaml", []byte("apiVersion: v1\nkind: [a\nmetadata: x\n"), "")
	if len(diags) != 1 || diags[0].Origin.File != "bad.yaml" || diags[0].Origin.Line == 0 || !strings.Contains(diags[0].Message, "invalid YAML") {
		t.Fatalf("got %v", diags)
	}
}

func TestAliasBombIsBounded(t *testing.T) {
	in := "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: &a [x, x, x, x, x, x, x, x, x, x]\n" +
		"  exportTo: *a\n"
	if _, diags := Decode("a.yaml", []byte(in), ""); len(diags) != 0 {
		t.Fatalf("aliases should work: %v", diags)
	}
	var b strings.Builder
	b.WriteString("apiVersion: networking.istio.io/v1\nkind: EnvoyFilterX\nx0: &x0 [a, a, a, a, a, a, a, a, a]\n")
	for i := 1; i < 10; i++ {
		b.WriteString("x" + string(rune('0'+i)) + ": &x" + string(rune('0'+i)) + " [*x" + string(rune('0'+i-1)) + ", *x" + string(rune('0'+i-1)) + ", *x" + string(rune('0'+i-1)) + ", *x" + string(rune('0'+i-1)) + ", *x" + string(rune('0'+i-1)) + ", *x" + string(rune('0'+i-1)) + ", *x" + string(rune('0'+i-1)) + ", *x" + string(rune('0'+i-1)) + ", *x" + string(rune('0'+i-1)) + "]\n")
	}
	_, diags := Decode("bomb.yaml", []byte(b.String()), "")
	if len(diags) == 0 {
		t.Fatalf("expected diagnostics for bomb document")
	}
}

func TestKindList(t *testing.T) {
	in := `apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1
  kind: Gateway
  metadata: {name: a}
  spec: {servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]}
- apiVersion: networking.istio.io/v1
  kind: Gateway
  metadata: {name: b}
  spec: {}
`
	cs, diags := Decode("l.yaml", []byte(in), "")
	if len(diags) != 0 || len(cs) != 2 || cs[1].Origin.Line != 8 {
		t.Fatalf("got %d objects, %v", len(cs), diags)
	}
}

func TestLinesFallBackToParent(t *testing.T) {
	docs := DecodeDocuments("f.yaml", []byte(twoDocs), "")
	l := docs[1].Lines
	if got := l.Line("spec.http[0].route[0].destination.subset"); got != 27 {
		t.Errorf("subset line = %d, want 27", got)
	}
	if got := l.Line("spec.http[0].corsPolicy.maxAge"); got != 21 {
		t.Errorf("fallback line = %d, want 21 (the http[0] element)", got)
	}
	if parentPath(`a.headers["x.y"]`) != "a.headers" || parentPath(`a.b["x.y"].c`) != `a.b["x.y"]` {
		t.Errorf("parentPath mishandles quoted keys")
	}
}

func TestDecodeWrappersAndInt64(t *testing.T) {
	in := `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: d}
spec:
  host: d
  trafficPolicy:
    loadBalancer:
      consistentHash:
        useSourceIp: true
        maglev: {tableSize: "65537"}
    outlierDetection:
      consecutiveGatewayErrors: 5
      splitExternalLocalOriginErrors: true
    tls:
      mode: SIMPLE
      insecureSkipVerify: true
`
	cs, diags := Decode("w.yaml", []byte(in), "")
	if len(diags) != 0 {
		t.Fatalf("diagnostics: %v", diags)
	}
	tp := cs[0].Spec.(*networking.DestinationRule).TrafficPolicy
	if tp.LoadBalancer.GetConsistentHash().GetMaglev().TableSize != 65537 {
		t.Errorf("int64 from string: %v", tp.LoadBalancer)
	}
	if tp.OutlierDetection.ConsecutiveGatewayErrors.GetValue() != 5 || !tp.Tls.InsecureSkipVerify.GetValue() {
		t.Errorf("wrappers: %v %v", tp.OutlierDetection, tp.Tls)
	}

	bad := strings.Replace(in, "consecutiveGatewayErrors: 5", "consecutiveGatewayErrors: {value: 5}", 1)
	_, diags = Decode("w.yaml", []byte(bad), "")
	if len(diags) != 1 || diags[0].Field != "spec.trafficPolicy.outlierDetection.consecutiveGatewayErrors" || diags[0].Origin.Line != 12 {
		t.Errorf("wrapper given as a mapping: %v", diags)
	}
	// 32-bit integers are not accepted as strings (Kubernetes' schema says integer).
	bad = strings.Replace(in, "consecutiveGatewayErrors: 5", "interval: 5s\n      maxEjectionPercent: \"50\"", 1)
	_, diags = Decode("w.yaml", []byte(bad), "")
	if len(diags) != 1 || diags[0].Field != "spec.trafficPolicy.outlierDetection.maxEjectionPercent" {
		t.Errorf("int32 as string: %v", diags)
	}
}

func TestDecodeScalarKinds(t *testing.T) {
	head := "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n"
	ok := head + "  - directResponse: {status: 200, body: {bytes: aGVsbG8=}}\n" +
		"  - name: 2026-01-02\n    mirrorPercentage: {value: 12.5}\n    match: [{ignoreUriCase: true}]\n    route: [{destination: {host: r}}]\n"
	cs, diags := Decode("s.yaml", []byte(ok), "")
	if len(diags) != 0 {
		t.Fatalf("diagnostics: %v", diags)
	}
	vs := cs[0].Spec.(*networking.VirtualService)
	if string(vs.Http[0].DirectResponse.Body.GetBytes()) != "hello" || vs.Http[1].Name != "2026-01-02" || vs.Http[1].MirrorPercentage.Value != 12.5 {
		t.Errorf("decoded %v", vs.Http)
	}
	tests := []struct{ in, field, msg string }{
		{"  - directResponse: {status: 200, body: {bytes: \"%%%\"}}\n", "spec.http[0].directResponse.body.bytes", "invalid base64"},
		{"  - match: [{ignoreUriCase: yes}]\n", "spec.http[0].match[0].ignoreUriCase", `expected boolean, got string "yes"`},
		{"  - mirrorPercentage: {value: high}\n", "spec.http[0].mirrorPercentage.value", "expected number"},
		{"  - mirrorPercentage: {value: .inf}\n", "spec.http[0].mirrorPercentage.value", "not finite"},
		{"  - match: [{sourceLabels: [a]}]\n", "spec.http[0].match[0].sourceLabels", "expected a mapping, got a list"},
		{"  - match: {uri: {exact: /}}\n", "spec.http[0].match", "expected a list, got a mapping"},
		{"  - route: [{destination: {host: [r]}}]\n", "spec.http[0].route[0].destination.host", "expected string, got a list"},
		{"  - <<: {name: x}\n", "spec.http[0]", "merge keys"},
	}
	for _, tt := range tests {
		_, diags := Decode("s.yaml", []byte(head+tt.in), "")
		if len(diags) != 1 || diags[0].Field != tt.field || !strings.Contains(diags[0].Message, tt.msg) {
			t.Errorf("%q: got %v; want field %s, message containing %q", tt.in, diags, tt.field, tt.msg)
		}
	}
}
