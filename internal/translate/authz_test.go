package translate

import (
	"fmt"
	"strings"
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	httprbac "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netrbac "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/model"
)

// securityOf generates the sidecar configuration of reviews-v1 with the
// given extra YAML and returns the filters of its inbound HTTP chain on
// port 9080 and of its TCP chain on 3306.
func securityOf(t *testing.T, yaml string) (httpFilters []*hcm.HttpFilter, tcpFilters []*listener.Filter, h *hcm.HttpConnectionManager, diags model.Diagnostics) {
	t.Helper()
	base := `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: reviews, namespace: default}
spec:
  workloadSelector: {labels: {app: reviews}}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    captureMode: NONE
    bind: 10.1.0.31
    defaultEndpoint: 127.0.0.1:9080
  - port: {number: 3306, protocol: TCP, name: tcp}
    captureMode: NONE
    bind: 10.1.0.31
    defaultEndpoint: 127.0.0.1:3306
`
	cfgs, ds := manifest.Decode("security.yaml", []byte(base+"---\n"+yaml), "file")
	if len(ds) > 0 {
		t.Fatal(ds)
	}
	snap := model.NewStore().Update(&model.SourceState{Source: "file", Configs: cfgs, Synced: true})
	p := sidecarProxy("reviews", "v1", "10.1.0.31")
	r := Generate(snap, p)
	for _, l := range r.Listeners {
		if err := l.ValidateAll(); err != nil {
			t.Fatalf("listener %s: %v", l.Name, err)
		}
		switch l.Name {
		case "10.1.0.31_9080":
			h = &hcm.HttpConnectionManager{}
			if err := l.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(h); err != nil {
				t.Fatal(err)
			}
			httpFilters = h.HttpFilters
		case "10.1.0.31_3306":
			tcpFilters = l.FilterChains[0].Filters
		}
	}
	if h == nil {
		t.Fatal("no inbound HTTP listener")
	}
	return httpFilters, tcpFilters, h, r.Diagnostics
}

func httpRBAC(t *testing.T, fs []*hcm.HttpFilter) []*rbacv3.RBAC {
	var out []*rbacv3.RBAC
	for _, f := range fs {
		if f.Name == filterRBAC {
			c := &httprbac.RBAC{}
			if err := f.GetTypedConfig().UnmarshalTo(c); err != nil {
				t.Fatal(err)
			}
			out = append(out, c.Rules)
		}
	}
	return out
}

func tcpRBAC(t *testing.T, fs []*listener.Filter) []*rbacv3.RBAC {
	var out []*rbacv3.RBAC
	for _, f := range fs {
		if f.Name == filterNetworkRBAC {
			c := &netrbac.RBAC{}
			if err := f.GetTypedConfig().UnmarshalTo(c); err != nil {
				t.Fatal(err)
			}
			out = append(out, c.Rules)
		}
	}
	return out
}

func compact(t *testing.T, r *rbacv3.RBAC) string {
	b, err := protojson.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), " ", "")
}

func TestNoPolicyNoFilters(t *testing.T) {
	hf, tf, h, _ := securityOf(t, "")
	if len(httpRBAC(t, hf)) != 0 || len(tcpRBAC(t, tf)) != 0 {
		t.Error("RBAC filters without policies")
	}
	if !h.GetNormalizePath().GetValue() || h.MergeSlashes || h.PathWithEscapedSlashesAction != hcm.HttpConnectionManager_KEEP_UNCHANGED {
		t.Errorf("default normalization is not Istio's BASE: normalize %v merge %v slashes %v", h.GetNormalizePath(), h.MergeSlashes, h.PathWithEscapedSlashesAction)
	}
	if hf[len(hf)-1].Name != filterRouter {
		t.Error("router is not last")
	}
}

func TestOrderDenyBeforeAllow(t *testing.T) {
	hf, _, _, _ := securityOf(t, `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: default}
spec:
  rules: [{to: [{operation: {paths: ["/ok"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: default}
spec:
  action: DENY
  rules: [{to: [{operation: {methods: ["DELETE"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit, namespace: istio-system}
spec:
  action: AUDIT
  rules: [{}]
`)
	rs := httpRBAC(t, hf)
	var actions []string
	for _, r := range rs {
		actions = append(actions, r.Action.String())
	}
	if got := strings.Join(actions, ","); got != "LOG,DENY,ALLOW" {
		t.Fatalf("actions %s, want LOG,DENY,ALLOW", got)
	}
	if _, ok := rs[2].Policies["ns[default]-policy[allow]-rule[0]"]; !ok {
		t.Errorf("policy names: %v", rs[2].Policies)
	}
	if got := compact(t, rs[1]); !strings.Contains(got, `"name":":method"`) || !strings.Contains(got, `"exact":"DELETE"`) {
		t.Errorf("deny rule: %s", got)
	}
}

func TestAllowWithoutRulesDeniesAll(t *testing.T) {
	hf, tf, _, _ := securityOf(t, `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: default}
spec: {}
`)
	for _, rs := range [][]*rbacv3.RBAC{httpRBAC(t, hf), tcpRBAC(t, tf)} {
		if len(rs) != 1 || rs[0].Action != rbacv3.RBAC_ALLOW || len(rs[0].Policies) != 0 {
			t.Errorf("want one ALLOW with no policies, got %v", rs)
		}
	}
}

func TestPolicySelection(t *testing.T) {
	hf, _, _, _ := securityOf(t, `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: other-workload, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  action: DENY
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: other-namespace, namespace: foo}
spec:
  action: DENY
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mesh, namespace: istio-system}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/mesh"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: gateway-only, namespace: default}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]
  action: DENY
  rules: [{}]
`)
	rs := httpRBAC(t, hf)
	if len(rs) != 1 || len(rs[0].Policies) != 1 {
		t.Fatalf("want only the root namespace policy, got %v", rs)
	}
	if _, ok := rs[0].Policies["ns[istio-system]-policy[mesh]-rule[0]"]; !ok {
		t.Errorf("policies: %v", rs[0].Policies)
	}
}

// TestTCPSemantics: on a TCP port an ALLOW rule with HTTP-only fields is
// dropped, a DENY rule keeps its TCP fields only (denying more).
func TestTCPSemantics(t *testing.T) {
	hf, tf, _, _ := securityOf(t, `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: default}
spec:
  rules:
  - to: [{operation: {paths: ["/x"]}}]
  - from: [{source: {principals: ["cluster.local/ns/default/sa/productpage"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: default}
spec:
  action: DENY
  rules:
  - from: [{source: {namespaces: ["evil"]}}]
    to: [{operation: {methods: ["GET"], ports: ["3306"]}}]
`)
	tcp := tcpRBAC(t, tf)
	if len(tcp) != 2 {
		t.Fatalf("tcp filters: %v", tcp)
	}
	if _, ok := tcp[1].Policies["ns[default]-policy[allow]-rule[0]"]; ok {
		t.Error("ALLOW rule with paths kept on a TCP port")
	}
	if _, ok := tcp[1].Policies["ns[default]-policy[allow]-rule[1]"]; !ok {
		t.Error("ALLOW rule with principals dropped on a TCP port")
	}
	deny := compact(t, tcp[0])
	if strings.Contains(deny, ":method") || !strings.Contains(deny, `"destinationPort":3306`) || !strings.Contains(deny, `/ns/evil/`) {
		t.Errorf("TCP DENY rule: %s", deny)
	}
	if httpDeny := compact(t, httpRBAC(t, hf)[0]); !strings.Contains(httpDeny, ":method") {
		t.Errorf("HTTP DENY rule lost its method: %s", httpDeny)
	}
}

func TestCustomAndUnsupportedFailClosed(t *testing.T) {
	hf, _, _, diags := securityOf(t, `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: default}
spec:
  action: CUSTOM
  provider: {name: opa}
  rules: [{to: [{operation: {paths: ["/ext/*"]}}]}]
`)
	rs := httpRBAC(t, hf)
	if len(rs) != 1 || rs[0].Action != rbacv3.RBAC_DENY || !strings.Contains(compact(t, rs[0]), `"regex":"/ext(;[^/]*)?/.*"`) {
		t.Errorf("CUSTOM is not enforced as DENY: %v", rs)
	}
	if !strings.Contains(fmt.Sprint(diags), "CUSTOM authorization") {
		t.Errorf("no diagnostic for CUSTOM: %v", diags)
	}
}

func TestConditionsAndSources(t *testing.T) {
	hf, _, _, diags := securityOf(t, `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: default}
spec:
  rules:
  - from:
    - source:
        requestPrincipals: ["https://issuer/*"]
        notNamespaces: ["foo"]
        ipBlocks: ["10.0.0.0/8"]
        remoteIpBlocks: ["192.168.1.1"]
    to: [{operation: {hosts: ["Example.com"], notPaths: ["/admin*"], ports: ["9080"]}}]
    when:
    - {key: "request.auth.claims[org][team]", values: ["blue"]}
    - {key: "request.auth.audiences", values: ["aud1"]}
    - {key: "request.auth.presenter", values: ["client"]}
    - {key: "source.principal", values: ["*/sa/productpage"]}
    - {key: "destination.ip", values: ["10.1.0.31"]}
    - {key: "destination.port", values: ["9080"]}
    - {key: "connection.sni", values: ["*.example.com"]}
    - {key: "remote.ip", notValues: ["1.2.3.4"]}
    - {key: "source.namespace", values: ["default"]}
  - from: [{source: {serviceAccounts: ["bookinfo-reviews"]}}]
`)
	if len(diags) > 0 {
		t.Fatalf("diagnostics: %v", diags)
	}
	got := compact(t, httpRBAC(t, hf)[0])
	for _, want := range []string{
		`"path":[{"key":"request.auth.claims"},{"key":"org"},{"key":"team"}]`,
		`"filter":"istio_authn"`, `"key":"request.auth.principal"`, `"prefix":"https://issuer/"`,
		`"directRemoteIp":{"addressPrefix":"10.0.0.0","prefixLen":8}`, `"remoteIp":{"addressPrefix":"192.168.1.1","prefixLen":32}`,
		`"name":":authority"`, `"ignoreCase":true`, `"notRule"`, `"destinationPort":9080`,
		`"suffix":"/sa/productpage"`, `"requestedServerName":{"suffix":".example.com"}`,
		`"regex":".*/ns/default/.*"`, `"regex":".*/ns/foo/.*"`, `"notId"`,
		`"regex":"spiffe://[^/]+/ns/default/sa/bookinfo-reviews"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s in %s", want, got)
		}
	}
}

func TestRequestAuthentication(t *testing.T) {
	hf, _, _, diags := securityOf(t, `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  jwtRules:
  - issuer: https://a.example
    jwksUri: https://a.example:8443/jwks.json
    audiences: [one]
    fromHeaders: [{name: x-jwt, prefix: "Token "}]
    fromParams: [tok]
    forwardOriginalToken: true
    outputPayloadToHeader: x-payload
    outputClaimToHeaders: [{header: x-sub, claim: sub}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: mesh, namespace: istio-system}
spec:
  jwtRules:
  - issuer: https://b.example
    jwks: '{"keys":[]}'
  - issuer: https://c.example
`)
	if len(hf) == 0 || hf[0].Name != filterJWT {
		t.Fatalf("jwt_authn is not first: %v", hf)
	}
	c := &jwtv3.JwtAuthentication{}
	if err := hf[0].GetTypedConfig().UnmarshalTo(c); err != nil {
		t.Fatal(err)
	}
	a := c.Providers["https://a.example"]
	if a == nil || c.Providers["https://b.example"] == nil || len(c.Providers) != 2 {
		t.Fatalf("providers: %v", c.Providers)
	}
	if a.GetRemoteJwks().GetHttpUri().GetCluster() != "outbound|8443||a.example" || !a.Forward || a.ForwardPayloadHeader != "x-payload" ||
		a.FromHeaders[0].ValuePrefix != "Token " || a.FromParams[0] != "tok" || a.ClaimToHeaders[0].HeaderName != "x-sub" || a.PayloadInMetadata != "https://a.example" {
		t.Errorf("provider a: %v", a)
	}
	anyOf := c.Rules[0].GetRequires().GetRequiresAny().GetRequirements()
	if len(anyOf) != 3 || anyOf[2].GetAllowMissing() == nil {
		t.Errorf("requirement is not any-provider-or-missing: %v", c.Rules[0])
	}
	if !strings.Contains(fmt.Sprint(diags), "jwks or jwksUri is required") {
		t.Errorf("no diagnostic for the rule without keys: %v", diags)
	}
}

func TestPathNormalizationOption(t *testing.T) {
	for opt, want := range map[string][3]string{
		"NONE":                     {"false", "false", "KEEP_UNCHANGED"},
		"MERGE_SLASHES":            {"true", "true", "KEEP_UNCHANGED"},
		"DECODE_AND_MERGE_SLASHES": {"true", "true", "UNESCAPE_AND_FORWARD"},
	} {
		n, m, s := pathNormalization(&model.Proxy{Metadata: map[string]string{MetadataPathNormalization: opt}}, nil)
		got := [3]string{boolString(n), boolString(m), s.String()}
		if got != want {
			t.Errorf("%s: %v, want %v", opt, got, want)
		}
	}
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func TestDenyMatchers(t *testing.T) {
	sm, err := pathMatcher("/admin/*", true)
	if err != nil || sm.GetSafeRegex().GetRegex() != "/admin(;[^/]*)?/.*" {
		t.Errorf("deny prefix: %v %v", sm, err)
	}
	sm, _ = pathMatcher("/admin/*", false)
	if sm.GetPrefix() != "/admin/" {
		t.Errorf("allow prefix: %v", sm)
	}
	sm, _ = pathMatcher("/a/{*}/b/{**}", false)
	if sm.GetSafeRegex().GetRegex() != "/a/[^/]+/b/.+" {
		t.Errorf("template: %v", sm)
	}
	if re := hostMatcher("example.com", true).GetSafeRegex().GetRegex(); re != `(?i)example\.com\.?(:[0-9]*)?` {
		t.Errorf("deny host: %s", re)
	}
}

// TestGatewayAuthorization: a policy in istio-system selecting the
// ingress gateway guards every gateway HTTP listener.
func TestGatewayAuthorization(t *testing.T) {
	snap := loadSnapshot(t, "../../testdata/translate/base/bookinfo.yaml")
	extra, ds := manifest.Decode("gw.yaml", []byte(`
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules: [{from: [{source: {remoteIpBlocks: ["1.2.3.0/24"]}}]}]
`), "file")
	if len(ds) > 0 {
		t.Fatal(ds)
	}
	snap = model.NewStore().Update(&model.SourceState{Source: "file", Configs: append(snap.Configs(), extra...), Synced: true})
	r := Generate(snap, gatewayProxy())
	found := false
	for _, l := range r.Listeners {
		for _, fc := range l.FilterChains {
			for _, f := range fc.Filters {
				if f.Name != filterHCM {
					continue
				}
				h := &hcm.HttpConnectionManager{}
				if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
					t.Fatal(err)
				}
				rs := httpRBAC(t, h.HttpFilters)
				if len(rs) != 1 || rs[0].Action != rbacv3.RBAC_DENY || !strings.Contains(compact(t, rs[0]), `"remoteIp"`) {
					t.Errorf("gateway listener %s: %v", l.Name, rs)
				}
				found = true
			}
		}
	}
	if !found {
		t.Fatal("no gateway HTTP listener")
	}
}

// TestUnsupportedConditionFailsClosed: a condition Weft cannot evaluate
// drops an ALLOW rule (allows nothing) and is left out of a DENY rule
// (denies more), with a diagnostic.
func TestUnsupportedConditionFailsClosed(t *testing.T) {
	hf, _, _, diags := securityOf(t, `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: default}
spec:
  rules:
  - to: [{operation: {paths: ["/a"]}}]
    when: [{key: "experimental.envoy.filters.network.mysql_proxy[db.table]", values: ["[update]"]}]
  - to: [{operation: {paths: ["/b"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: default}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: ["/c"]}}]
    when: [{key: "experimental.envoy.filters.network.mysql_proxy[db.table]", values: ["[update]"]}]
`)
	rs := httpRBAC(t, hf)
	if len(rs) != 2 {
		t.Fatalf("filters: %v", rs)
	}
	if _, ok := rs[1].Policies["ns[default]-policy[allow]-rule[0]"]; ok || len(rs[1].Policies) != 1 {
		t.Errorf("ALLOW rule with an unsupported condition kept: %v", rs[1].Policies)
	}
	deny := compact(t, rs[0])
	if !strings.Contains(deny, `/c`) || strings.Contains(deny, "mysql") {
		t.Errorf("DENY rule: %s", deny)
	}
	if !strings.Contains(fmt.Sprint(diags), "not supported by Weft") {
		t.Errorf("no diagnostic: %v", diags)
	}
}

// TestGatewayTargetRef: a policy with targetRefs to a Gateway applies to
// the gateway proxy carrying that Gateway's name label, in its namespace.
func TestGatewayTargetRef(t *testing.T) {
	ap := `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: gw, namespace: istio-system}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: public}]
  action: DENY
  rules: [{}]
`
	cfgs, ds := manifest.Decode("gw.yaml", []byte(ap), "file")
	if len(ds) > 0 {
		t.Fatal(ds)
	}
	snap := model.NewStore().Update(&model.SourceState{Source: "file", Configs: cfgs, Synced: true})
	gw := gatewayProxy()
	if a := buildAuthz(snap, gw, nil); a.present[actionDeny] {
		t.Error("applied to a gateway without the Gateway name label")
	}
	gw.Labels = map[string]string{"gateway.networking.k8s.io/gateway-name": "public"}
	if a := buildAuthz(snap, gw, nil); !a.present[actionDeny] || len(a.http[actionDeny]) != 1 {
		t.Error("not applied to the named gateway")
	}
	gw.Namespace = "other"
	if a := buildAuthz(snap, gw, nil); a.present[actionDeny] {
		t.Error("applied to a gateway of another namespace")
	}
}

// TestOddInputNeverPanics: null rules, sources and operations, and
// invalid header names give valid Envoy configuration (checked by
// securityOf's ValidateAll) and never a panic.
func TestOddInputNeverPanics(t *testing.T) {
	hf, _, _, diags := securityOf(t, `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: odd, namespace: default}
spec:
  rules:
  - null
  - from: [{}, {source: null}]
    to: [{}, {operation: null}]
    when: [null, {key: "request.headers[bad header]", values: ["x"]}]
  - to: [{operation: {paths: ["**", "*/x"], hosts: ["*"], methods: ["*"]}}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: odd, namespace: default}
spec:
  jwtRules:
  - null
  - issuer: https://i
    jwks: '{"keys":[]}'
    fromHeaders: [null, {name: "bad header"}, {name: x-ok}]
    outputClaimToHeaders: [null, {header: "", claim: sub}]
`)
	if len(httpRBAC(t, hf)) != 1 {
		t.Errorf("filters: %v", hf)
	}
	if !strings.Contains(fmt.Sprint(diags), "not a valid header name") {
		t.Errorf("diagnostics: %v", diags)
	}
}
