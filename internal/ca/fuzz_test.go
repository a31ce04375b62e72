package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/url"
	"testing"

	"github.com/weftmesh/weft/internal/ca/spiffe"
)

// FuzzCheckCSR feeds arbitrary bytes as a CSR and arbitrary caller names:
// CheckCSR must never panic, must fail only with ErrInvalidRequest or
// ErrPermissionDenied, and may succeed only for a CSR naming exactly the
// caller.
func FuzzCheckCSR(f *testing.F) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	csr := func(uris ...string) []byte {
		var us []*url.URL
		for _, u := range uris {
			p, _ := url.Parse(u)
			us = append(us, p)
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: us}, key)
		if err != nil {
			f.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}
	f.Add(csr("spiffe://cluster.local/ns/default/sa/reviews"), "default", "reviews")
	f.Add(csr("spiffe://cluster.local/ns/default/sa/ratings"), "default", "reviews")
	f.Add(csr("spiffe://cluster.local/ns/default/sa/reviews/extra"), "default", "reviews")
	f.Add(csr("spiffe://cluster.local/ns/default/sa/reviews", "spiffe://cluster.local/ns/default/sa/x"), "default", "reviews")
	f.Add(csr(), "default", "reviews")
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n"), "a", "b")
	f.Add([]byte("garbage"), "", "")
	f.Fuzz(func(t *testing.T, data []byte, ns, sa string) {
		caller := spiffe.ID{TrustDomain: "cluster.local", Namespace: ns, ServiceAccount: sa}
		got, err := CheckCSR(data, caller)
		if err != nil {
			if !errors.Is(err, ErrInvalidRequest) && !errors.Is(err, ErrPermissionDenied) {
				t.Fatalf("error wraps neither ErrInvalidRequest nor ErrPermissionDenied: %v", err)
			}
			return
		}
		if len(got.URIs) != 1 || got.URIs[0].String() != caller.String() {
			t.Fatalf("accepted CSR with URIs %v for caller %s", got.URIs, caller)
		}
		if err := caller.Validate(); err != nil {
			t.Fatalf("accepted invalid caller %v: %v", caller, err)
		}
		if got.CheckSignature() != nil {
			t.Fatal("accepted CSR with a bad signature")
		}
	})
}
