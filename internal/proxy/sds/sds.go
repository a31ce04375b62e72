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

	"github.com/weftmesh/weft/internal/ca/caclient"
	"github.com/weftmesh/weft/internal/ca/spiffe"
)

// Secret names served locally, as Istio's agent names them.
const (
	SecretDefault = caclient.SecretDefault
	SecretRootCA  = caclient.SecretRootCA
)

// Store serves the local SDS secrets: "default" and "ROOTCA" from a
// rotator, other names (a Gateway's credentialName) from a credential
// directory. A nil *Store serves nothing: lookups fail with ErrNoIdentity.
type Store struct {
	rot   *caclient.Rotator
	creds *credentialDir
}

// ErrNoIdentity is returned by lookups on a proxy started without a CA.
var ErrNoIdentity = errors.New("sds: no workload identity (weft-proxy runs without --ca-address)")

// New returns a store serving rot's certificate and bundle.
func New(rot *caclient.Rotator) *Store { return NewStore(rot, "") }

// NewStore returns a store serving rot's certificate and bundle (rot may
// be nil: no workload identity) and, if credentialDir is set, gateway
// credentials from that directory (see credentialDir). It returns nil when
// there is nothing to serve.
func NewStore(rot *caclient.Rotator, credentialDir string) *Store {
	if rot == nil && credentialDir == "" {
		return nil
	}
	s := &Store{rot: rot}
	if credentialDir != "" {
		s.creds = newCredentialDir(credentialDir)
	}
	return s
}

// HasIdentity reports whether the store serves a workload identity
// ("default" and "ROOTCA").
func (s *Store) HasIdentity() bool { return s != nil && s.rot != nil }

// Certificate returns the current certificate of the named TLS
// certificate secret.
func (s *Store) Certificate(name string) (*tls.Certificate, error) {
	if name != SecretDefault {
		if s != nil && s.creds != nil {
			return s.creds.certificate(name)
		}
		return nil, fmt.Errorf("sds: secret %q not found (weft-proxy serves %q and %q, and credentials with --credential-dir)", name, SecretDefault, SecretRootCA)
	}
	if !s.HasIdentity() {
		return nil, ErrNoIdentity
	}
	c := s.rot.Certificate()
	if c == nil {
		return nil, errors.New("sds: workload certificate not issued yet")
	}
	return c, nil
}

// Roots returns the current trust bundle of the named validation secret.
func (s *Store) Roots(name string) (*x509.CertPool, error) {
	if name != SecretRootCA {
		if s != nil && s.creds != nil {
			return s.creds.pool(name)
		}
		return nil, fmt.Errorf("sds: validation secret %q not found (weft-proxy serves %q, and credentials with --credential-dir)", name, SecretRootCA)
	}
	if !s.HasIdentity() {
		return nil, ErrNoIdentity
	}
	p := s.rot.Roots()
	if p == nil {
		return nil, errors.New("sds: trust bundle not received yet")
	}
	return p, nil
}

// Identity returns the proxy's SPIFFE ID, or "" without a store.
func (s *Store) Identity() string {
	if !s.HasIdentity() {
		return ""
	}
	return s.rot.Status().Identity
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
