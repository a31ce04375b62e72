package caclient

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net/url"

	"github.com/weftmesh/weft/internal/ca/spiffe"
)

// KeyType selects the algorithm of workload keys.
type KeyType int

const (
	// ECDSAP256 is ECDSA on NIST P-256 (the default).
	ECDSAP256 KeyType = iota
	// RSA2048 is 2048-bit RSA.
	RSA2048
)

// GenerateKey creates a private key of type k.
func GenerateKey(k KeyType) (crypto.Signer, error) {
	switch k {
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return nil, fmt.Errorf("caclient: unknown key type %d", int(k))
}

// NewCSR returns a PEM certificate request signed by key whose only
// subject alternative name is id's SPIFFE URI, as Weft's CA expects.
func NewCSR(key crypto.Signer, id spiffe.ID) ([]byte, error) {
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("caclient: CSR identity: %w", err)
	}
	tmpl := &x509.CertificateRequest{
		Subject: pkix.Name{},
		URIs:    []*url.URL{id.URL()},
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("caclient: create CSR: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// encodeKey PEM-encodes a private key as PKCS#8.
func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("caclient: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// encodeCerts PEM-encodes certificates in order.
func encodeCerts(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// parseCerts decodes every CERTIFICATE block of a PEM bundle; it fails on
// other block types, garbage or an empty bundle.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %q, want CERTIFICATE", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	for _, ch := range rest {
		if ch != ' ' && ch != '\n' && ch != '\r' && ch != '\t' {
			return nil, fmt.Errorf("non-PEM data after %d certificates", len(certs))
		}
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("no PEM certificate")
	}
	return certs, nil
}
