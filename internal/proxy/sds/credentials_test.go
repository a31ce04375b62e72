package sds_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/sds"
)

// writeSelfSigned writes a self-signed tls.crt/tls.key/ca.crt for cn into
// dir/name, with file times that differ per serial.
func writeSelfSigned(t *testing.T, dir, name, cn string, serial int64) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	d := filepath.Join(dir, name)
	os.MkdirAll(d, 0o700)
	crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	os.WriteFile(filepath.Join(d, "tls.crt"), crt, 0o600)
	os.WriteFile(filepath.Join(d, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	os.WriteFile(filepath.Join(d, "ca.crt"), crt, 0o600)
	// Distinct modification times for the rewrite below.
	when := time.Now().Add(time.Duration(serial) * time.Second)
	for _, f := range []string{"tls.crt", "tls.key", "ca.crt"} {
		os.Chtimes(filepath.Join(d, f), when, when)
	}
}

func TestCredentialDirectory(t *testing.T) {
	dir := t.TempDir()
	writeSelfSigned(t, dir, "gw-cred", "a.example.com", 1)
	s := sds.NewStore(nil, dir)
	if s.HasIdentity() {
		t.Error("a store with only credentials claims a workload identity")
	}
	c, err := s.Certificate("gw-cred")
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(c.Certificate[0])
	if leaf.Subject.CommonName != "a.example.com" {
		t.Fatalf("served %s", leaf.Subject.CommonName)
	}
	if _, err := s.Roots("gw-cred-cacert"); err != nil {
		t.Errorf("NAME-cacert falls back to NAME/ca.crt: %v", err)
	}
	if _, err := s.Certificate("default"); err != sds.ErrNoIdentity {
		t.Errorf("default without identity: %v", err)
	}
	for _, bad := range []string{"../gw-cred", "a/b", "..", ""} {
		if _, err := s.Certificate(bad); err == nil || !strings.Contains(err.Error(), "invalid credential name") {
			t.Errorf("Certificate(%q): %v, want invalid name", bad, err)
		}
	}
	if _, err := s.Certificate("missing"); err == nil || !strings.Contains(err.Error(), `credential "missing"`) {
		t.Errorf("missing credential: %v", err)
	}

	// A renewed certificate on disk reaches later handshakes.
	writeSelfSigned(t, dir, "gw-cred", "b.example.com", 2)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c, err := s.Certificate("gw-cred")
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(c.Certificate[0])
		if leaf.Subject.CommonName == "b.example.com" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the rewritten credential was not picked up")
}
