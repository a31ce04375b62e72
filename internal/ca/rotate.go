package ca

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Files of a staged root rotation in a self-signed CA directory.
const (
	NextCACertFile = "next-ca-cert.pem" // the staged new root
	NextCAKeyFile  = "next-ca-key.pem"  // its key (mode 0600)
)

// Rotating the self-signed root takes three steps, each followed by a
// restart of weftd (New reads the directory once) and a wait, so that no
// workload ever meets a certificate its trust bundle cannot verify:
//
//  1. StageRoot: a new root is generated and added to root-cert.pem; the
//     CA still signs with the old one. Wait until every workload renewed
//     once (it then trusts both roots): the longest renewal interval, by
//     default half the workload TTL.
//  2. PromoteRoot: the CA signs with the new root; root-cert.pem still
//     holds both, so old and new certificates verify everywhere. Wait
//     until every certificate of the old root expired: the max TTL.
//  3. RetireRoots: root-cert.pem is reduced to the new root.
//
// docs/ca.md describes the same for a plugged-in CA (done by hand).

// StageRoot generates a new self-signed root for the CA in opts.Dir, keeps
// it in next-ca-cert.pem and next-ca-key.pem, and appends it to the trust
// bundle root-cert.pem. It uses opts.KeyType, RootTTL, Org, TrustDomain and
// Now like New.
func StageRoot(opts Options) (*x509.Certificate, error) {
	f, opts, err := loadSelfSigned(opts)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(opts.Dir, NextCACertFile)); err == nil {
		return nil, fmt.Errorf("ca: %s: a root is already staged: promote it (PromoteRoot) or delete %s and %s", filepath.Join(opts.Dir, NextCACertFile), NextCACertFile, NextCAKeyFile)
	}
	key, err := GenerateKey(opts.KeyType)
	if err != nil {
		return nil, fmt.Errorf("ca: generate root key: %w", err)
	}
	root, err := SelfSignedRoot(key, opts.Org, opts.TrustDomain, opts.Now(), opts.RootTTL)
	if err != nil {
		return nil, err
	}
	next := &Files{Cert: root, Key: key}
	if err := next.writeAs(opts.Dir, NextCACertFile, NextCAKeyFile); err != nil {
		return nil, err
	}
	f.Roots = append(f.Roots, root)
	if err := writeFileAtomic(filepath.Join(opts.Dir, RootCertFile), encodeCerts(f.Roots), 0o644); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	return root, nil
}

// PromoteRoot makes the root staged by StageRoot the signing certificate
// of the CA in opts.Dir and removes the next-* files. The trust bundle
// keeps the old root.
func PromoteRoot(opts Options) error {
	f, opts, err := loadSelfSigned(opts)
	if err != nil {
		return err
	}
	cert, err := readOneCert(opts.Dir, NextCACertFile)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ca: %s: no staged root: run StageRoot first", opts.Dir)
	}
	if err != nil {
		return err
	}
	key, err := readKey(opts.Dir, NextCAKeyFile)
	if err != nil {
		return err
	}
	staged := false
	for _, r := range f.Roots {
		staged = staged || r.Equal(cert)
	}
	if !staged {
		return fmt.Errorf("ca: %s: the staged root is not in %s: workloads would not trust it", filepath.Join(opts.Dir, NextCACertFile), RootCertFile)
	}
	next := &Files{Dir: opts.Dir, Cert: cert, Key: key, Chain: []*x509.Certificate{cert}, Roots: f.Roots}
	if err := next.Check(opts.Now()); err != nil {
		return err
	}
	if err := next.Write(opts.Dir); err != nil {
		return err
	}
	for _, name := range []string{NextCAKeyFile, NextCACertFile} {
		if err := os.Remove(filepath.Join(opts.Dir, name)); err != nil {
			return fmt.Errorf("ca: %w", err)
		}
	}
	return nil
}

// RetireRoots removes from root-cert.pem of the CA in opts.Dir every root
// except the signing one and a staged one, and returns the removed roots.
func RetireRoots(opts Options) ([]*x509.Certificate, error) {
	f, opts, err := loadSelfSigned(opts)
	if err != nil {
		return nil, err
	}
	staged, _ := readOneCert(opts.Dir, NextCACertFile)
	var keep, removed []*x509.Certificate
	for _, r := range f.Roots {
		if r.Equal(f.Cert) || staged != nil && r.Equal(staged) {
			keep = append(keep, r)
		} else {
			removed = append(removed, r)
		}
	}
	if len(removed) == 0 {
		return nil, nil
	}
	if err := writeFileAtomic(filepath.Join(opts.Dir, RootCertFile), encodeCerts(keep), 0o644); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	return removed, nil
}

// loadSelfSigned loads and checks the self-signed CA in opts.Dir.
func loadSelfSigned(opts Options) (*Files, Options, error) {
	if opts.Dir == "" || opts.PluggedDir != "" {
		return nil, opts, errors.New("ca: root rotation applies to a self-signed CA (Dir); rotate a plugged-in CA by replacing its files (docs/ca.md)")
	}
	opts = withDefaults(opts)
	f, err := LoadFiles(opts.Dir)
	if err != nil {
		return nil, opts, err
	}
	if err := f.Check(opts.Now()); err != nil {
		return nil, opts, err
	}
	if !isSelfSigned(f.Cert) {
		return nil, opts, fmt.Errorf("ca: %s: not self-signed: this is a plugged-in CA; rotate it by replacing its files (docs/ca.md)", filepath.Join(opts.Dir, CACertFile))
	}
	return f, opts, nil
}

// writeAs writes the certificate and key of f under the given names.
func (f *Files) writeAs(dir, certName, keyName string) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(f.Key)
	if err != nil {
		return fmt.Errorf("ca: encode %s: %w", keyName, err)
	}
	if err := writeFileAtomic(filepath.Join(dir, keyName), pemBlock("PRIVATE KEY", keyDER), 0o600); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, certName), encodeCerts([]*x509.Certificate{f.Cert}), 0o644); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	return nil
}
