// Package spiffe parses and formats the workload identities Weft's CA
// issues: SPIFFE IDs of the form spiffe://<trust-domain>/ns/<ns>/sa/<sa>,
// as Istio uses them. It depends only on the standard library so that both
// weftd and weft-proxy can import it.
package spiffe

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// DefaultTrustDomain is the trust domain used when none is configured.
const DefaultTrustDomain = "cluster.local"

// ID is a Kubernetes-style workload identity: a service account in a
// namespace, within a trust domain.
type ID struct {
	TrustDomain    string
	Namespace      string
	ServiceAccount string
}

// String returns the SPIFFE URI, spiffe://<td>/ns/<ns>/sa/<sa>.
func (id ID) String() string {
	return "spiffe://" + id.TrustDomain + "/ns/" + id.Namespace + "/sa/" + id.ServiceAccount
}

// URL returns the SPIFFE ID as a URL, for use as a URI SAN.
func (id ID) URL() *url.URL {
	return &url.URL{Scheme: "spiffe", Host: id.TrustDomain, Path: "/ns/" + id.Namespace + "/sa/" + id.ServiceAccount}
}

// Validate reports whether every part of id is well formed.
func (id ID) Validate() error {
	if err := ValidateTrustDomain(id.TrustDomain); err != nil {
		return err
	}
	if err := validateSegment("namespace", id.Namespace); err != nil {
		return err
	}
	return validateSegment("service account", id.ServiceAccount)
}

// ValidateTrustDomain checks a trust domain name: lower-case letters,
// digits, '.', '-' and '_', at most 255 characters.
func ValidateTrustDomain(td string) error {
	if td == "" {
		return errors.New("empty trust domain")
	}
	if len(td) > 255 {
		return fmt.Errorf("trust domain %.20q... longer than 255 characters", td)
	}
	for _, r := range td {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return fmt.Errorf("trust domain %q: character %q not allowed (lower-case letters, digits, '.', '-', '_')", td, r)
		}
	}
	return nil
}

// validateSegment checks a namespace or service account name: a path
// segment made of SPIFFE's allowed characters, not "." or "..".
func validateSegment(what, s string) error {
	if s == "" {
		return fmt.Errorf("empty %s", what)
	}
	if len(s) > 253 {
		return fmt.Errorf("%s %.20q... longer than 253 characters", what, s)
	}
	if s == "." || s == ".." {
		return fmt.Errorf("%s %q not allowed", what, s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return fmt.Errorf("%s %q: character %q not allowed", what, s, r)
		}
	}
	return nil
}

// Parse parses spiffe://<td>/ns/<ns>/sa/<sa>. Other SPIFFE path shapes,
// query strings, fragments, ports and user info are rejected.
func Parse(s string) (ID, error) {
	rest, ok := strings.CutPrefix(s, "spiffe://")
	if !ok {
		return ID{}, fmt.Errorf("%q is not a SPIFFE ID: want spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>", s)
	}
	if strings.ContainsAny(rest, "?#%@:") {
		return ID{}, fmt.Errorf("SPIFFE ID %q: query, fragment, escapes, port and user info are not allowed", s)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 5 || parts[1] != "ns" || parts[3] != "sa" {
		return ID{}, fmt.Errorf("SPIFFE ID %q: path must be /ns/<namespace>/sa/<service-account>", s)
	}
	id := ID{TrustDomain: parts[0], Namespace: parts[2], ServiceAccount: parts[4]}
	if err := id.Validate(); err != nil {
		return ID{}, fmt.Errorf("SPIFFE ID %q: %w", s, err)
	}
	return id, nil
}

// FromURIs returns the single SPIFFE ID among a certificate's or CSR's URI
// SANs. Zero or several URI SANs are an error.
func FromURIs(uris []*url.URL) (ID, error) {
	switch len(uris) {
	case 0:
		return ID{}, errors.New("no URI SAN: want exactly one SPIFFE ID")
	case 1:
		return Parse(uris[0].String())
	default:
		return ID{}, fmt.Errorf("%d URI SANs: want exactly one SPIFFE ID", len(uris))
	}
}

// FromCertificate returns the SPIFFE ID of a workload certificate.
func FromCertificate(c *x509.Certificate) (ID, error) {
	return FromURIs(c.URIs)
}
