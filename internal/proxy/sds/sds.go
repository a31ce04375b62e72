// Package sds resolves the SDS secrets that weft-proxy's TLS contexts name
// to the proxy's own workload identity, as Istio's agent does for Envoy:
// "default" is the workload certificate chain and key, "ROOTCA" the
// mesh trust bundle, both kept fresh by a caclient.Rotator. It also
// builds crypto/tls configurations from Envoy's UpstreamTlsContext and
// DownstreamTlsContext whose certificate hooks look the secret up at each
// handshake, so a rotation reaches new connections without touching
// established ones.
package sds

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/weftmesh/weft/internal/ca/caclient"
	"github.com/weftmesh/weft/internal/ca/spiffe"
)

// Secret names served locally, as Istio's agent names them.
const (
	SecretDefault = caclient.SecretDefault
	SecretRootCA  = caclient.SecretRootCA
)

// Store serves the local SDS secrets from a rotator. A nil *Store is a
// proxy without a workload identity: every lookup fails with ErrNoIdentity.
type Store struct {
	rot *caclient.Rotator
}

// ErrNoIdentity is returned by lookups on a proxy started without a CA.
var ErrNoIdentity = errors.New("sds: no workload identity (weft-proxy runs without --ca-address)")

// New returns a store serving rot's certificate and bundle.
func New(rot *caclient.Rotator) *Store {
	if rot == nil {
		return nil
	}
	return &Store{rot: rot}
}

// Certificate returns the current certificate of the named TLS
// certificate secret.
func (s *Store) Certificate(name string) (*tls.Certificate, error) {
	if s == nil {
		return nil, ErrNoIdentity
	}
	if name != SecretDefault {
		return nil, fmt.Errorf("sds: secret %q not found (weft-proxy serves %q and %q)", name, SecretDefault, SecretRootCA)
	}
	c := s.rot.Certificate()
	if c == nil {
		return nil, errors.New("sds: workload certificate not issued yet")
	}
	return c, nil
}

// Roots returns the current trust bundle of the named validation secret.
func (s *Store) Roots(name string) (*x509.CertPool, error) {
	if s == nil {
		return nil, ErrNoIdentity
	}
	if name != SecretRootCA {
		return nil, fmt.Errorf("sds: validation secret %q not found (weft-proxy serves %q)", name, SecretRootCA)
	}
	p := s.rot.Roots()
	if p == nil {
		return nil, errors.New("sds: trust bundle not received yet")
	}
	return p, nil
}

// Identity returns the proxy's SPIFFE ID, or "" without a store.
func (s *Store) Identity() string {
	if s == nil {
		return ""
	}
	return s.rot.Status().Identity
}

// SecretInfo describes one served secret for the admin config dump. It
// never holds the private key.
type SecretInfo struct {
	Name         string    `json:"name"`
	Identity     string    `json:"identity,omitempty"`
	Serial       string    `json:"serialNumber,omitempty"`
	NotBefore    time.Time `json:"validFrom,omitempty"`
	NotAfter     time.Time `json:"expirationTime,omitempty"`
	LastRotation time.Time `json:"lastUpdated,omitempty"`
	Rotations    uint64    `json:"rotations,omitempty"`
	// CertificateChain (for "default") or TrustedCA (for "ROOTCA"), PEM.
	CertificateChain string `json:"certificateChain,omitempty"`
	TrustedCA        string `json:"trustedCa,omitempty"`
}

// Dump describes the served secrets (empty before the first certificate).
func (s *Store) Dump() []SecretInfo {
	if s == nil {
		return nil
	}
	var out []SecretInfo
	st := s.rot.Status()
	for _, sec := range s.rot.Secrets() {
		info := SecretInfo{Name: sec.GetName()}
		if tc := sec.GetTlsCertificate(); tc != nil {
			info.Identity, info.Serial = st.Identity, st.Serial
			info.NotBefore, info.NotAfter = st.NotBefore, st.NotAfter
			info.LastRotation, info.Rotations = st.LastRotation, st.Rotations
			info.CertificateChain = string(tc.GetCertificateChain().GetInlineBytes())
		}
		if vc := sec.GetValidationContext(); vc != nil {
			info.TrustedCA = string(vc.GetTrustedCa().GetInlineBytes())
		}
		out = append(out, info)
	}
	return out
}

// Peer is the verified identity of a TLS peer.
type Peer struct {
	// Principal is the peer certificate's SPIFFE ID ("" if it has none).
	Principal string
	// Hash is the hex SHA-256 of the peer's leaf certificate (DER), as in
	// x-forwarded-client-cert's Hash.
	Hash string
	// URIs and DNS are the leaf's subject alternative names; Subject its
	// subject.
	URIs, DNS []string
	Subject   string
}

// PeerOf returns the peer of a completed handshake, or nil when the peer
// presented no certificate.
func PeerOf(cs tls.ConnectionState) *Peer {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	leaf := cs.PeerCertificates[0]
	sum := sha256.Sum256(leaf.Raw)
	p := &Peer{Hash: hex.EncodeToString(sum[:]), DNS: leaf.DNSNames, Subject: leaf.Subject.String()}
	for _, u := range leaf.URIs {
		p.URIs = append(p.URIs, u.String())
	}
	if id, err := spiffe.FromCertificate(leaf); err == nil {
		p.Principal = id.String()
	}
	return p
}
