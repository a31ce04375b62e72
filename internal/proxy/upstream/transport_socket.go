package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"sync/atomic"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/ca/spiffe"
	"github.com/weftmesh/weft/internal/proxy/sds"
)

// Transport socket names and the TLS context type.
const (
	rawBufferSocket = "envoy.transport_sockets.raw_buffer"
	upstreamTLSType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
)

// socketMatch is a compiled transport_socket_matches entry: endpoints
// whose "envoy.transport_socket_match" metadata holds every key of match
// use tls (nil: plaintext).
type socketMatch struct {
	name  string
	match map[string]string
	tls   *tls.Config
	// httpTLS is tls for HTTP requests (Istio's ALPN override).
	httpTLS *tls.Config
}

// transportSockets is a cluster's per-endpoint TLS choice, made when a
// connection is dialed: the first matching entry of matches, else
// fallback (the cluster's transport_socket; nil: plaintext). httpFallback
// is fallback for HTTP requests.
type transportSockets struct {
	matches      []socketMatch
	fallback     *tls.Config
	httpFallback *tls.Config
}

// Istio's in-mesh ALPN: a cluster's TLS context offering "istio" (with
// or without "istio-peer-exchange") is Istio mutual TLS. Istio's client
// sidecars replace that list for HTTP requests (the istio.alpn HTTP
// filter, per upstream protocol) so that a server's inbound listener
// picks its HTTP filter chain on ports of unknown protocol; tcp_proxy
// connections keep the cluster's list (the TCP metadata exchange chain).
const istioInMeshALPN = "istio"

var (
	istioHTTP11ALPN = []string{"istio-http/1.1", "istio", "http/1.1"}
	istioHTTP2ALPN  = []string{"istio-h2", "istio", "h2"}
)

// httpVariant is cfg for HTTP requests: under Istio mutual TLS the ALPN
// list becomes Istio's HTTP list for the cluster's protocol (h2 or
// http/1.1); any other TLS (a DestinationRule's SIMPLE or MUTUAL, whose
// clusters Istio marks alpn_override false) is used unchanged.
func httpVariant(cfg *tls.Config, alpn []string, h2 bool) *tls.Config {
	if cfg == nil || !contains(alpn, istioInMeshALPN) {
		return cfg
	}
	c := cfg.Clone()
	c.NextProtos = istioHTTP11ALPN
	if h2 {
		c.NextProtos = istioHTTP2ALPN
	}
	return c
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// compileTLS compiles the cluster's transport_socket and
// transport_socket_matches. TLS is done by the cluster's dialer, per
// endpoint, for HTTP/1.1, HTTP/2 and tcp_proxy alike. A socket that needs
// the workload identity (SDS secrets) on a proxy without one is
// left out of the matches, so auto mTLS falls back to plaintext there, as
// it did before the proxy had identities; as the cluster's only socket it
// fails at handshake time (Envoy's UF), not at configuration time.
func (cl *Cluster) compileTLS(field string, c *clusterv3.Cluster, sec *sds.Store) error {
	appProto := "http/1.1"
	if cl.HTTP2 {
		appProto = "h2"
	}
	ts := &transportSockets{}
	secured := false
	if s := c.GetTransportSocket(); s != nil {
		cfg, _, alpn, err := compileSocket(field+".transport_socket", s, sec, appProto)
		if err != nil {
			return err
		}
		ts.fallback = cfg
		ts.httpFallback = httpVariant(cfg, alpn, cl.HTTP2)
		secured = cfg != nil
	}
	for i, m := range c.GetTransportSocketMatches() {
		f := fmt.Sprintf("%s.transport_socket_matches[%d] (%s)", field, i, m.GetName())
		cfg, needsIdentity, alpn, err := compileSocket(f+".transport_socket", m.GetTransportSocket(), sec, appProto)
		if err != nil {
			return err
		}
		if needsIdentity && !sec.HasIdentity() {
			continue
		}
		sm := socketMatch{name: m.GetName(), match: map[string]string{}, tls: cfg, httpTLS: httpVariant(cfg, alpn, cl.HTTP2)}
		for k, v := range m.GetMatch().GetFields() {
			sv, ok := v.GetKind().(*structpb.Value_StringValue)
			if !ok {
				return fmt.Errorf("%s.match.%s: only string values are supported", f, k)
			}
			sm.match[k] = sv.StringValue
		}
		ts.matches = append(ts.matches, sm)
		secured = secured || cfg != nil
	}
	if secured {
		cl.sockets = ts
	}
	return nil
}

// compileSocket compiles one transport socket: nil for raw_buffer, else a
// client TLS config. needsIdentity tells whether it names SDS secrets;
// alpn is the context's ALPN list.
func compileSocket(field string, s *corev3.TransportSocket, sec *sds.Store, appProto string) (cfg *tls.Config, needsIdentity bool, alpn []string, err error) {
	if s == nil || s.GetName() == rawBufferSocket || s.GetTypedConfig().GetTypeUrl() == "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer" {
		return nil, false, nil, nil
	}
	if s.GetTypedConfig().GetTypeUrl() != upstreamTLSType {
		return nil, false, nil, fmt.Errorf("%s: %q not supported", field, s.GetName())
	}
	utc := &tlsv3.UpstreamTlsContext{}
	if err := s.GetTypedConfig().UnmarshalTo(utc); err != nil {
		return nil, false, nil, fmt.Errorf("%s: %v", field, err)
	}
	cfg, err = sds.UpstreamConfig(field, utc, sec, appProto)
	if err != nil {
		return nil, false, nil, err
	}
	return cfg, sds.UsesSDS(utc.GetCommonTlsContext()), utc.GetCommonTlsContext().GetAlpnProtocols(), nil
}

// tlsFor returns the TLS config for a connection to addr, or nil for
// plaintext; http selects the variant for HTTP requests.
func (ts *transportSockets) tlsFor(cl *Cluster, addr string, http bool) *tls.Config {
	if len(ts.matches) == 0 {
		if http {
			return ts.httpFallback
		}
		return ts.fallback
	}
	var h *Host
	for _, x := range cl.hosts.Load().all {
		if x.Addr == addr {
			h = x
			break
		}
	}
	for _, m := range ts.matches {
		if matchesMetadata(m.match, h) {
			if http {
				return m.httpTLS
			}
			return m.tls
		}
	}
	if http {
		return ts.httpFallback
	}
	return ts.fallback
}

// matchesMetadata reports whether h's transport socket metadata holds
// every key of match (an empty match matches every endpoint).
func matchesMetadata(match map[string]string, h *Host) bool {
	for k, v := range match {
		if h == nil || h.SocketMatch[k] != v {
			return false
		}
	}
	return true
}

// secure wraps a connection dialed for HTTP requests in TLS when the
// endpoint's transport socket asks for it, and completes the handshake.
func (cl *Cluster) secure(ctx context.Context, c net.Conn, addr string) (net.Conn, error) {
	if cl.sockets == nil {
		return c, nil
	}
	cfg := cl.sockets.tlsFor(cl, addr, true)
	if cfg == nil {
		return c, nil
	}
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		cl.Stats.CxConnectFail.Add(1)
		return nil, &ConnectError{Err: fmt.Errorf("TLS handshake: %w", err)}
	}
	return tc, nil
}

// DialHost opens a connection to h for tcp_proxy, with the endpoint's
// transport socket (TLS or plaintext). A plaintext connection is the bare
// *net.TCPConn, so copies can splice.
func (cl *Cluster) DialHost(ctx context.Context, h *Host) (net.Conn, error) {
	c, err := cl.dialer().DialContext(ctx, "tcp", h.Addr)
	if err != nil {
		return nil, err
	}
	if cl.sockets == nil {
		return c, nil
	}
	cfg := cl.sockets.tlsFor(cl, h.Addr, false)
	if cfg == nil {
		return c, nil
	}
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, &ConnectError{Err: fmt.Errorf("TLS handshake: %w", err)}
	}
	return tc, nil
}

// Secured reports whether some endpoint of the cluster is reached over
// TLS (its transport socket or a socket match is TLS).
func (cl *Cluster) Secured() bool { return cl.sockets != nil }

// PeerPrincipal is the SPIFFE ID of the verified server certificate of
// an upstream connection this package dialed (as handed to
// httptrace.GotConn), or "" when the connection is plaintext or the
// certificate has none: Istio's destination_principal on the client side.
func PeerPrincipal(c net.Conn) string {
	if rc, ok := c.(*requestCountingConn); ok {
		c = rc.Conn
	}
	tc, ok := c.(*tls.Conn)
	if !ok {
		return ""
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return ""
	}
	if last := lastPrincipal.Load(); last != nil && last.cert == certs[0] {
		return last.id
	}
	id, err := spiffe.FromCertificate(certs[0])
	if err != nil {
		return ""
	}
	lastPrincipal.Store(&certPrincipal{cert: certs[0], id: id.String()})
	return id.String()
}

// certPrincipal is a parsed certificate's SPIFFE ID.
type certPrincipal struct {
	cert *x509.Certificate
	id   string
}

// lastPrincipal caches the last certificate PeerPrincipal parsed: the
// connections to an endpoint share its certificate, so most requests skip
// parsing the URI SAN again.
var lastPrincipal atomic.Pointer[certPrincipal]

// socketMatchMetadata reads the endpoint's "envoy.transport_socket_match"
// filter metadata (string values).
func socketMatchMetadata(le *endpointv3.LbEndpoint) map[string]string {
	md := le.GetMetadata().GetFilterMetadata()["envoy.transport_socket_match"]
	if md == nil {
		return nil
	}
	out := map[string]string{}
	for k, v := range md.GetFields() {
		if s, ok := v.GetKind().(*structpb.Value_StringValue); ok {
			out[k] = s.StringValue
		}
	}
	return out
}
