package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/ca/spiffe"
)

var testNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return testNow }

func mustKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// makeCert signs a certificate for pub with parent/parentKey (self-signed
// when parent is nil).
func makeCert(t testing.TB, name string, isCA bool, pub crypto.PublicKey, parent *x509.Certificate, parentKey crypto.Signer, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// external is an operator's PKI: an external root and an intermediate it
// signed, to plug into Weft.
type external struct {
	root     *x509.Certificate
	rootKey  crypto.Signer
	inter    *x509.Certificate
	interKey crypto.Signer
}

func newExternal(t testing.TB) external {
	var e external
	e.rootKey = mustKey(t)
	e.root = makeCert(t, "External Root", true, e.rootKey.Public(), nil, e.rootKey, testNow.Add(-time.Hour), testNow.Add(10*365*24*time.Hour))
	e.interKey = mustKey(t)
	e.inter = makeCert(t, "Weft Intermediate", true, e.interKey.Public(), e.root, e.rootKey, testNow.Add(-time.Hour), testNow.Add(365*24*time.Hour))
	return e
}

// writeCacerts writes Istio's cacerts layout for e into a new directory.
func (e external) writeCacerts(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	f := &Files{Cert: e.inter, Key: e.interKey, Chain: []*x509.Certificate{e.inter, e.root}, Roots: []*x509.Certificate{e.root}}
	if err := f.Write(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writePEM(t testing.TB, path string, certs ...*x509.Certificate) {
	t.Helper()
	if err := os.WriteFile(path, encodeCerts(certs), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSelfSignedRootGeneratedPersistedReloaded(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	c1, err := New(Options{Dir: dir, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	root := c1.Certificate()
	if !root.IsCA || !isSelfSigned(root) {
		t.Fatalf("generated root: IsCA=%v self-signed=%v", root.IsCA, isSelfSigned(root))
	}
	if _, ok := root.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Fatalf("default root key is %T, want ECDSA", root.PublicKey)
	}
	if got := root.NotAfter.Sub(testNow); got != DefaultRootTTL {
		t.Errorf("root lifetime from now = %v, want %v", got, DefaultRootTTL)
	}
	for _, name := range []string{CACertFile, CAKeyFile, CertChainFile, RootCertFile} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if name == CAKeyFile && st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, st.Mode().Perm())
		}
	}
	rootFile, err := LoadFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !rootFile.Roots[0].Equal(root) || !rootFile.Cert.Equal(root) {
		t.Error("root-cert.pem / ca-cert.pem do not hold the generated root")
	}

	c2, err := New(Options{Dir: dir, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if !c2.Certificate().Equal(root) {
		t.Fatal("second start generated a new root instead of reusing the persisted one")
	}
	// A certificate from the reloaded CA verifies with the first one's roots.
	key := mustKey(t)
	id := spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "bookinfo-productpage"}
	issued, err := c2.SignCSR(testCSR(t, key, id.URL()), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := issued.Leaf().Verify(x509.VerifyOptions{Roots: c1.RootPool(), CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("certificate of reloaded CA does not verify with original root: %v", err)
	}
}

func TestSelfSignedRSA(t *testing.T) {
	c, err := New(Options{Dir: t.TempDir(), KeyType: RSA2048, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	k, ok := c.Certificate().PublicKey.(*rsa.PublicKey)
	if !ok || k.N.BitLen() != 2048 {
		t.Fatalf("root key %T, want RSA-2048", c.Certificate().PublicKey)
	}
}

func TestPartialSelfSignedDirIsAnError(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(Options{Dir: dir, Now: fixedNow}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, CAKeyFile)); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{Dir: dir, Now: fixedNow})
	if err == nil || !strings.Contains(err.Error(), CAKeyFile) || !strings.Contains(err.Error(), "partial") {
		t.Fatalf("got %v, want a partial-CA error naming %s", err, CAKeyFile)
	}
}

func TestOptionsErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"none", Options{}, "no directory"},
		{"both", Options{Dir: "a", PluggedDir: "b"}, "not both"},
		{"trust domain", Options{Dir: t.TempDir(), TrustDomain: "Bad Domain"}, "trust domain"},
		{"ttl", Options{Dir: t.TempDir(), DefaultTTL: 48 * time.Hour, MaxTTL: time.Hour}, "exceeds max"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestPluggedInCA(t *testing.T) {
	e := newExternal(t)
	dir := e.writeCacerts(t)
	c, err := New(Options{PluggedDir: dir, Now: fixedNow, TrustDomain: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Certificate().Equal(e.inter) {
		t.Fatal("signing certificate is not the plugged-in intermediate")
	}
	id := spiffe.ID{TrustDomain: "example.org", Namespace: "shop", ServiceAccount: "cart"}
	issued, err := c.SignCSR(testCSR(t, mustKey(t), id.URL()), id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(issued.Chain) != 2 || !issued.Chain[1].Equal(e.inter) {
		t.Fatalf("chain has %d certificates, want leaf + intermediate", len(issued.Chain))
	}
	if len(issued.Roots) != 1 || !issued.Roots[0].Equal(e.root) {
		t.Fatal("trust bundle is not the external root")
	}
	roots := x509.NewCertPool()
	roots.AddCert(e.root)
	inter := x509.NewCertPool()
	inter.AddCert(issued.Chain[1])
	chains, err := issued.Leaf().Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		t.Fatalf("leaf does not verify to the external root: %v", err)
	}
	if n := len(chains[0]); n != 3 {
		t.Errorf("verified chain length %d, want 3 (leaf, intermediate, root)", n)
	}
	// Nothing is written into a plugged-in directory.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 {
		t.Errorf("plugged-in dir has %d entries, want the 4 original files", len(entries))
	}
}

func TestPluggedInCABadFiles(t *testing.T) {
	e := newExternal(t)
	otherKey := mustKey(t)
	otherRoot := makeCert(t, "Other Root", true, otherKey.Public(), nil, otherKey, testNow.Add(-time.Hour), testNow.Add(time.Hour*24*365))
	leafKey := mustKey(t)
	notCA := makeCert(t, "Not a CA", false, leafKey.Public(), e.root, e.rootKey, testNow.Add(-time.Hour), testNow.Add(time.Hour*24))
	expiredKey := mustKey(t)
	expired := makeCert(t, "Expired Intermediate", true, expiredKey.Public(), e.root, e.rootKey, testNow.Add(-48*time.Hour), testNow.Add(-24*time.Hour))
	keyPEM := func(k crypto.Signer) []byte {
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}

	for _, tc := range []struct {
		name   string
		mutate func(t *testing.T, dir string)
		file   string // the file the error must name
		want   string
	}{
		{"missing key", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, CAKeyFile)) }, CAKeyFile, "no such file"},
		{"key does not match", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, CAKeyFile), keyPEM(otherKey), 0o600)
		}, CAKeyFile, "does not match"},
		{"key not PEM", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, CAKeyFile), []byte("not a key"), 0o600)
		}, CAKeyFile, "no PEM private key"},
		{"ca-cert not a CA", func(t *testing.T, dir string) {
			writePEM(t, filepath.Join(dir, CACertFile), notCA)
			writePEM(t, filepath.Join(dir, CertChainFile), notCA, e.root)
			os.WriteFile(filepath.Join(dir, CAKeyFile), keyPEM(leafKey), 0o600)
		}, CACertFile, "not a CA certificate"},
		{"ca-cert expired", func(t *testing.T, dir string) {
			writePEM(t, filepath.Join(dir, CACertFile), expired)
			writePEM(t, filepath.Join(dir, CertChainFile), expired, e.root)
			os.WriteFile(filepath.Join(dir, CAKeyFile), keyPEM(expiredKey), 0o600)
		}, CACertFile, "expired"},
		{"ca-cert holds two certificates", func(t *testing.T, dir string) {
			writePEM(t, filepath.Join(dir, CACertFile), e.inter, e.root)
		}, CACertFile, "want exactly one"},
		{"chain does not verify to root", func(t *testing.T, dir string) {
			writePEM(t, filepath.Join(dir, RootCertFile), otherRoot)
		}, CertChainFile, "does not verify"},
		{"chain does not start with ca-cert", func(t *testing.T, dir string) {
			writePEM(t, filepath.Join(dir, CertChainFile), e.root)
		}, CertChainFile, "must start with the signing certificate"},
		{"root-cert not self-signed", func(t *testing.T, dir string) {
			writePEM(t, filepath.Join(dir, RootCertFile), e.inter)
		}, RootCertFile, "not self-signed"},
		{"root-cert garbage", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, RootCertFile), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o644)
		}, RootCertFile, "certificate 1"},
		{"root-cert empty", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, RootCertFile), nil, 0o644)
		}, RootCertFile, "no PEM certificate"},
		{"chain holds a key", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, CertChainFile), keyPEM(otherKey), 0o644)
		}, CertChainFile, "want CERTIFICATE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := e.writeCacerts(t)
			tc.mutate(t, dir)
			_, err := New(Options{PluggedDir: dir, Now: fixedNow})
			if err == nil {
				t.Fatal("New accepted bad files")
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.Contains(msg, filepath.Join(dir, tc.file)) || !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q should name %s and contain %q", msg, tc.file, tc.want)
			}
		})
	}
}

func TestPluggedInRootBundleWithTwoRoots(t *testing.T) {
	// During a root rotation root-cert.pem holds old and new root; the CA
	// signs with an intermediate of either and hands out both.
	e := newExternal(t)
	newKey := mustKey(t)
	newRoot := makeCert(t, "New Root", true, newKey.Public(), nil, newKey, testNow.Add(-time.Hour), testNow.Add(20*365*24*time.Hour))
	dir := e.writeCacerts(t)
	writePEM(t, filepath.Join(dir, RootCertFile), newRoot, e.root)
	c, err := New(Options{PluggedDir: dir, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.Roots()); n != 2 {
		t.Fatalf("trust bundle has %d roots, want 2", n)
	}
}

func testCSR(t testing.TB, key crypto.Signer, uris ...*url.URL) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: uris}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestIssuedWorkloadCertificate(t *testing.T) {
	c, err := New(Options{Dir: t.TempDir(), Now: fixedNow, MaxTTL: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	id := spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "reviews"}
	key := mustKey(t)
	issued, err := c.SignCSR(testCSR(t, key, id.URL()), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	leaf := issued.Leaf()
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/ns/default/sa/reviews" {
		t.Errorf("URI SANs %v", leaf.URIs)
	}
	if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
		t.Errorf("unexpected SANs: dns=%v ip=%v email=%v", leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses)
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
		t.Errorf("key usage %b", leaf.KeyUsage)
	}
	if len(leaf.ExtKeyUsage) != 2 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.ExtKeyUsage[1] != x509.ExtKeyUsageClientAuth {
		t.Errorf("ext key usage %v", leaf.ExtKeyUsage)
	}
	if leaf.IsCA || !leaf.BasicConstraintsValid {
		t.Error("leaf must carry CA:FALSE")
	}
	if got := leaf.NotAfter.Sub(testNow); got != DefaultWorkloadTTL {
		t.Errorf("TTL %v, want default %v", got, DefaultWorkloadTTL)
	}
	if !publicKeyEqual(key.Public(), leaf.PublicKey) {
		t.Error("leaf is not for the CSR's key")
	}
	if len(issued.Chain) != 1 {
		t.Errorf("self-signed CA: chain has %d certificates, want just the leaf", len(issued.Chain))
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: c.RootPool(), CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := spiffe.FromCertificate(chains[0][0])
	if err != nil || got != id {
		t.Errorf("verified identity %v (%v), want %v", got, err, id)
	}
	// After expiry it no longer verifies.
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.RootPool(), CurrentTime: testNow.Add(DefaultWorkloadTTL + time.Second)}); err == nil {
		t.Error("expired leaf verified")
	}

	issued, err = c.SignCSR(testCSR(t, mustKey(t), id.URL()), id, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := issued.Leaf().NotAfter.Sub(testNow); got != 2*time.Hour {
		t.Errorf("requested 2h, got %v", got)
	}
	if _, err := c.SignCSR(testCSR(t, mustKey(t), id.URL()), id, 49*time.Hour); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("TTL above max: got %v, want ErrInvalidRequest", err)
	}
}

func TestSignCSRRefusals(t *testing.T) {
	c, err := New(Options{Dir: t.TempDir(), Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	caller := spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "reviews"}
	other := spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "ratings"}
	foreign := spiffe.ID{TrustDomain: "evil.org", Namespace: "default", ServiceAccount: "reviews"}
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	dnsCSR := func() []byte {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{caller.URL()}, DNSNames: []string{"reviews"}}, mustKey(t))
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}()
	good := testCSR(t, mustKey(t), caller.URL())
	tampered := func() []byte {
		b, _ := pem.Decode(good)
		der := append([]byte(nil), b.Bytes...)
		der[len(der)-5] ^= 0xff // inside the signature
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}()
	for _, tc := range []struct {
		name   string
		csr    []byte
		caller spiffe.ID
		want   error
	}{
		{"other identity", testCSR(t, mustKey(t), other.URL()), caller, ErrPermissionDenied},
		{"foreign trust domain", testCSR(t, mustKey(t), foreign.URL()), foreign, ErrPermissionDenied},
		{"not PEM", []byte("hello"), caller, ErrInvalidRequest},
		{"wrong PEM type", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), caller, ErrInvalidRequest},
		{"bad DER", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{1, 2, 3}}), caller, ErrInvalidRequest},
		{"bad signature", tampered, caller, ErrInvalidRequest},
		{"two CSRs", append(append([]byte(nil), good...), good...), caller, ErrInvalidRequest},
		{"no URI", testCSR(t, mustKey(t)), caller, ErrInvalidRequest},
		{"two URIs", testCSR(t, mustKey(t), caller.URL(), other.URL()), caller, ErrInvalidRequest},
		{"not SPIFFE", testCSR(t, mustKey(t), &url.URL{Scheme: "https", Host: "example.com"}), caller, ErrInvalidRequest},
		{"DNS SAN", dnsCSR, caller, ErrInvalidRequest},
		{"weak RSA", testCSR(t, weak, caller.URL()), caller, ErrInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.SignCSR(tc.csr, tc.caller, 0)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestIssueServing(t *testing.T) {
	c, err := New(Options{Dir: t.TempDir(), Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.IssueServing(mustKey(t).Public(), nil, nil, 0); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("no hosts: %v", err)
	}
}
