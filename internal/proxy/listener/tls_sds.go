package listener

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/weftmesh/weft/internal/proxy/httpproxy"
	"github.com/weftmesh/weft/internal/proxy/sds"
)

// handshakeTimeout bounds a downstream TLS handshake.
const handshakeTimeout = 10 * time.Second

// downstreamTLS builds a chain's server TLS config from its
// DownstreamTlsContext: inline, file or SDS certificates ("default" is the
// proxy's workload certificate), and client certificate validation
// (require_client_certificate, "ROOTCA" or inline/file trusted CAs, SAN
// matchers). Secrets are looked up at each handshake.
func downstreamTLS(field string, ts *corev3.TransportSocket, sec *sds.Store) (*tls.Config, error) {
	if ts.GetTypedConfig().GetTypeUrl() != "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext" {
		return nil, fmt.Errorf("%s: %s not supported", field, ts.GetName())
	}
	dtc := &tlsv3.DownstreamTlsContext{}
	if err := ts.GetTypedConfig().UnmarshalTo(dtc); err != nil {
		return nil, fmt.Errorf("%s: %v", field, err)
	}
	return sds.DownstreamConfig(field, dtc, sec)
}

// terminateTLS completes the server handshake of a chain that terminates
// TLS and records the verified peer certificate and the local identity in
// info, for telemetry, access logs and x-forwarded-client-cert.
func terminateTLS(c net.Conn, chain *Chain, info *httpproxy.ConnInfo) (*tls.Conn, error) {
	tc := tls.Server(c, chain.TLS)
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	c.SetDeadline(time.Time{})
	info.TLS = true
	info.ServerName = tc.ConnectionState().ServerName
	info.Peer = sds.PeerOf(tc.ConnectionState())
	if info.Peer != nil {
		info.LocalPrincipal = chain.secrets.Identity()
	}
	return tc, nil
}

// forwardClientCert compiles the connection manager's
// forward_client_cert_details and set_current_client_cert_details.
func forwardClientCert(h *hcmv3.HttpConnectionManager) httpproxy.ForwardClientCert {
	f := httpproxy.ForwardClientCert{}
	switch h.GetForwardClientCertDetails() {
	case hcmv3.HttpConnectionManager_FORWARD_ONLY:
		f.Mode = httpproxy.XFCCForwardOnly
	case hcmv3.HttpConnectionManager_APPEND_FORWARD:
		f.Mode = httpproxy.XFCCAppendForward
	case hcmv3.HttpConnectionManager_SANITIZE_SET:
		f.Mode = httpproxy.XFCCSanitizeSet
	case hcmv3.HttpConnectionManager_ALWAYS_FORWARD_ONLY:
		f.Mode = httpproxy.XFCCAlwaysForwardOnly
	}
	d := h.GetSetCurrentClientCertDetails()
	f.Subject, f.URI, f.DNS = d.GetSubject().GetValue(), d.GetUri(), d.GetDns()
	return f
}
