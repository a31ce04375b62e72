package telemetry

import (
	"testing"

	"github.com/weftmesh/weft/internal/proxy/httpproxy"
	"github.com/weftmesh/weft/internal/proxy/upstream"
)

// TestClientDestinationPrincipal: on the client side (reporter=source)
// destination_principal is the SPIFFE ID of the upstream's certificate
// under mTLS and "unknown" in plain text, as Istio's stats filter reads
// upstream.uri_san_peer_certificate; endpoint metadata never sets it.
func TestClientDestinationPrincipal(t *testing.T) {
	host := &upstream.Host{Addr: "10.1.0.14:9080", Labels: map[string]string{
		"workload": "reviews-v2;default;reviews;v2;Kubernetes", "principal": "spiffe://cluster.local/ns/default/sa/from-metadata",
	}}
	const cluster = "outbound|9080||reviews.default.svc.cluster.local"
	for _, tc := range []struct {
		name, upstream, want string
	}{
		{"mtls", "spiffe://cluster.local/ns/default/sa/bookinfo-reviews", "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"},
		{"plaintext", "", "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(Local{Workload: "productpage-v1", Namespace: "default"})
			m.Observe(&httpproxy.Info{Cluster: cluster, Upstream: host, Status: 200, UpstreamPrincipal: tc.upstream})
			got := labelsOf(t, scrape(m))
			checkLabels(t, got, map[string]string{"reporter": "source", "destination_principal": tc.want, "destination_workload": "reviews-v2"})
		})
	}
}
