// Package ca is Weft's certificate authority (Istio's citadel): it keeps a
// signing certificate and key, either a self-signed root it generates and
// persists on first start or an operator's intermediate plugged in from
// files in Istio's cacerts layout, and issues short-lived workload
// certificates for SPIFFE identities from CSRs. Server exposes it as
// Istio's IstioCertificateService over TLS.
package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/weftmesh/weft/internal/ca/spiffe"
)

// File names of a CA directory, Istio's cacerts layout.
const (
	CACertFile    = "ca-cert.pem"    // the signing certificate
	CAKeyFile     = "ca-key.pem"     // its private key (mode 0600)
	CertChainFile = "cert-chain.pem" // ca-cert followed by intermediates (and optionally the root)
	RootCertFile  = "root-cert.pem"  // the trust bundle: one or more roots
)

// KeyType selects the algorithm of generated keys.
type KeyType int

const (
	// ECDSAP256 is ECDSA on NIST P-256 (the default).
	ECDSAP256 KeyType = iota
	// RSA2048 is 2048-bit RSA.
	RSA2048
)

// String names the key type.
func (k KeyType) String() string {
	switch k {
	case ECDSAP256:
		return "ECDSA-P256"
	case RSA2048:
		return "RSA-2048"
	}
	return fmt.Sprintf("KeyType(%d)", int(k))
}

// GenerateKey creates a new private key of type k.
func GenerateKey(k KeyType) (crypto.Signer, error) {
	switch k {
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return nil, fmt.Errorf("unknown key type %v", k)
}

// Defaults for Options.
const (
	DefaultWorkloadTTL = 24 * time.Hour
	DefaultMaxTTL      = 90 * 24 * time.Hour
	DefaultRootTTL     = 10 * 365 * 24 * time.Hour
	DefaultOrg         = "Weft"
)

// Options configures a CA. Exactly one of Dir and PluggedDir is set.
type Options struct {
	// Dir holds a self-signed CA: if it has none of the four files, New
	// generates a root and writes them; if it has all four, New loads and
	// checks them; anything in between is an error.
	Dir string
	// PluggedDir holds an operator-provided CA in Istio's cacerts layout
	// (ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem). Nothing is
	// ever written there.
	PluggedDir string
	// TrustDomain of issued identities; default spiffe.DefaultTrustDomain.
	TrustDomain string
	// KeyType of a generated root; default ECDSAP256.
	KeyType KeyType
	// RootTTL is the lifetime of a generated root; default 10 years.
	RootTTL time.Duration
	// Org is the organization in a generated root's subject; default "Weft".
	Org string
	// DefaultTTL is the lifetime of a workload certificate when the request
	// names none; default 24h.
	DefaultTTL time.Duration
	// MaxTTL is the longest lifetime a request may ask for; default 90 days.
	MaxTTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// CA signs workload and serving certificates. It is immutable after New and
// safe for concurrent use.
type CA struct {
	opts          Options
	cert          *x509.Certificate   // signing certificate
	key           crypto.Signer       // its key
	intermediates []*x509.Certificate // cert followed by any further intermediates, excluding roots
	roots         []*x509.Certificate // trust bundle
	rootPool      *x509.CertPool
}

// New loads or creates the CA described by opts.
func New(opts Options) (*CA, error) {
	opts = withDefaults(opts)
	if err := spiffe.ValidateTrustDomain(opts.TrustDomain); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	if opts.DefaultTTL < 0 || opts.MaxTTL < 0 || opts.RootTTL < 0 {
		return nil, errors.New("ca: negative TTL")
	}
	if opts.DefaultTTL > opts.MaxTTL {
		return nil, fmt.Errorf("ca: default TTL %v exceeds max TTL %v", opts.DefaultTTL, opts.MaxTTL)
	}
	var (
		f   *Files
		err error
	)
	switch {
	case opts.Dir != "" && opts.PluggedDir != "":
		return nil, errors.New("ca: set either Dir (self-signed) or PluggedDir (plugged-in CA), not both")
	case opts.PluggedDir != "":
		f, err = LoadFiles(opts.PluggedDir)
	case opts.Dir != "":
		f, err = loadOrCreate(opts)
	default:
		return nil, errors.New("ca: no directory: set Dir (self-signed) or PluggedDir (plugged-in CA)")
	}
	if err != nil {
		return nil, err
	}
	if err := f.Check(opts.Now()); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, r := range f.Roots {
		pool.AddCert(r)
	}
	return &CA{opts: opts, cert: f.Cert, key: f.Key, intermediates: f.Intermediates(), roots: f.Roots, rootPool: pool}, nil
}

// withDefaults fills the zero fields of opts.
func withDefaults(opts Options) Options {
	if opts.TrustDomain == "" {
		opts.TrustDomain = spiffe.DefaultTrustDomain
	}
	if opts.RootTTL == 0 {
		opts.RootTTL = DefaultRootTTL
	}
	if opts.Org == "" {
		opts.Org = DefaultOrg
	}
	if opts.DefaultTTL == 0 {
		opts.DefaultTTL = DefaultWorkloadTTL
	}
	if opts.MaxTTL == 0 {
		opts.MaxTTL = DefaultMaxTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return opts
}

// TrustDomain returns the trust domain of identities this CA issues.
func (c *CA) TrustDomain() string { return c.opts.TrustDomain }

// Certificate returns the signing certificate.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// Roots returns the trust bundle: every root in root-cert.pem. During a
// root rotation it holds both the old and the new root.
func (c *CA) Roots() []*x509.Certificate { return append([]*x509.Certificate(nil), c.roots...) }

// RootPool returns the trust bundle as a pool.
func (c *CA) RootPool() *x509.CertPool { return c.rootPool.Clone() }

// RootsPEM returns the trust bundle PEM-encoded.
func (c *CA) RootsPEM() []byte { return encodeCerts(c.roots) }

// loadOrCreate loads the self-signed CA in opts.Dir or creates it.
func loadOrCreate(opts Options) (*Files, error) {
	dir := opts.Dir
	present := 0
	var missing []string
	for _, name := range []string{CACertFile, CAKeyFile, CertChainFile, RootCertFile} {
		switch _, err := os.Stat(filepath.Join(dir, name)); {
		case err == nil:
			present++
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, name)
		default:
			return nil, fmt.Errorf("ca: %w", err)
		}
	}
	switch present {
	case 4:
		return LoadFiles(dir)
	case 0:
	default:
		return nil, fmt.Errorf("ca: %s holds a partial CA (missing %v): restore the files or empty the directory to generate a new root", dir, missing)
	}
	key, err := GenerateKey(opts.KeyType)
	if err != nil {
		return nil, fmt.Errorf("ca: generate root key: %w", err)
	}
	root, err := SelfSignedRoot(key, opts.Org, opts.TrustDomain, opts.Now(), opts.RootTTL)
	if err != nil {
		return nil, err
	}
	f := &Files{Dir: dir, Cert: root, Key: key, Chain: []*x509.Certificate{root}, Roots: []*x509.Certificate{root}}
	if err := f.Write(dir); err != nil {
		return nil, err
	}
	return f, nil
}

// SelfSignedRoot creates a root CA certificate for key, valid from now
// (back-dated by a minute for clock skew) for ttl.
func SelfSignedRoot(key crypto.Signer, org, trustDomain string, now time.Time, ttl time.Duration) (*x509.Certificate, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{org}, CommonName: org + " root CA " + trustDomain},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(ttl),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("ca: create root certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// newSerial returns a random positive 128-bit serial number.
func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("ca: serial number: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}
