// Package authn authenticates callers of Weft's certificate service: it
// turns the credentials a request carries (a bearer token, a verified
// client certificate) into the workload identity the caller may obtain a
// certificate for.
//
// Local mode uses TokenStore, per-workload bootstrap tokens that `weft demo`
// hands to proxies. The Kubernetes mode will implement Authenticator with
// a TokenReview of the service-account token; CertAuthenticator lets a
// workload renew with the certificate it already holds.
package authn

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"

	"github.com/weftmesh/weft/internal/ca/spiffe"
)

// ErrUnauthenticated is wrapped by every error that means "the caller did
// not prove an identity" (gRPC Unauthenticated): no credentials, an
// unknown or revoked token, an untrusted certificate.
var ErrUnauthenticated = errors.New("unauthenticated")

// Credentials is what a request carries to prove who sent it.
type Credentials struct {
	// BearerToken is the token of an "Authorization: Bearer <token>"
	// header, or empty.
	BearerToken string
	// VerifiedChains are the client certificate chains the TLS handshake
	// verified (tls.ConnectionState.VerifiedChains), or nil.
	VerifiedChains [][]*x509.Certificate
	// RemoteAddr is the caller's address, for logs.
	RemoteAddr net.Addr
}

// Authenticator maps credentials to the identity of the caller. An error
// that wraps ErrUnauthenticated rejects the caller; any other error is an
// internal failure (for instance the Kubernetes API being unreachable).
type Authenticator interface {
	Authenticate(ctx context.Context, cred Credentials) (spiffe.ID, error)
}

// Chain tries authenticators in order and returns the first identity; if
// all reject the caller it returns an error listing why.
type Chain []Authenticator

// Authenticate implements Authenticator.
func (c Chain) Authenticate(ctx context.Context, cred Credentials) (spiffe.ID, error) {
	var errs []error
	for _, a := range c {
		id, err := a.Authenticate(ctx, cred)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, ErrUnauthenticated) {
			return spiffe.ID{}, err
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return spiffe.ID{}, fmt.Errorf("%w: no authenticator configured", ErrUnauthenticated)
	}
	return spiffe.ID{}, errors.Join(errs...)
}

// CertAuthenticator accepts a client certificate that the TLS layer
// verified against the mesh's roots and that carries one SPIFFE ID in
// TrustDomain: a workload renewing with the certificate it holds. The TLS
// server must request client certificates (tls.VerifyClientCertIfGiven)
// with the CA's roots as ClientCAs.
type CertAuthenticator struct {
	TrustDomain string
}

// Authenticate implements Authenticator.
func (a CertAuthenticator) Authenticate(_ context.Context, cred Credentials) (spiffe.ID, error) {
	if len(cred.VerifiedChains) == 0 || len(cred.VerifiedChains[0]) == 0 {
		return spiffe.ID{}, fmt.Errorf("%w: no verified client certificate", ErrUnauthenticated)
	}
	leaf := cred.VerifiedChains[0][0]
	id, err := spiffe.FromCertificate(leaf)
	if err != nil {
		return spiffe.ID{}, fmt.Errorf("%w: client certificate: %v", ErrUnauthenticated, err)
	}
	if id.TrustDomain != a.TrustDomain {
		return spiffe.ID{}, fmt.Errorf("%w: client certificate identity %s is outside trust domain %q", ErrUnauthenticated, id, a.TrustDomain)
	}
	return id, nil
}
