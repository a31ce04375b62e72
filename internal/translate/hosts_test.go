package translate

import (
	"slices"
	"testing"

	"github.com/weftmesh/weft/internal/model"
)

func TestResolveHost(t *testing.T) {
	for _, tc := range []struct{ host, ns, want string }{
		{"reviews", "default", "reviews.default.svc.cluster.local"},
		{"reviews.other.svc.cluster.local", "default", "reviews.other.svc.cluster.local"},
		{"api.example.com", "default", "api.example.com"},
		{"*.example.com", "default", "*.example.com"},
		{"*", "default", "*"},
	} {
		if got := resolveHost(tc.host, tc.ns); got != tc.want {
			t.Errorf("resolveHost(%q, %q) = %q, want %q", tc.host, tc.ns, got, tc.want)
		}
	}
}

func TestHostMatches(t *testing.T) {
	for _, tc := range []struct {
		pattern, host string
		want          bool
	}{
		{"*", "anything", true},
		{"*.example.com", "a.example.com", true},
		{"*.example.com", "a.b.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "*.a.example.com", true},
		{"*.a.example.com", "*.example.com", false},
		{"reviews.default.svc.cluster.local", "reviews.default.svc.cluster.local", true},
		{"reviews.default.svc.cluster.local", "ratings.default.svc.cluster.local", false},
	} {
		if got := hostMatches(tc.pattern, tc.host); got != tc.want {
			t.Errorf("hostMatches(%q, %q) = %v", tc.pattern, tc.host, got)
		}
	}
}

func TestNormalizeGateways(t *testing.T) {
	got := normalizeGateways([]string{"mesh", "gw", "other/gw2", "gw3.ns3.svc.cluster.local"}, "default")
	want := []string{"mesh", "default/gw", "other/gw2", "ns3/gw3"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := normalizeGateways(nil, "default"); !slices.Equal(got, []string{"mesh"}) {
		t.Errorf("empty list: %v", got)
	}
}

func TestServiceDomains(t *testing.T) {
	svc := &model.Service{Hostname: "reviews.default.svc.cluster.local", Addresses: []string{"10.0.0.12", "10.1.0.0/16", "fd00::12"}}
	same := serviceDomains(svc, "default")
	want := []string{"reviews.default.svc.cluster.local", "reviews", "reviews.default", "reviews.default.svc", "10.0.0.12", "[fd00::12]"}
	if !slices.Equal(same, want) {
		t.Errorf("same namespace: %v", same)
	}
	if other := serviceDomains(svc, "other"); slices.Contains(other, "reviews") {
		t.Errorf("short name offered to another namespace: %v", other)
	}
	ext := serviceDomains(&model.Service{Hostname: "api.example.com"}, "default")
	if !slices.Equal(ext, []string{"api.example.com"}) {
		t.Errorf("external: %v", ext)
	}
}

func TestScopeAdmits(t *testing.T) {
	sc := &scope{egress: []string{"./*", "istio-system/*", "*/api.example.com", "~/*"}}
	for _, tc := range []struct {
		ns, host string
		want     bool
	}{
		{"default", "reviews.default.svc.cluster.local", true},
		{"other", "x.other.svc.cluster.local", false},
		{"istio-system", "istiod.istio-system.svc.cluster.local", true},
		{"other", "api.example.com", true},
	} {
		if got := sc.admits("default", tc.ns, tc.host); got != tc.want {
			t.Errorf("admits(%s, %s) = %v", tc.ns, tc.host, got)
		}
	}
	if !(&scope{}).admits("default", "any", "any.host") {
		t.Error("no Sidecar must admit everything")
	}
}

func TestEffectivePolicyMerge(t *testing.T) {
	snap := loadSnapshot(t, writeTemp(t, circuitBreakerDR))
	dr := newRuleIndex(snap, sidecarProxy("productpage", "v1", "10.1.0.11")).lookup("httpbin.default.svc.cluster.local", "default")
	if dr == nil {
		t.Fatal("DestinationRule not found by resolved host")
	}
	top := effectivePolicy(dr, 9999, "")
	if top.lb.GetSimple().String() != "ROUND_ROBIN" || top.pool == nil || top.tls != nil {
		t.Errorf("top level: %+v", top)
	}
	if p := effectivePolicy(dr, 8000, ""); p.lb.GetSimple().String() != "RANDOM" {
		t.Errorf("port level: %v", p.lb)
	}
	v2 := effectivePolicy(dr, 8000, "v2")
	if v2.lb.GetConsistentHash() == nil || v2.tls == nil || v2.pool == nil || v2.outlier == nil {
		t.Errorf("subset level keeps top-level pool and outlier, overrides lb and tls: %+v", v2)
	}
}
