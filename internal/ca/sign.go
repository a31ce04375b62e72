package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/weftmesh/weft/internal/ca/spiffe"
)

// Errors a signing request can fail with. Returned errors wrap one of them
// (test with errors.Is); Server maps them to gRPC codes.
var (
	// ErrInvalidRequest: the CSR or the requested TTL is malformed or not
	// acceptable (gRPC InvalidArgument).
	ErrInvalidRequest = errors.New("invalid certificate request")
	// ErrPermissionDenied: the caller may not hold the requested identity
	// (gRPC PermissionDenied).
	ErrPermissionDenied = errors.New("permission denied")
)

// clockSkew is how far issued certificates are back-dated.
const clockSkew = time.Minute

// ParseCSR decodes one PEM "CERTIFICATE REQUEST", checks its self-signature
// and key, and returns it with the SPIFFE ID it asks for: exactly one URI
// SAN, and no DNS, IP or e-mail SANs. Errors wrap ErrInvalidRequest.
func ParseCSR(data []byte) (*x509.CertificateRequest, spiffe.ID, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, spiffe.ID{}, fmt.Errorf("%w: CSR is not PEM", ErrInvalidRequest)
	}
	if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
		return nil, spiffe.ID{}, fmt.Errorf("%w: PEM block is %q, want CERTIFICATE REQUEST", ErrInvalidRequest, block.Type)
	}
	if extra, _ := pem.Decode(rest); extra != nil {
		return nil, spiffe.ID{}, fmt.Errorf("%w: more than one PEM block; send exactly one CSR", ErrInvalidRequest)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, spiffe.ID{}, fmt.Errorf("%w: data after the CSR's PEM block", ErrInvalidRequest)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, spiffe.ID{}, fmt.Errorf("%w: parse CSR: %v", ErrInvalidRequest, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, spiffe.ID{}, fmt.Errorf("%w: CSR signature: %v", ErrInvalidRequest, err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, spiffe.ID{}, fmt.Errorf("%w: CSR key: %v", ErrInvalidRequest, err)
	}
	if len(csr.DNSNames)+len(csr.IPAddresses)+len(csr.EmailAddresses) != 0 {
		return nil, spiffe.ID{}, fmt.Errorf("%w: CSR has DNS, IP or e-mail SANs; a workload CSR carries only its SPIFFE ID as URI SAN", ErrInvalidRequest)
	}
	id, err := spiffe.FromURIs(csr.URIs)
	if err != nil {
		return nil, spiffe.ID{}, fmt.Errorf("%w: CSR: %v", ErrInvalidRequest, err)
	}
	return csr, id, nil
}

// CheckCSR parses a CSR (see ParseCSR) and checks that it asks for
// exactly the caller's identity; a different identity wraps
// ErrPermissionDenied.
func CheckCSR(data []byte, caller spiffe.ID) (*x509.CertificateRequest, error) {
	csr, id, err := ParseCSR(data)
	if err != nil {
		return nil, err
	}
	if id != caller {
		return nil, fmt.Errorf("%w: CSR asks for %s but the caller is %s", ErrPermissionDenied, id, caller)
	}
	return csr, nil
}

// checkPublicKey rejects keys too weak to certify.
func checkPublicKey(pub any) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("ECDSA curve %s not accepted (P-256, P-384, P-521)", k.Curve.Params().Name)
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits; at least 2048 required", k.N.BitLen())
		}
		return nil
	case ed25519.PublicKey:
		return nil
	}
	return fmt.Errorf("unsupported key type %T", pub)
}

// Issued is a signed certificate and what a workload needs with it.
type Issued struct {
	// Chain is the new certificate followed by the intermediates up to (not
	// including) the root.
	Chain []*x509.Certificate
	// Roots is the CA's trust bundle.
	Roots []*x509.Certificate
}

// Leaf returns the issued certificate.
func (i *Issued) Leaf() *x509.Certificate { return i.Chain[0] }

// ChainPEM returns Chain PEM-encoded.
func (i *Issued) ChainPEM() []byte { return encodeCerts(i.Chain) }

// RootsPEM returns Roots PEM-encoded.
func (i *Issued) RootsPEM() []byte { return encodeCerts(i.Roots) }

// SignCSR issues a workload certificate for a PEM CSR on behalf of caller,
// an authenticated identity. The CSR must ask for exactly caller's SPIFFE
// ID in this CA's trust domain. ttl 0 means the default TTL; more than the
// maximum TTL is rejected. The certificate carries only the URI SAN, key
// usage digitalSignature+keyEncipherment and extended key usage
// serverAuth+clientAuth.
func (c *CA) SignCSR(csrPEM []byte, caller spiffe.ID, ttl time.Duration) (*Issued, error) {
	if caller.TrustDomain != c.opts.TrustDomain {
		return nil, fmt.Errorf("%w: caller %s is outside trust domain %q", ErrPermissionDenied, caller, c.opts.TrustDomain)
	}
	csr, err := CheckCSR(csrPEM, caller)
	if err != nil {
		return nil, err
	}
	switch {
	case ttl < 0:
		return nil, fmt.Errorf("%w: negative TTL %v", ErrInvalidRequest, ttl)
	case ttl == 0:
		ttl = c.opts.DefaultTTL
	case ttl > c.opts.MaxTTL:
		return nil, fmt.Errorf("%w: requested TTL %v exceeds the maximum %v", ErrInvalidRequest, ttl, c.opts.MaxTTL)
	}
	tmpl := &x509.Certificate{
		URIs:        []*url.URL{caller.URL()},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	return c.sign(tmpl, csr.PublicKey, ttl)
}

// IssueServing issues a server certificate for pub with DNS and IP SANs
// (weftd's own serving certificate), valid for ttl (0: the default TTL).
func (c *CA) IssueServing(pub crypto.PublicKey, dnsNames []string, ips []net.IP, ttl time.Duration) (*Issued, error) {
	if len(dnsNames)+len(ips) == 0 {
		return nil, fmt.Errorf("%w: serving certificate needs at least one host name or IP", ErrInvalidRequest)
	}
	if err := checkPublicKey(pub); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	if ttl <= 0 {
		ttl = c.opts.DefaultTTL
	}
	cn := ""
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{c.opts.Org}, CommonName: cn},
		DNSNames:    dnsNames,
		IPAddresses: ips,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	return c.sign(tmpl, pub, ttl)
}

// sign completes tmpl (serial, validity, constraints) and signs it.
func (c *CA) sign(tmpl *x509.Certificate, pub crypto.PublicKey, ttl time.Duration) (*Issued, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := c.opts.Now()
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-clockSkew)
	if tmpl.NotBefore.Before(c.cert.NotBefore) {
		tmpl.NotBefore = c.cert.NotBefore
	}
	tmpl.NotAfter = now.Add(ttl)
	if tmpl.NotAfter.After(c.cert.NotAfter) {
		// Never outlive the signing certificate.
		tmpl.NotAfter = c.cert.NotAfter
	}
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = false
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, pub, c.key)
	if err != nil {
		return nil, fmt.Errorf("ca: sign: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: parse signed certificate: %w", err)
	}
	chain := append([]*x509.Certificate{leaf}, c.intermediates...)
	return &Issued{Chain: chain, Roots: c.Roots()}, nil
}
