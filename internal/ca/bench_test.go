package ca_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/ca"
	"github.com/weftmesh/weft/internal/ca/caclient"
)

// BenchmarkSignCSR measures CSR parsing, checks and signing with a P-256
// CA.
func BenchmarkSignCSR(b *testing.B) {
	for _, kt := range []ca.KeyType{ca.ECDSAP256, ca.RSA2048} {
		b.Run(kt.String(), func(b *testing.B) {
			c, err := ca.New(ca.Options{Dir: filepath.Join(b.TempDir(), "ca"), KeyType: kt})
			if err != nil {
				b.Fatal(err)
			}
			key, _ := caclient.GenerateKey(caclient.ECDSAP256)
			csr, _ := caclient.NewCSR(key, reviews)
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.SignCSR(csr, reviews, time.Hour); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCreateCertificate measures a full workload issuance over TLS
// on loopback: key generation, CSR, RPC with token lookup, signing,
// response verification.
func BenchmarkCreateCertificate(b *testing.B) {
	e := startCA(b)
	token, err := e.tokens.Issue(reviews)
	if err != nil {
		b.Fatal(err)
	}
	cl, err := caclient.New(context.Background(), caclient.Options{Address: e.addr, RootPEM: e.ca.RootsPEM(), Token: token})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	b.ResetTimer()
	for b.Loop() {
		key, _ := caclient.GenerateKey(caclient.ECDSAP256)
		csr, _ := caclient.NewCSR(key, reviews)
		if _, err := cl.Sign(context.Background(), csr, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}
