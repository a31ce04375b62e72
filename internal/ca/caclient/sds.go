package caclient

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// SDS secret names, as Istio's agent serves them.
const (
	// SecretDefault is the workload's certificate chain and key.
	SecretDefault = "default"
	// SecretRootCA is the trust bundle, as a validation context.
	SecretRootCA = "ROOTCA"
)

// Secrets exports the current certificate as Envoy SDS secrets:
// "default" (TlsCertificate with the inline chain and PKCS#8 key) and
// "ROOTCA" (ValidationContext with the inline trust bundle). It returns
// nil before the first certificate. The messages are new on every call.
func (r *Rotator) Secrets() []*tlsv3.Secret {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cert == nil {
		return nil
	}
	inline := func(b []byte) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: append([]byte(nil), b...)}}
	}
	return []*tlsv3.Secret{
		{
			Name: SecretDefault,
			Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
				CertificateChain: inline(encodeCerts(r.chain)),
				PrivateKey:       inline(r.keyPEM),
			}},
		},
		{
			Name: SecretRootCA,
			Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: inline(encodeCerts(r.roots)),
			}},
		},
	}
}
