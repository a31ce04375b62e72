package sds

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/weftmesh/weft/internal/proxy/router"
)

// istioALPN are the protocols Istio offers on mesh connections for its
// metadata exchange; weft-proxy does not implement that exchange, so a
// server prefers h2 or http/1.1 to them.
var istioALPN = map[string]bool{"istio-peer-exchange": true, "istio": true}

// UsesSDS reports whether a TLS context names SDS secrets (and so needs
// the local workload identity).
func UsesSDS(ctx *tlsv3.CommonTlsContext) bool {
	return len(ctx.GetTlsCertificateSdsSecretConfigs()) > 0 || ctx.GetValidationContextSdsSecretConfig() != nil ||
		ctx.GetCombinedValidationContext().GetValidationContextSdsSecretConfig() != nil
}

// UpstreamConfig builds a client TLS configuration from an Envoy
// UpstreamTlsContext. Certificates and the trust bundle are looked up in s
// at each handshake. The server certificate is verified (chain and
// subject alternative names, not the host name) only when a validation
// context is given, as Envoy does. appProtocol ("h2" or "http/1.1", or
// "") is appended to the context's ALPN list so that a weft-proxy server
// can select the HTTP version.
func UpstreamConfig(field string, utc *tlsv3.UpstreamTlsContext, s *Store, appProtocol string) (*tls.Config, error) {
	ctx := utc.GetCommonTlsContext()
	getCert, err := certificateSource(field+".common_tls_context", ctx, s)
	if err != nil {
		return nil, err
	}
	v, err := validationOf(field+".common_tls_context", ctx, s)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: utc.GetSni(),
		// Envoy verifies SANs, never the host name; VerifyPeerCertificate
		// does the chain and SAN checks.
		InsecureSkipVerify: true, //nolint:gosec // verification is done below
		NextProtos:         append([]string(nil), ctx.GetAlpnProtocols()...),
	}
	if appProtocol != "" && !contains(cfg.NextProtos, appProtocol) {
		cfg.NextProtos = append(cfg.NextProtos, appProtocol)
	}
	if getCert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return getCert() }
	}
	if v != nil {
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error { return v.verify(raw) }
	}
	return cfg, nil
}

// DownstreamConfig builds a server TLS configuration from an Envoy
// DownstreamTlsContext: the certificate from SDS or inline/file sources,
// client certificates required when require_client_certificate is set and
// verified against the validation context.
func DownstreamConfig(field string, dtc *tlsv3.DownstreamTlsContext, s *Store) (*tls.Config, error) {
	ctx := dtc.GetCommonTlsContext()
	getCert, err := certificateSource(field+".common_tls_context", ctx, s)
	if err != nil {
		return nil, err
	}
	if getCert == nil {
		return nil, fmt.Errorf("%s.common_tls_context: no certificate (tls_certificates or tls_certificate_sds_secret_configs)", field)
	}
	v, err := validationOf(field+".common_tls_context", ctx, s)
	if err != nil {
		return nil, err
	}
	require := dtc.GetRequireClientCertificate().GetValue()
	if require && v == nil {
		return nil, fmt.Errorf("%s.require_client_certificate: needs a validation context to verify client certificates", field)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	// Go's server picks by its own order: HTTP versions first, Istio's
	// metadata-exchange protocols last (accepted so that a client offering
	// only those, such as a TCP cluster, still connects).
	var istio []string
	for _, p := range ctx.GetAlpnProtocols() {
		if istioALPN[p] {
			istio = append(istio, p)
		} else {
			cfg.NextProtos = append(cfg.NextProtos, p)
		}
	}
	if len(cfg.NextProtos) == 0 {
		cfg.NextProtos = []string{"h2", "http/1.1"}
	}
	cfg.NextProtos = append(cfg.NextProtos, istio...)
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return getCert() }
	if v != nil {
		cfg.ClientAuth = tls.RequestClientCert
		if require {
			cfg.ClientAuth = tls.RequireAnyClientCert
		}
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return nil // optional and absent
			}
			return v.verify(raw)
		}
	}
	return cfg, nil
}

// certificateSource returns a function giving the certificate to present,
// or nil when the context has none.
func certificateSource(field string, ctx *tlsv3.CommonTlsContext, s *Store) (func() (*tls.Certificate, error), error) {
	if sds := ctx.GetTlsCertificateSdsSecretConfigs(); len(sds) > 0 {
		if len(sds) > 1 || len(ctx.GetTlsCertificates()) > 0 {
			return nil, fmt.Errorf("%s: only one certificate (one SDS secret, or inline) is supported", field)
		}
		name := sds[0].GetName()
		if sds[0].GetSdsConfig() != nil && sds[0].GetSdsConfig().GetAds() == nil && sds[0].GetSdsConfig().GetApiConfigSource() == nil {
			return nil, fmt.Errorf("%s.tls_certificate_sds_secret_configs[0].sds_config: only ADS or the local agent are supported", field)
		}
		return func() (*tls.Certificate, error) { return s.Certificate(name) }, nil
	}
	certs := ctx.GetTlsCertificates()
	if len(certs) == 0 {
		return nil, nil
	}
	if len(certs) > 1 {
		return nil, fmt.Errorf("%s.tls_certificates: only one certificate is supported", field)
	}
	chain, err := dataSource(field+".tls_certificates[0].certificate_chain", certs[0].GetCertificateChain())
	if err != nil {
		return nil, err
	}
	key, err := dataSource(field+".tls_certificates[0].private_key", certs[0].GetPrivateKey())
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(chain, key)
	if err != nil {
		return nil, fmt.Errorf("%s.tls_certificates[0]: %v", field, err)
	}
	return func() (*tls.Certificate, error) { return &cert, nil }, nil
}

// validation is a compiled validation context.
type validation struct {
	// roots returns the trust bundle; nil means no chain verification
	// (only SAN matching), which Envoy allows.
	roots func() (*x509.CertPool, error)
	sans  []sanMatcher
}

// validationOf compiles the context's validation settings, or returns nil
// when there are none (no verification, Envoy's default).
func validationOf(field string, ctx *tlsv3.CommonTlsContext, s *Store) (*validation, error) {
	var vc *tlsv3.CertificateValidationContext
	var sdsName string
	switch t := ctx.GetValidationContextType().(type) {
	case nil:
		return nil, nil
	case *tlsv3.CommonTlsContext_ValidationContext:
		vc = t.ValidationContext
	case *tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig:
		sdsName = t.ValidationContextSdsSecretConfig.GetName()
	case *tlsv3.CommonTlsContext_CombinedValidationContext:
		vc = t.CombinedValidationContext.GetDefaultValidationContext()
		sdsName = t.CombinedValidationContext.GetValidationContextSdsSecretConfig().GetName()
	default:
		return nil, fmt.Errorf("%s: validation context %T is not supported", field, t)
	}
	field += ".validation_context"
	v := &validation{}
	if sdsName != "" {
		v.roots = func() (*x509.CertPool, error) { return s.Roots(sdsName) }
	}
	if vc.GetTrustedCa() != nil {
		if sdsName != "" {
			return nil, fmt.Errorf("%s.trusted_ca: set together with an SDS validation secret", field)
		}
		pem, err := dataSource(field+".trusted_ca", vc.GetTrustedCa())
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s.trusted_ca: no PEM certificate", field)
		}
		v.roots = func() (*x509.CertPool, error) { return pool, nil }
	}
	for i, m := range vc.GetMatchTypedSubjectAltNames() {
		sm, err := compileString(fmt.Sprintf("%s.match_typed_subject_alt_names[%d].matcher", field, i), m.GetMatcher())
		if err != nil {
			return nil, err
		}
		v.sans = append(v.sans, sanMatcher{kind: m.GetSanType(), match: sm})
	}
	for i, m := range vc.GetMatchSubjectAltNames() { //nolint:staticcheck // deprecated but still emitted by some control planes
		sm, err := compileString(fmt.Sprintf("%s.match_subject_alt_names[%d]", field, i), m)
		if err != nil {
			return nil, err
		}
		v.sans = append(v.sans, sanMatcher{kind: tlsv3.SubjectAltNameMatcher_SAN_TYPE_UNSPECIFIED, match: sm})
	}
	if len(vc.GetVerifyCertificateSpki()) > 0 || len(vc.GetVerifyCertificateHash()) > 0 || vc.GetCrl() != nil {
		return nil, fmt.Errorf("%s: verify_certificate_spki, verify_certificate_hash and crl are not supported", field)
	}
	if v.roots == nil && len(v.sans) == 0 {
		return nil, nil
	}
	return v, nil
}

// verify checks a presented chain against the roots and the SAN matchers
// (any one matcher must match).
func (v *validation) verify(raw [][]byte) error {
	if len(raw) == 0 {
		return errors.New("peer presented no certificate")
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, b := range raw {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return fmt.Errorf("peer certificate %d: %w", i, err)
		}
		certs[i] = c
	}
	if v.roots != nil {
		roots, err := v.roots()
		if err != nil {
			return err
		}
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: time.Now(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return fmt.Errorf("peer certificate: %w", err)
		}
	}
	if len(v.sans) == 0 {
		return nil
	}
	for _, m := range v.sans {
		if m.matches(certs[0]) {
			return nil
		}
	}
	return fmt.Errorf("peer certificate SANs %v do not match the expected subject alternative names", sanList(certs[0]))
}

type sanMatcher struct {
	kind  tlsv3.SubjectAltNameMatcher_SanType
	match func(string) bool
}

func (m sanMatcher) matches(c *x509.Certificate) bool {
	anyType := m.kind == tlsv3.SubjectAltNameMatcher_SAN_TYPE_UNSPECIFIED
	if anyType || m.kind == tlsv3.SubjectAltNameMatcher_URI {
		for _, u := range c.URIs {
			if m.match(u.String()) {
				return true
			}
		}
	}
	if anyType || m.kind == tlsv3.SubjectAltNameMatcher_DNS {
		for _, d := range c.DNSNames {
			if m.match(d) {
				return true
			}
		}
	}
	if anyType || m.kind == tlsv3.SubjectAltNameMatcher_EMAIL {
		for _, e := range c.EmailAddresses {
			if m.match(e) {
				return true
			}
		}
	}
	if anyType || m.kind == tlsv3.SubjectAltNameMatcher_IP_ADDRESS {
		for _, ip := range c.IPAddresses {
			if m.match(ip.String()) {
				return true
			}
		}
	}
	return false
}

func sanList(c *x509.Certificate) []string {
	var out []string
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	out = append(out, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

// compileString compiles an Envoy StringMatcher.
func compileString(field string, m *matcherv3.StringMatcher) (func(string) bool, error) {
	sm, err := router.CompileStringMatcher(field, m)
	if err != nil {
		return nil, err
	}
	return sm.Match, nil
}

// dataSource reads an inline or file data source.
func dataSource(field string, d *corev3.DataSource) ([]byte, error) {
	switch s := d.GetSpecifier().(type) {
	case *corev3.DataSource_InlineBytes:
		return s.InlineBytes, nil
	case *corev3.DataSource_InlineString:
		return []byte(s.InlineString), nil
	case *corev3.DataSource_Filename:
		b, err := os.ReadFile(s.Filename)
		if err != nil {
			return nil, fmt.Errorf("%s.filename: %v", field, err)
		}
		return b, nil
	case nil:
		return nil, fmt.Errorf("%s: empty", field)
	}
	return nil, fmt.Errorf("%s: %T is not supported (inline or filename)", field, d.GetSpecifier())
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
