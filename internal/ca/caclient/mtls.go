package caclient

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/weftmesh/weft/internal/ca/spiffe"
)

// Authorizer decides whether a verified peer identity may talk to us.
type Authorizer func(peer spiffe.ID) error

// ServerTLSConfig returns an mTLS server configuration: the rotator's
// current certificate, client certificates required and verified against
// the current trust bundle, the peer's SPIFFE ID passed to authorize (nil
// accepts any identity the bundle verifies).
func (r *Rotator) ServerTLSConfig(authorize Authorizer) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.GetCertificate,
		ClientAuth:     tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return r.verifyPeer(raw, x509.ExtKeyUsageClientAuth, authorize)
		},
	}
}

// ClientTLSConfig returns an mTLS client configuration: the rotator's
// current certificate, the server's certificate verified against the
// current trust bundle by SPIFFE ID (not host name), passed to authorize.
func (r *Rotator) ClientTLSConfig(authorize Authorizer) *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS12,
		GetClientCertificate: r.GetClientCertificate,
		// Host-name verification does not apply to SPIFFE certificates;
		// VerifyPeerCertificate does the full chain and identity check.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return r.verifyPeer(raw, x509.ExtKeyUsageServerAuth, authorize)
		},
	}
}

// verifyPeer verifies a presented chain against the current bundle.
func (r *Rotator) verifyPeer(raw [][]byte, usage x509.ExtKeyUsage, authorize Authorizer) error {
	roots := r.Roots()
	if roots == nil {
		return errNoCertificate
	}
	id, err := VerifyPeer(raw, roots, usage, time.Now())
	if err != nil {
		return err
	}
	if authorize != nil {
		return authorize(id)
	}
	return nil
}

// VerifyPeer parses a peer's raw certificate chain, verifies it to roots
// for usage at time now, and returns the SPIFFE ID of its leaf.
func VerifyPeer(raw [][]byte, roots *x509.CertPool, usage x509.ExtKeyUsage, now time.Time) (spiffe.ID, error) {
	if len(raw) == 0 {
		return spiffe.ID{}, errors.New("peer presented no certificate")
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, b := range raw {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return spiffe.ID{}, fmt.Errorf("peer certificate %d: %w", i, err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return spiffe.ID{}, fmt.Errorf("peer certificate: %w", err)
	}
	id, err := spiffe.FromCertificate(certs[0])
	if err != nil {
		return spiffe.ID{}, fmt.Errorf("peer certificate: %w", err)
	}
	return id, nil
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
