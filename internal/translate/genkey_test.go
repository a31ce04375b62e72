package translate

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/weftmesh/weft/internal/model"
)

// keyTestProxies are proxies that differ in every field the generator
// might read: bookinfo sidecars at their endpoints' IPs, replicas at IPs
// no endpoint has, other labels, ids and service accounts, metadata, a
// gateway and a proxyless client.
func keyTestProxies() []*model.Proxy {
	ps := []*model.Proxy{
		sidecarProxy("productpage", "v1", "10.1.0.11"),
		sidecarProxy("productpage", "v1", "10.9.0.11"),
		sidecarProxy("reviews", "v2", "10.1.0.14"),
		sidecarProxy("reviews", "v2", "10.9.0.14"),
		sidecarProxy("ratings", "v1", "10.1.0.16"),
		sidecarProxy("load", "v9", "10.9.9.9"),
		sidecarProxy("load", "v8", "10.9.9.8"),
		{ID: "sidecar~10.9.9.7~x.other~other.svc.cluster.local", Type: model.ProxySidecar, Namespace: "other", IPs: []string{"10.9.9.7"}},
		{ID: "sidecar~10.9.9.6~y.other~other.svc.cluster.local", Type: model.ProxySidecar, Namespace: "other", Labels: map[string]string{"app": "y"}, IPs: []string{"10.9.9.6"}},
		localitySidecar(),
		grpcProxy(),
		gatewayProxy(),
		{ID: "router~10.1.0.101~gw2.istio-system", Type: model.ProxyRouter, Namespace: "istio-system", Labels: map[string]string{"istio": "ingressgateway"}, IPs: []string{"10.1.0.101"}},
		{Type: model.ProxyRouter, Namespace: "istio-system", Labels: map[string]string{"istio": "egressgateway"}, IPs: []string{"10.1.0.200"}},
	}
	// Same labels, namespace and IP as another, but another id, workload
	// and identity: if the generator starts reading one of these, the key
	// must include it and this proxy catches it.
	other := sidecarProxy("load", "v9", "10.9.9.9")
	other.ID, other.Workload, other.ServiceAccount = "sidecar~10.9.9.9~other.default~default.svc.cluster.local", "other", "other-sa"
	other.Metadata = map[string]string{"UNREAD": "x"}
	ps = append(ps, other)
	none := sidecarProxy("productpage", "v1", "10.1.0.11")
	none.Metadata = map[string]string{MetadataInterceptionMode: "NONE"}
	norm := sidecarProxy("productpage", "v1", "10.9.0.12")
	norm.Metadata = map[string]string{MetadataPathNormalization: "MERGE_SLASHES"}
	return append(ps, none, norm)
}

// TestKeyedGenerateEqualsGenerate checks, over the whole corpus, that the
// cache's shared output for every proxy equals what Generate computes for
// that proxy alone, whatever proxy first filled the shared entry.
func TestKeyedGenerateEqualsGenerate(t *testing.T) {
	dirs, err := os.ReadDir(testdataDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		t.Run(d.Name(), func(t *testing.T) {
			snap := loadCase(t, d.Name())
			proxies := keyTestProxies()
			for _, order := range [][]*model.Proxy{proxies, reversed(proxies)} {
				c := NewCache()
				for _, p := range order {
					want := Generate(snap, p)
					got := c.Generate(snap, p)
					if !bytes.Equal(marshalResources(t, got), marshalResources(t, want)) {
						t.Errorf("proxy %q: keyed output differs from Generate's", p.ID)
					}
					if fmt.Sprint(got.Diagnostics) != fmt.Sprint(want.Diagnostics) {
						t.Errorf("proxy %q: keyed diagnostics %v, want %v", p.ID, got.Diagnostics, want.Diagnostics)
					}
				}
			}
		})
	}
}

func reversed(ps []*model.Proxy) []*model.Proxy {
	out := make([]*model.Proxy, len(ps))
	for i, p := range ps {
		out[len(ps)-1-i] = p
	}
	return out
}

// TestKeyedGenerateShares checks that proxies the generator cannot tell
// apart get one shared configuration, and that selectors split them.
func TestKeyedGenerateShares(t *testing.T) {
	a, b := sidecarProxy("load", "v9", "10.9.9.9"), sidecarProxy("other", "v8", "10.9.9.8")
	base := loadCase(t, "base")
	c := NewCache()
	if c.Generate(base, a) != c.Generate(base, b) {
		t.Error("base: two sidecars of one namespace without inbound ports or selectors do not share their configuration")
	}
	if c.Generate(base, sidecarProxy("reviews", "v2", "10.1.0.14")) == c.Generate(base, a) {
		t.Error("base: a sidecar with inbound ports shares the configuration of one without")
	}
	authz := loadCase(t, "authorization")
	if c.Generate(authz, a) == c.Generate(authz, b) {
		t.Error("authorization: sidecars with different labels share a configuration although policies select by label")
	}
	// A newer snapshot replaces the entries; the old one is still answered.
	if c.Generate(base, a) == nil {
		t.Error("older snapshot: no configuration")
	}
}
