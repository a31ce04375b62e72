package ca

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Files is the content of a CA directory in Istio's cacerts layout.
type Files struct {
	// Dir is where the files were read from (used in error messages).
	Dir string
	// Cert is ca-cert.pem, the signing certificate.
	Cert *x509.Certificate
	// Key is ca-key.pem, Cert's private key.
	Key crypto.Signer
	// Chain is cert-chain.pem: Cert first, then intermediates up to (and
	// possibly including) a root.
	Chain []*x509.Certificate
	// Roots is root-cert.pem, the trust bundle.
	Roots []*x509.Certificate
}

// LoadFiles reads the four files of a CA directory. It only parses them;
// Check verifies that they fit together.
func LoadFiles(dir string) (*Files, error) {
	f := &Files{Dir: dir}
	var err error
	if f.Cert, err = readOneCert(dir, CACertFile); err != nil {
		return nil, err
	}
	if f.Key, err = readKey(dir, CAKeyFile); err != nil {
		return nil, err
	}
	if f.Chain, err = readCerts(dir, CertChainFile); err != nil {
		return nil, err
	}
	if f.Roots, err = readCerts(dir, RootCertFile); err != nil {
		return nil, err
	}
	return f, nil
}

// Check verifies that the files form a usable CA at time now: the key
// matches ca-cert.pem, ca-cert.pem is a CA certificate within its validity
// period, cert-chain.pem starts with it and holds only CA certificates,
// and it verifies through that chain to a root in root-cert.pem. Every
// error names the file at fault.
func (f *Files) Check(now time.Time) error {
	if !publicKeyEqual(f.Key.Public(), f.Cert.PublicKey) {
		return f.errorf(CAKeyFile, "private key does not match the public key of %s", CACertFile)
	}
	if err := checkCACert(f.Cert, now); err != nil {
		return f.errorf(CACertFile, "%v", err)
	}
	for i, r := range f.Roots {
		if err := checkCACert(r, now); err != nil {
			return f.errorf(RootCertFile, "certificate %d (%s): %v", i+1, r.Subject, err)
		}
		if !isSelfSigned(r) {
			return f.errorf(RootCertFile, "certificate %d (%s) is not self-signed: the trust bundle must hold roots", i+1, r.Subject)
		}
	}
	if !f.Chain[0].Equal(f.Cert) {
		return f.errorf(CertChainFile, "first certificate (%s) is not %s (%s): the chain must start with the signing certificate", f.Chain[0].Subject, CACertFile, f.Cert.Subject)
	}
	inter := x509.NewCertPool()
	for i, c := range f.Chain[1:] {
		if err := checkCACert(c, now); err != nil {
			return f.errorf(CertChainFile, "certificate %d (%s): %v", i+2, c.Subject, err)
		}
		inter.AddCert(c)
	}
	roots := x509.NewCertPool()
	for _, r := range f.Roots {
		roots.AddCert(r)
	}
	_, err := f.Cert.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return f.errorf(CertChainFile, "%s (%s) does not verify through this chain to a root in %s: %v", CACertFile, f.Cert.Subject, RootCertFile, err)
	}
	return nil
}

// Intermediates returns the certificates a workload chain carries after
// its leaf: the signing certificate and the further intermediates of
// cert-chain.pem, without roots (a self-signed signing certificate is
// itself a root and yields none).
func (f *Files) Intermediates() []*x509.Certificate {
	var out []*x509.Certificate
	for _, c := range f.Chain {
		if isSelfSigned(c) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// Write stores the files in dir (created with mode 0700 if missing),
// ca-key.pem with mode 0600. Each file is written to a temporary name and
// renamed, so a crash never leaves a half-written file.
func (f *Files) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(f.Key)
	if err != nil {
		return fmt.Errorf("ca: encode %s: %w", CAKeyFile, err)
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{CAKeyFile, pemBlock("PRIVATE KEY", keyDER), 0o600},
		{CACertFile, encodeCerts([]*x509.Certificate{f.Cert}), 0o644},
		{CertChainFile, encodeCerts(f.Chain), 0o644},
		{RootCertFile, encodeCerts(f.Roots), 0o644},
	}
	for _, file := range files {
		if err := writeFileAtomic(filepath.Join(dir, file.name), file.data, file.mode); err != nil {
			return fmt.Errorf("ca: %w", err)
		}
	}
	return nil
}

func (f *Files) errorf(file, format string, args ...any) error {
	return fmt.Errorf("ca: %s: %s", filepath.Join(f.Dir, file), fmt.Sprintf(format, args...))
}

// checkCACert reports why c cannot sign certificates at time now.
func checkCACert(c *x509.Certificate, now time.Time) error {
	if !c.BasicConstraintsValid || !c.IsCA {
		return fmt.Errorf("%s is not a CA certificate (basic constraints CA:TRUE missing)", c.Subject)
	}
	if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("%s lacks the keyCertSign key usage", c.Subject)
	}
	if now.Before(c.NotBefore) {
		return fmt.Errorf("%s is not valid before %s", c.Subject, c.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(c.NotAfter) {
		return fmt.Errorf("%s expired on %s", c.Subject, c.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// isSelfSigned reports whether c is signed by its own key.
func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// readCerts reads a non-empty PEM file of certificates.
func readCerts(dir, name string) ([]*x509.Certificate, error) {
	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	certs, err := ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("ca: %s: %w", path, err)
	}
	return certs, nil
}

func readOneCert(dir, name string) (*x509.Certificate, error) {
	certs, err := readCerts(dir, name)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("ca: %s: holds %d certificates, want exactly one", filepath.Join(dir, name), len(certs))
	}
	return certs[0], nil
}

func readKey(dir, name string) (crypto.Signer, error) {
	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	key, err := ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("ca: %s: %w", path, err)
	}
	return key, nil
}

// ParseCertificates decodes every CERTIFICATE block of a PEM bundle. Other
// block types, trailing garbage and an empty bundle are errors.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is %q, want CERTIFICATE", len(certs)+1, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("unparseable data after certificate %d (not PEM)", len(certs))
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}

// ParsePrivateKey decodes one PEM private key: PKCS#8, SEC 1 (EC) or
// PKCS#1 (RSA).
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM private key found")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block is %q, want PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key type %T cannot sign", key)
	}
	return s, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// encodeCerts PEM-encodes certificates in order.
func encodeCerts(certs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// writeFileAtomic writes data to a temporary file next to path and renames
// it into place.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
