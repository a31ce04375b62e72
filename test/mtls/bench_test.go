package mtls

import (
	"testing"
	"time"
)

// BenchmarkMeshRequest measures one request from the client application
// through both sidecars to the backend and back: over a pooled mesh mTLS
// connection, and with a new mTLS connection (full handshake with both
// workload certificates verified) per request.
func BenchmarkMeshRequest(b *testing.B) {
	for _, c := range []struct{ name, yaml string }{
		{"mTLS-keepalive", ""},
		{"mTLS-handshake-per-request", `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy:
    connectionPool:
      http: {maxRequestsPerConnection: 1}
`},
		{"plaintext-keepalive", `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy:
    tls: {mode: DISABLE}
`},
	} {
		b.Run(c.name, func(b *testing.B) {
			m := startMesh(b, time.Hour, c.yaml)
			m.eventually("the traffic policy applies", func() error { _, err := m.get("/"); return err })
			for b.Loop() {
				if _, err := m.get("/"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
