package translate

import (
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tls "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	security "istio.io/api/security/v1beta1"

	"github.com/weftmesh/weft/internal/model"
)

// mtlsMode is the inbound mutual TLS mode of a workload port.
type mtlsMode int

const (
	// mtlsPermissive accepts mesh mTLS and plain text (Istio's default).
	mtlsPermissive mtlsMode = iota
	// mtlsStrict accepts mesh mTLS only.
	mtlsStrict
	// mtlsDisable accepts plain text only.
	mtlsDisable
)

// mtlsPolicy is the effective PeerAuthentication of one workload: a
// workload-wide mode and per-port overrides (keyed by workload port).
type mtlsPolicy struct {
	mode  mtlsMode
	ports map[uint32]mtlsMode
}

// forPort returns the mode of a workload port.
func (p mtlsPolicy) forPort(port uint32) mtlsMode {
	if m, ok := p.ports[port]; ok {
		return m
	}
	return p.mode
}

// newMTLSPolicy resolves the PeerAuthentications that apply to proxy the
// way Istio does: the mesh-wide policy (root namespace, no selector), then
// the namespace-wide one (no selector), then the oldest (here: first by
// name) whose selector matches the workload, each overriding the modes
// the previous left UNSET; port-level modes come from the workload
// policy. Without any, the mode is PERMISSIVE.
func newMTLSPolicy(snap *model.Snapshot, proxy *model.Proxy) mtlsPolicy {
	return peerAuthentications(snap).policy(proxy.Namespace, proxy.Labels)
}

// peerAuthIndex holds a snapshot's PeerAuthentications.
type peerAuthIndex []*model.Config

func peerAuthentications(snap *model.Snapshot) peerAuthIndex {
	return peerAuthIndex(snap.List(model.KindPeerAuthentication))
}

// policy resolves the mTLS policy of a workload in namespace with labels.
func (ix peerAuthIndex) policy(namespace string, labels map[string]string) mtlsPolicy {
	var mesh, ns, workload *security.PeerAuthentication
	for _, c := range ix {
		pa, ok := c.Spec.(*security.PeerAuthentication)
		if !ok {
			continue
		}
		switch {
		case pa.Selector != nil && len(pa.Selector.MatchLabels) > 0:
			if c.Namespace == namespace && workload == nil && model.SelectorMatches(pa.Selector.MatchLabels, labels) {
				workload = pa
			}
		case c.Namespace == namespace:
			if ns == nil {
				ns = pa
			}
		case c.Namespace == RootNamespace:
			if mesh == nil {
				mesh = pa
			}
		}
	}
	p := mtlsPolicy{mode: mtlsPermissive}
	for _, pa := range []*security.PeerAuthentication{mesh, ns, workload} {
		if m, ok := modeOf(pa.GetMtls()); ok {
			p.mode = m
		}
	}
	for port, pm := range workload.GetPortLevelMtls() {
		if m, ok := modeOf(pm); ok {
			if p.ports == nil {
				p.ports = map[uint32]mtlsMode{}
			}
			p.ports[port] = m
		}
	}
	return p
}

func modeOf(m *security.PeerAuthentication_MutualTLS) (mtlsMode, bool) {
	switch m.GetMode() {
	case security.PeerAuthentication_MutualTLS_PERMISSIVE:
		return mtlsPermissive, true
	case security.PeerAuthentication_MutualTLS_STRICT:
		return mtlsStrict, true
	case security.PeerAuthentication_MutualTLS_DISABLE:
		return mtlsDisable, true
	}
	return 0, false
}

// ALPN lists of Istio's inbound mTLS filter chains (Istio's
// allIstioMtlsALPNs, mtlsHTTPALPNs and mtlsTCPWithMxcALPNs): client
// sidecars offer "istio-peer-exchange", "istio" on TCP connections and,
// for HTTP requests, "istio-http/1.0", "istio-http/1.1" or "istio-h2"
// before "istio" (the istio.alpn filter).
var (
	allIstioMTLSALPN  = []string{"istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1", "istio-h2"}
	istioMTLSHTTPALPN = []string{"istio-http/1.0", "istio-http/1.1", "istio-h2"}
	istioMTLSTCPALPN  = []string{"istio-peer-exchange", "istio"}
)

// mtlsMatch is the filter chain match of mesh mTLS connections to a port
// (0: any port). In PERMISSIVE mode only TLS offering one of Istio's ALPN
// values is mesh traffic (an application's own TLS passes through as
// plain text); in STRICT mode every TLS connection must be mesh mTLS.
func mtlsMatch(port uint32, mode mtlsMode) *listener.FilterChainMatch {
	m := &listener.FilterChainMatch{TransportProtocol: "tls"}
	if port != 0 {
		m.DestinationPort = u32(port)
	}
	if mode == mtlsPermissive {
		m.ApplicationProtocols = allIstioMTLSALPN
	}
	return m
}

// mtlsSniffMatches are the matches of a port of unknown protocol under
// mesh mTLS, as Istio's: HTTP requests (Istio's HTTP ALPN values) to the
// HTTP chain, other mesh connections (PERMISSIVE: offering Istio's TCP
// ALPN; STRICT: any TLS) to the TCP chain.
func mtlsSniffMatches(port uint32, mode mtlsMode) (http, tcp *listener.FilterChainMatch) {
	http = &listener.FilterChainMatch{DestinationPort: u32(port), TransportProtocol: "tls", ApplicationProtocols: istioMTLSHTTPALPN}
	tcp = &listener.FilterChainMatch{DestinationPort: u32(port), TransportProtocol: "tls"}
	if mode == mtlsPermissive {
		tcp.ApplicationProtocols = istioMTLSTCPALPN
	}
	return http, tcp
}

// inboundMTLSSocket is the server side of mesh mTLS: the workload
// certificate ("default") and the mesh roots ("ROOTCA") from SDS, a client
// certificate required. HTTP ports offer h2 and http/1.1, TCP ports
// istio-peer-exchange too (Istio's ALPNDownstreamWithMxc).
func inboundMTLSSocket(http bool) *core.TransportSocket {
	ctx := &tls.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tls.SdsSecretConfig{{Name: SecretDefault, SdsConfig: adsSource()}},
		ValidationContextType: &tls.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tls.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tls.CertificateValidationContext{},
				ValidationContextSdsSecretConfig: &tls.SdsSecretConfig{Name: SecretRootCA, SdsConfig: adsSource()},
			},
		},
	}
	if http {
		ctx.AlpnProtocols = []string{"h2", "http/1.1"}
	} else {
		// Istio's TCP chains also accept its metadata exchange protocol,
		// so that sidecars exchange peer metadata for TCP telemetry.
		ctx.AlpnProtocols = []string{"istio-peer-exchange", "h2", "http/1.1"}
	}
	return &core.TransportSocket{Name: transportTLS, ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: toAny(&tls.DownstreamTlsContext{
		CommonTlsContext:         ctx,
		RequireClientCertificate: wrapBool(true),
	})}}
}
