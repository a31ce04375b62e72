package translate

import (
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/model"
)

// TestInboundKeyMatchesInboundPorts checks that a proxy's key, read from
// the snapshot's address index, lists the inbound ports inboundPorts
// computes by walking every service, for proxies with zero, one and
// several IPs, in every translation test case.
func TestInboundKeyMatchesInboundPorts(t *testing.T) {
	ipSets := [][]string{nil, {"10.0.0.99"}}
	for _, name := range []string{"base", "jason-v2", "locality", "sidecar-scope", "features", "local-mode"} {
		snap := loadCase(t, name)
		f := newSnapFacts(snap)
		var all []string
		for _, svc := range snap.Services() {
			for _, ep := range snap.Endpoints(svc.Hostname) {
				all = append(all, ep.Address)
				ipSets = append(ipSets, []string{ep.Address}, []string{"192.0.2.1", ep.Address, ep.Address})
			}
		}
		ipSets = append(ipSets, all)
		for _, ips := range ipSets {
			var b strings.Builder
			for _, p := range inboundPorts(snap.Services(), endpointSource(snap.Endpoints), ips) {
				p.key(&b)
			}
			if got := f.inboundKey(ips); got != b.String() {
				t.Errorf("%s, IPs %v: key %q, inbound ports %q", name, ips, got, b.String())
			}
		}
		if k := keyOf(snap, f, &model.Proxy{IPs: all}); k.inbound != f.inboundKey(all) {
			t.Errorf("%s: keyOf does not use the inbound key", name)
		}
	}
}
