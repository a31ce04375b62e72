package translate

import (
	"sort"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rawbuffer "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tls "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/model"
)

// SDS secret names of the workload identity, as in Istio.
const (
	// SecretDefault is the workload's certificate and key.
	SecretDefault = "default"
	// SecretRootCA is the mesh's trust bundle.
	SecretRootCA = "ROOTCA"
)

// Transport socket extension names.
const (
	transportTLS       = "envoy.transport_sockets.tls"
	transportRawBuffer = "envoy.transport_sockets.raw_buffer"
)

// istioALPN is what Istio sidecars offer on mesh mTLS connections.
var istioALPN = []string{"istio-peer-exchange", "istio"}

// applyUpstreamTLS sets the cluster's transport socket from the policy's
// TLS settings. Without settings, a service inside the mesh gets Istio's
// auto mTLS: endpoints labelled tlsMode=istio are reached over mesh mTLS,
// the others in plain text.
func applyUpstreamTLS(c *cluster.Cluster, t *target, eps []*model.Endpoint) {
	settings := t.policy.tls
	if settings == nil {
		if t.service.MeshExternal || t.service.Resolution == model.ResolutionPassthrough {
			return
		}
		c.TransportSocketMatches = []*cluster.Cluster_TransportSocketMatch{
			{
				Name:            "tlsMode-istio",
				Match:           &structpb.Struct{Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue(model.TLSModeIstio)}},
				TransportSocket: istioMutualSocket(istioSNI(t.port.Number, t.subset, t.service.Hostname), identities(t, eps)),
			},
			{
				Name:            "tlsMode-disabled",
				Match:           &structpb.Struct{},
				TransportSocket: rawBufferSocket(),
			},
		}
		return
	}
	switch settings.Mode {
	case networking.ClientTLSSettings_ISTIO_MUTUAL:
		c.TransportSocket = istioMutualSocket(istioSNI(t.port.Number, t.subset, t.service.Hostname), identities(t, eps))
	case networking.ClientTLSSettings_SIMPLE, networking.ClientTLSSettings_MUTUAL:
		c.TransportSocket = tlsSocket(upstreamTLSContext(settings, t.service.Hostname))
	}
}

// upstreamTLSContext builds the client TLS context of SIMPLE or MUTUAL
// mode: files or a credentialName (an SDS secret) for the client
// certificate, caCertificates for server validation.
func upstreamTLSContext(s *networking.ClientTLSSettings, host string) *tls.UpstreamTlsContext {
	ctx := &tls.CommonTlsContext{}
	if s.Mode == networking.ClientTLSSettings_MUTUAL {
		switch {
		case s.CredentialName != "":
			ctx.TlsCertificateSdsSecretConfigs = []*tls.SdsSecretConfig{{Name: s.CredentialName, SdsConfig: adsSource()}}
		case s.ClientCertificate != "":
			ctx.TlsCertificates = []*tls.TlsCertificate{{
				CertificateChain: fileSource(s.ClientCertificate),
				PrivateKey:       fileSource(s.PrivateKey),
			}}
		}
	}
	skip := s.InsecureSkipVerify != nil && s.InsecureSkipVerify.Value
	if !skip {
		vc := &tls.CertificateValidationContext{}
		if s.CaCertificates != "" {
			vc.TrustedCa = fileSource(s.CaCertificates)
		}
		for _, san := range s.SubjectAltNames {
			vc.MatchTypedSubjectAltNames = append(vc.MatchTypedSubjectAltNames, &tls.SubjectAltNameMatcher{
				SanType: tls.SubjectAltNameMatcher_DNS,
				Matcher: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: san}},
			})
		}
		switch {
		case s.CaCertificates == "" && s.CredentialName != "":
			ctx.ValidationContextType = &tls.CommonTlsContext_ValidationContextSdsSecretConfig{
				ValidationContextSdsSecretConfig: &tls.SdsSecretConfig{Name: s.CredentialName + "-cacert", SdsConfig: adsSource()},
			}
		case vc.TrustedCa != nil || len(vc.MatchTypedSubjectAltNames) > 0:
			ctx.ValidationContextType = &tls.CommonTlsContext_ValidationContext{ValidationContext: vc}
		}
	}
	sni := s.Sni
	if sni == "" && host != "" && host[0] != '*' {
		sni = host
	}
	return &tls.UpstreamTlsContext{CommonTlsContext: ctx, Sni: sni}
}

// identities lists the SPIFFE identities of the target's endpoints
// (those of its subset), sorted: the server certificates a client accepts.
func identities(t *target, eps []*model.Endpoint) []string {
	seen := map[string]bool{}
	var out []string
	for _, ep := range eps {
		if ep.ServiceAccount == "" || (t.labels != nil && !model.SelectorMatches(t.labels, ep.Labels)) {
			continue
		}
		id := SpiffeID(ep.Namespace, ep.ServiceAccount)
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// TrustDomain is the mesh's SPIFFE trust domain.
const TrustDomain = "cluster.local"

// SpiffeID is the identity of a service account:
// "spiffe://cluster.local/ns/NS/sa/SA".
func SpiffeID(namespace, serviceAccount string) string {
	return "spiffe://" + TrustDomain + "/ns/" + namespace + "/sa/" + serviceAccount
}

// istioMutualSocket is the client side of mesh mTLS: the workload
// certificate and the root CA come from SDS secrets "default" and "ROOTCA";
// the server must present one of the identities (when any are known).
func istioMutualSocket(sni string, identities []string) *core.TransportSocket {
	dvc := &tls.CertificateValidationContext{}
	for _, id := range identities {
		dvc.MatchTypedSubjectAltNames = append(dvc.MatchTypedSubjectAltNames, &tls.SubjectAltNameMatcher{
			SanType: tls.SubjectAltNameMatcher_URI,
			Matcher: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: id}},
		})
	}
	return tlsSocket(&tls.UpstreamTlsContext{
		CommonTlsContext: &tls.CommonTlsContext{
			AlpnProtocols:                  istioALPN,
			TlsCertificateSdsSecretConfigs: []*tls.SdsSecretConfig{{Name: SecretDefault, SdsConfig: adsSource()}},
			ValidationContextType: &tls.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tls.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext:         dvc,
					ValidationContextSdsSecretConfig: &tls.SdsSecretConfig{Name: SecretRootCA, SdsConfig: adsSource()},
				},
			},
		},
		Sni: sni,
	})
}

func tlsSocket(ctx *tls.UpstreamTlsContext) *core.TransportSocket {
	return &core.TransportSocket{Name: transportTLS, ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: toAny(ctx)}}
}

func rawBufferSocket() *core.TransportSocket {
	return &core.TransportSocket{Name: transportRawBuffer, ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: toAny(&rawbuffer.RawBuffer{})}}
}

func fileSource(path string) *core.DataSource {
	return &core.DataSource{Specifier: &core.DataSource_Filename{Filename: path}}
}

// downstreamTLSSocket builds a gateway server's TLS context from a
// Gateway server's SIMPLE, MUTUAL or OPTIONAL_MUTUAL settings (client
// certificates verified; required only for MUTUAL), or ISTIO_MUTUAL (mesh
// mTLS with the gateway's own workload identity).
func downstreamTLSSocket(s *networking.ServerTLSSettings) *core.TransportSocket {
	if s.Mode == networking.ServerTLSSettings_ISTIO_MUTUAL {
		return inboundMTLSSocket(true)
	}
	ctx := &tls.CommonTlsContext{AlpnProtocols: []string{"h2", "http/1.1"}}
	switch {
	case s.CredentialName != "":
		ctx.TlsCertificateSdsSecretConfigs = []*tls.SdsSecretConfig{{Name: s.CredentialName, SdsConfig: adsSource()}}
	case s.ServerCertificate != "":
		ctx.TlsCertificates = []*tls.TlsCertificate{{
			CertificateChain: fileSource(s.ServerCertificate),
			PrivateKey:       fileSource(s.PrivateKey),
		}}
	}
	mutual := s.Mode == networking.ServerTLSSettings_MUTUAL
	if mutual || s.Mode == networking.ServerTLSSettings_OPTIONAL_MUTUAL {
		switch {
		case s.CaCertificates != "":
			ctx.ValidationContextType = &tls.CommonTlsContext_ValidationContext{ValidationContext: &tls.CertificateValidationContext{TrustedCa: fileSource(s.CaCertificates)}}
		case s.CredentialName != "":
			ctx.ValidationContextType = &tls.CommonTlsContext_ValidationContextSdsSecretConfig{
				ValidationContextSdsSecretConfig: &tls.SdsSecretConfig{Name: s.CredentialName + "-cacert", SdsConfig: adsSource()},
			}
		}
	}
	dctx := &tls.DownstreamTlsContext{CommonTlsContext: ctx}
	if mutual {
		dctx.RequireClientCertificate = wrapBool(true)
	}
	return &core.TransportSocket{Name: transportTLS, ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: toAny(dctx)}}
}
