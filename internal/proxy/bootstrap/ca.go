package bootstrap

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// CA configures how weft-proxy obtains its workload identity, as Istio's
// pilot-agent does: a certificate for
// spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount> from weftd's
// certificate service, kept fresh by a rotator and served to the data
// plane as the SDS secrets "default" and "ROOTCA". Without Address the
// proxy has no identity and mesh mTLS is off for it.
type CA struct {
	// Address is weftd's certificate service (host:15012).
	Address string `json:"address"`
	// ServerName is the name weftd's serving certificate must carry;
	// default the host part of Address.
	ServerName string `json:"serverName"`
	// RootCertFile holds the roots that verify weftd.
	RootCertFile string `json:"rootCertFile"`
	// RootURL, when RootCertFile is not set, is weftd's admin URL of the
	// root bundle (http://weftd:15014/api/v1/ca/root), fetched at start.
	// It is an explicit choice to trust that (unauthenticated) channel.
	RootURL string `json:"rootURL"`
	// TokenFile is the bootstrap token that authenticates the first
	// request (renewals are authenticated by the current certificate).
	TokenFile string `json:"tokenFile"`
	// TrustDomain of the identity; default cluster.local.
	TrustDomain string `json:"trustDomain"`
	// CertTTL is the lifetime to request; 0 lets weftd choose.
	CertTTL Duration `json:"certTTL"`
	// CredentialDir serves the SDS secrets a Gateway names by
	// credentialName from files: DIR/NAME/tls.crt, tls.key and ca.crt
	// (a Kubernetes TLS secret's keys). Independent of Address.
	CredentialDir string `json:"credentialDir"`
}

// Enabled reports whether the proxy obtains an identity.
func (c *CA) Enabled() bool { return c.Address != "" }

// validate checks the CA section; node gives the identity's parts.
func (c *CA) validate(node Node) []error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	if _, _, err := net.SplitHostPort(c.Address); err != nil {
		errs = append(errs, fmt.Errorf("ca.address: %q is not host:port: %v", c.Address, err))
	}
	switch {
	case c.RootCertFile != "" && c.RootURL != "":
		errs = append(errs, errors.New("ca.rootCertFile and ca.rootURL: set only one"))
	case c.RootCertFile == "" && c.RootURL == "":
		errs = append(errs, errors.New("ca.rootCertFile: required (or ca.rootURL to fetch weftd's root bundle)"))
	case c.RootURL != "":
		if u, err := url.Parse(c.RootURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("ca.rootURL: %q is not an http(s) URL", c.RootURL))
		}
	}
	if c.TokenFile == "" {
		errs = append(errs, errors.New("ca.tokenFile: required with ca.address (the bootstrap token)"))
	}
	if c.TrustDomain != "" && strings.ContainsAny(c.TrustDomain, "/:") {
		errs = append(errs, fmt.Errorf("ca.trustDomain: %q is not a valid trust domain", c.TrustDomain))
	}
	if node.Namespace == "" || node.ServiceAccount == "" {
		errs = append(errs, errors.New("ca: node.namespace and node.serviceAccount are required: they make the workload's SPIFFE ID"))
	}
	if c.CertTTL < 0 {
		errs = append(errs, errors.New("ca.certTTL: must not be negative"))
	}
	return errs
}
