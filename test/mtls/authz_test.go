package mtls

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAuthorizationByPeerIdentity: an AuthorizationPolicy on the server
// workload allowing only productpage's principal admits the mesh client
// (its identity comes from the mTLS handshake) and refuses a plain-text
// client (no identity), and refuses the mesh client too once the policy
// names another principal.
func TestAuthorizationByPeerIdentity(t *testing.T) {
	// The mesh client's sidecar keeps its connection to the server
	// sidecar: the policy change must apply to it.
	m := startMesh(t, time.Hour, "")
	policy := func(principal string) string {
		return fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-viewer, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules:
  - from:
    - source: {principals: [%q]}
`, principal)
	}
	m.apply(policy("cluster.local/ns/default/sa/productpage"))
	m.eventually("plain text (no identity) is denied", func() error {
		code, _, err := m.plainGet()
		if err != nil {
			return err
		}
		if code != http.StatusForbidden {
			return fmt.Errorf("plain-text request answered %d, want 403", code)
		}
		return nil
	})
	if body, err := m.get("/"); err != nil || xfccURI(body) != clientID {
		t.Fatalf("mesh request from the allowed principal: %q, %v", body, err)
	}
	m.apply(policy("cluster.local/ns/default/sa/ratings"))
	m.eventually("the mesh client is denied once it is not the allowed principal", func() error {
		_, err := m.get("/")
		if err == nil {
			return fmt.Errorf("request allowed")
		}
		if !strings.Contains(err.Error(), "status 403") {
			return fmt.Errorf("want 403, got %v", err)
		}
		return nil
	})
}
