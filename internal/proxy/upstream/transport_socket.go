package upstream

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/structpb"

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
}

// transportSockets is a cluster's per-endpoint TLS choice, made when a
// connection is dialed: the first matching entry of matches, else
// fallback (the cluster's transport_socket; nil: plaintext).
type transportSockets struct {
	matches  []socketMatch
	fallback *tls.Config
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
		cfg, _, err := compileSocket(field+".transport_socket", s, sec, appProto)
		if err != nil {
			return err
		}
		ts.fallback = cfg
		secured = cfg != nil
	}
	for i, m := range c.GetTransportSocketMatches() {
		f := fmt.Sprintf("%s.transport_socket_matches[%d] (%s)", field, i, m.GetName())
		cfg, needsIdentity, err := compileSocket(f+".transport_socket", m.GetTransportSocket(), sec, appProto)
		if err != nil {
			return err
		}
		if needsIdentity && !sec.HasIdentity() {
			continue
		}
		sm := socketMatch{name: m.GetName(), match: map[string]string{}, tls: cfg}
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
// client TLS config. needsIdentity tells whether it names SDS secrets.
func compileSocket(field string, s *corev3.TransportSocket, sec *sds.Store, appProto string) (*tls.Config, bool, error) {
	if s == nil || s.GetName() == rawBufferSocket || s.GetTypedConfig().GetTypeUrl() == "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer" {
		return nil, false, nil
	}
	if s.GetTypedConfig().GetTypeUrl() != upstreamTLSType {
		return nil, false, fmt.Errorf("%s: %q not supported", field, s.GetName())
	}
	utc := &tlsv3.UpstreamTlsContext{}
	if err := s.GetTypedConfig().UnmarshalTo(utc); err != nil {
		return nil, false, fmt.Errorf("%s: %v", field, err)
	}
	cfg, err := sds.UpstreamConfig(field, utc, sec, appProto)
	if err != nil {
		return nil, false, err
	}
	return cfg, sds.UsesSDS(utc.GetCommonTlsContext()), nil
}

// tlsFor returns the TLS config for a connection to addr, or nil for
// plaintext.
func (ts *transportSockets) tlsFor(cl *Cluster, addr string) *tls.Config {
	if len(ts.matches) == 0 {
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
			return m.tls
		}
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

// secure wraps a dialed connection in TLS when the endpoint's transport
// socket asks for it, and completes the handshake.
func (cl *Cluster) secure(ctx context.Context, c net.Conn, addr string) (net.Conn, error) {
	if cl.sockets == nil {
		return c, nil
	}
	cfg := cl.sockets.tlsFor(cl, addr)
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
	cfg := cl.sockets.tlsFor(cl, h.Addr)
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
