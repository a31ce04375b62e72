package ca

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/ca/spiffe"
)

func TestSelfSignedRootRotation(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, Now: fixedNow}
	id := spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "reviews"}
	issue := func(c *CA) *x509.Certificate {
		t.Helper()
		is, err := c.SignCSR(testCSR(t, mustKey(t), id.URL()), id, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return is.Leaf()
	}
	verifies := func(leaf *x509.Certificate, roots *x509.CertPool) bool {
		_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		return err == nil
	}

	c0, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	oldRoot := c0.Certificate()
	oldLeaf := issue(c0)

	if err := PromoteRoot(opts); err == nil {
		t.Fatal("PromoteRoot without a staged root succeeded")
	}

	// 1. Stage: still signing with the old root, bundle has both.
	newRoot, err := StageRoot(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := StageRoot(opts); err == nil {
		t.Fatal("second StageRoot succeeded")
	}
	if st, err := os.Stat(filepath.Join(dir, NextCAKeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("staged key: %v %v", st, err)
	}
	c1, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if !c1.Certificate().Equal(oldRoot) {
		t.Fatal("staging changed the signing certificate")
	}
	if len(c1.Roots()) != 2 {
		t.Fatalf("bundle has %d roots after staging, want 2", len(c1.Roots()))
	}
	bundleAfterStage := c1.RootPool() // what workloads get at their next renewal

	// 2. Promote: signing with the new root, bundle still has both.
	if err := PromoteRoot(opts); err != nil {
		t.Fatal(err)
	}
	c2, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if !c2.Certificate().Equal(newRoot) {
		t.Fatal("promotion did not switch the signing certificate")
	}
	newLeaf := issue(c2)
	if !verifies(newLeaf, bundleAfterStage) {
		t.Error("a workload that renewed after staging does not trust certificates of the new root")
	}
	if !verifies(oldLeaf, c2.RootPool()) || !verifies(newLeaf, c2.RootPool()) {
		t.Error("during the overlap the bundle must verify both old and new certificates")
	}
	if _, err := os.Stat(filepath.Join(dir, NextCACertFile)); !os.IsNotExist(err) {
		t.Errorf("next-ca-cert.pem left behind: %v", err)
	}

	// 3. Retire: only the new root remains.
	removed, err := RetireRoots(opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || !removed[0].Equal(oldRoot) {
		t.Fatalf("retired %d roots, want the old one", len(removed))
	}
	c3, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(c3.Roots()) != 1 || verifies(oldLeaf, c3.RootPool()) || !verifies(newLeaf, c3.RootPool()) {
		t.Error("after retiring, only certificates of the new root verify")
	}
}

func TestRootRotationRefusesPluggedInCA(t *testing.T) {
	dir := newExternal(t).writeCacerts(t)
	if _, err := StageRoot(Options{PluggedDir: dir, Now: fixedNow}); err == nil {
		t.Fatal("StageRoot on PluggedDir succeeded")
	}
	if _, err := StageRoot(Options{Dir: dir, Now: fixedNow}); err == nil {
		t.Fatal("StageRoot on a directory holding a plugged-in CA succeeded")
	}
}
