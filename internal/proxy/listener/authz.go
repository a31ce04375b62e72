package listener

import (
	"crypto/tls"
	"fmt"
	"net"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	httprbac "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netrbac "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/internal/proxy/httpproxy"
	"github.com/weftmesh/weft/internal/proxy/jwt"
	"github.com/weftmesh/weft/internal/proxy/pathnorm"
	"github.com/weftmesh/weft/internal/proxy/rbac"
)

// compileSecurityFilter compiles the HTTP filters that run before routing
// (jwt_authn, rbac). It returns nil, nil for other filters. clusters (may
// be nil) serves jwt_authn's remote key fetches.
func compileSecurityFilter(field string, f *hcmv3.HttpFilter, h *hcmv3.HttpConnectionManager, clusters jwt.Clusters) (httpproxy.Filter, error) {
	tc := f.GetTypedConfig()
	switch tc.GetTypeUrl() {
	case rbac.HTTPTypeURL:
		c := &httprbac.RBAC{}
		if err := tc.UnmarshalTo(c); err != nil {
			return nil, fmt.Errorf("%s: %v", field, err)
		}
		return rbac.CompileHTTP(field, c)
	case jwt.TypeURL:
		c := &jwtv3.JwtAuthentication{}
		if err := tc.UnmarshalTo(c); err != nil {
			return nil, fmt.Errorf("%s: %v", field, err)
		}
		return jwt.Compile(field, c, clusters)
	}
	return nil, nil
}

// compileNetworkRBAC compiles an envoy.filters.network.rbac filter; ok is
// false for other filters.
func compileNetworkRBAC(field string, tc *anypb.Any) (*rbac.NetworkFilter, bool, error) {
	if tc.GetTypeUrl() != rbac.NetworkTypeURL {
		return nil, false, nil
	}
	c := &netrbac.RBAC{}
	if err := tc.UnmarshalTo(c); err != nil {
		return nil, true, fmt.Errorf("%s: %v", field, err)
	}
	f, err := rbac.CompileNetwork(field, c)
	return f, true, err
}

// connAllowed applies the chain's network RBAC to a new connection; cs
// is its TLS state once the chain terminated TLS (the peer's mTLS
// identity), nil for plain-text chains. A denial returns Envoy's
// connection_termination_details.
func (c *Chain) connAllowed(f *connFacts, cs *tls.ConnectionState) (ok bool, details string) {
	if len(c.NetworkRBAC) == 0 {
		return true, ""
	}
	sni := f.in.serverName
	if cs != nil {
		sni = cs.ServerName
	}
	a := rbac.ConnAttributes(f.remote, f.local, sni, cs)
	for _, nr := range c.NetworkRBAC {
		if ok, details := nr.Check(a); !ok {
			return false, details
		}
	}
	return true, ""
}

// denied closes a connection the chain's network RBAC refused. In front
// of tcp_proxy, Envoy's tcp_proxy has picked its cluster when the
// connection opened, and its access log records the closed connection
// with the RBAC filter's connection_termination_details and no response
// flag; the connection is reported to the TCP observer likewise (nothing
// sent or received). An HTTP chain logs nothing (no request was made).
func (m *Manager) denied(c net.Conn, chain *Chain, info *httpproxy.ConnInfo, details string) {
	c.Close()
	if chain.TCP == nil || len(chain.TCP.Clusters) == 0 || m.TCPObserver == nil {
		return
	}
	info.TerminationDetails = details
	m.TCPObserver.TCPOpened(chain.TCP.Clusters[0].Name, nil, info)
	m.TCPObserver.TCPClosed(chain.TCP.Clusters[0].Name, nil, info, "", 0, 0)
}

// pathNormalization reads normalize_path, merge_slashes and
// path_with_escaped_slashes_action.
func pathNormalization(field string, h *hcmv3.HttpConnectionManager) (pathnorm.Options, error) {
	o := pathnorm.Options{Normalize: h.GetNormalizePath().GetValue(), MergeSlashes: h.GetMergeSlashes()}
	switch h.GetPathWithEscapedSlashesAction() {
	case hcmv3.HttpConnectionManager_IMPLEMENTATION_SPECIFIC_DEFAULT, hcmv3.HttpConnectionManager_KEEP_UNCHANGED:
		o.EscapedSlashes = pathnorm.Keep
	case hcmv3.HttpConnectionManager_REJECT_REQUEST:
		o.EscapedSlashes = pathnorm.Reject
	case hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT:
		o.EscapedSlashes = pathnorm.UnescapeAndRedirect
	case hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD:
		o.EscapedSlashes = pathnorm.UnescapeAndForward
	default:
		return o, fmt.Errorf("%s.path_with_escaped_slashes_action: unsupported %v", field, h.GetPathWithEscapedSlashesAction())
	}
	if h.GetPathNormalizationOptions() != nil {
		return o, fmt.Errorf("%s.path_normalization_options: not supported", field)
	}
	return o, nil
}
