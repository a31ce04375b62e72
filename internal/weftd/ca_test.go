package weftd

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/ca/caclient"
	"github.com/weftmesh/weft/internal/ca/spiffe"
)

// TestCitadelIssuesWorkloadCertificates gets a bootstrap token from the
// admin API, then a certificate over the TLS certificate API, as a proxy
// does, and checks the identity it carries.
func TestCitadelIssuesWorkloadCertificates(t *testing.T) {
	s, admin := startServer(t)

	resp, err := http.Get("http://" + admin + "/api/v1/ca/root")
	if err != nil {
		t.Fatal(err)
	}
	root, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(root), "BEGIN CERTIFICATE") {
		t.Fatalf("/api/v1/ca/root = %q", root)
	}

	resp, err = http.Post("http://"+admin+"/api/v1/tokens?namespace=default&serviceAccount=bookinfo-reviews", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ Identity, Token string }
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if tok.Identity != "spiffe://cluster.local/ns/default/sa/bookinfo-reviews" || tok.Token == "" {
		t.Fatalf("token answer = %+v", tok)
	}

	ctx := context.Background()
	client, err := caclient.New(ctx, caclient.Options{Address: s.SecureAddr(), ServerName: "localhost", RootPEM: root, Token: tok.Token})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	key, _ := caclient.GenerateKey(caclient.ECDSAP256)
	id := spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "bookinfo-reviews"}
	csr, err := caclient.NewCSR(key, id)
	if err != nil {
		t.Fatal(err)
	}
	got, err := client.Sign(ctx, csr, 0)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if uris := got.Chain[0].URIs; len(uris) != 1 || uris[0].String() != id.String() {
		t.Errorf("certificate URIs = %v, want %s", uris, id)
	}

	// The token is bound to its identity: asking for another is refused.
	other, _ := caclient.NewCSR(key, spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "bookinfo-ratings"})
	if _, err := client.Sign(ctx, other, 0); err == nil || !strings.Contains(err.Error(), "PermissionDenied") {
		t.Errorf("CSR for another identity: err = %v, want PermissionDenied", err)
	}

	// Bad token requests name the field.
	resp, err = http.Post("http://"+admin+"/api/v1/tokens?namespace=default", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("token without serviceAccount: status %d, want 400", resp.StatusCode)
	}
}
