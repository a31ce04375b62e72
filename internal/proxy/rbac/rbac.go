// Package rbac is weft-proxy's role based access control: Envoy's RBAC
// HTTP filter (envoy.filters.http.rbac) and network filter
// (envoy.filters.network.rbac), compiled from their v3 configuration and
// evaluated against the attributes of a request or connection.
package rbac

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/netip"
	"net/textproto"
	"sort"
	"strings"
	"sync/atomic"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	httprbac "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	netrbac "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"

	"github.com/weftmesh/weft/internal/proxy/httpproxy"
)

// Type URLs of the filters' configurations.
const (
	HTTPTypeURL    = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
	NetworkTypeURL = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"
)

// Attributes are what policies match on. HTTP is false for connections
// (network filter): then no header or path matches.
type Attributes struct {
	HTTP   bool
	Method string
	// Path is the (normalized) request target with its query.
	Path    string
	Host    string
	Scheme  string
	Headers http.Header
	// DirectRemote is the peer of the connection; Remote the original
	// client (from X-Forwarded-For when the peer is trusted).
	DirectRemote netip.AddrPort
	Remote       netip.Addr
	// Destination is the local (original destination) address.
	Destination netip.AddrPort
	// Authenticated is set for mTLS peers; Principal is their URI SAN
	// (or subject when there is none).
	Authenticated bool
	Principal     string
	SNI           string
	// Metadata is dynamic metadata by filter name.
	Metadata map[string]map[string]any
}

func canonicalKey(name string) string { return textproto.CanonicalMIMEHeaderKey(name) }

// Action is an RBAC action.
type Action int

// Actions.
const (
	Allow Action = iota
	Deny
	Log
)

// Engine is one compiled RBAC rule set. It is immutable.
type Engine struct {
	action   Action
	policies []policy
}

type policy struct {
	name        string
	permissions matcher
	principals  matcher
}

// CompileEngine compiles an RBAC rule set; nil gives a nil engine, which
// allows everything.
func CompileEngine(field string, r *rbacv3.RBAC) (*Engine, error) {
	if r == nil {
		return nil, nil
	}
	e := &Engine{}
	switch r.GetAction() {
	case rbacv3.RBAC_ALLOW:
		e.action = Allow
	case rbacv3.RBAC_DENY:
		e.action = Deny
	case rbacv3.RBAC_LOG:
		e.action = Log
	default:
		return nil, fmt.Errorf("%s.action: unsupported %v", field, r.GetAction())
	}
	if len(r.GetAuditLoggingOptions().GetLoggerConfigs()) > 0 {
		return nil, fmt.Errorf("%s.audit_logging_options: not supported", field)
	}
	names := make([]string, 0, len(r.GetPolicies()))
	for n := range r.GetPolicies() {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := r.GetPolicies()[n]
		pf := fmt.Sprintf("%s.policies[%s]", field, n)
		if p.GetCondition() != nil || p.GetCheckedCondition() != nil {
			return nil, fmt.Errorf("%s.condition: CEL conditions are not supported", pf)
		}
		if len(p.GetPermissions()) == 0 || len(p.GetPrincipals()) == 0 {
			return nil, fmt.Errorf("%s: permissions and principals are required", pf)
		}
		var perms, prins orM
		for i, x := range p.GetPermissions() {
			m, err := compilePermission(fmt.Sprintf("%s.permissions[%d]", pf, i), x)
			if err != nil {
				return nil, err
			}
			perms = append(perms, m)
		}
		for i, x := range p.GetPrincipals() {
			m, err := compilePrincipal(fmt.Sprintf("%s.principals[%d]", pf, i), x)
			if err != nil {
				return nil, err
			}
			prins = append(prins, m)
		}
		e.policies = append(e.policies, policy{name: n, permissions: perms, principals: prins})
	}
	return e, nil
}

// Match returns the name of the first policy (by name) matching a.
func (e *Engine) Match(a *Attributes) (string, bool) {
	for _, p := range e.policies {
		if p.permissions.match(a) && p.principals.match(a) {
			return p.name, true
		}
	}
	return "", false
}

// Allowed reports whether e lets a through, and the matched policy.
// A nil engine allows everything.
func (e *Engine) Allowed(a *Attributes) (bool, string) {
	if e == nil {
		return true, ""
	}
	name, ok := e.Match(a)
	switch e.action {
	case Allow:
		return ok, name
	case Deny:
		return !ok, name
	}
	return true, name
}

// Stats are an RBAC filter's counters (Envoy's rbac.allowed, ...).
type Stats struct {
	Allowed, Denied, ShadowAllowed, ShadowDenied atomic.Uint64
}

// HTTPFilter is a compiled envoy.filters.http.rbac.
type HTTPFilter struct {
	rules, shadow *Engine
	Stats         *Stats
}

// CompileHTTP compiles the HTTP filter. Its remote_ip is the connection
// manager's trusted client address (FilterState.ClientAddress).
func CompileHTTP(field string, c *httprbac.RBAC) (*HTTPFilter, error) {
	if c.GetMatcher() != nil || c.GetShadowMatcher() != nil {
		return nil, fmt.Errorf("%s: matcher-based RBAC is not supported; use rules", field)
	}
	rules, err := CompileEngine(field+".rules", c.GetRules())
	if err != nil {
		return nil, err
	}
	shadow, err := CompileEngine(field+".shadow_rules", c.GetShadowRules())
	if err != nil {
		return nil, err
	}
	return &HTTPFilter{rules: rules, shadow: shadow, Stats: &Stats{}}, nil
}

// Decode implements httpproxy.Filter: 403 "RBAC: access denied" when the
// rules deny the request.
func (f *HTTPFilter) Decode(r *http.Request, st *httpproxy.FilterState) *httpproxy.LocalReply {
	a := RequestAttributes(r, st)
	if f.shadow != nil {
		if ok, name := f.shadow.Allowed(a); ok {
			f.Stats.ShadowAllowed.Add(1)
		} else {
			f.Stats.ShadowDenied.Add(1)
			st.SetMetadata("envoy.filters.http.rbac", "shadow_effective_policy_id", name)
			st.SetMetadata("envoy.filters.http.rbac", "shadow_engine_result", "denied")
		}
	}
	ok, name := f.rules.Allowed(a)
	if !ok {
		f.Stats.Denied.Add(1)
		return &httpproxy.LocalReply{Status: http.StatusForbidden, Body: "RBAC: access denied",
			Details: DeniedDetails(name)}
	}
	f.Stats.Allowed.Add(1)
	return nil
}

// RequestAttributes collects a request's attributes. Remote (remote_ip)
// is the trusted client address the connection manager derived from
// X-Forwarded-For (st.ClientAddress), as Envoy's RBAC reads the
// downstream remote address the HCM set, else the connection's peer;
// DirectRemote (direct_remote_ip, source_ip) is always the peer.
func RequestAttributes(r *http.Request, st *httpproxy.FilterState) *Attributes {
	a := &Attributes{HTTP: true, Method: r.Method, Host: r.Host, Headers: r.Header, Scheme: "http"}
	a.Path = r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		a.Path += "?" + r.URL.RawQuery
	}
	if r.TLS != nil {
		a.Scheme = "https"
		a.SNI = r.TLS.ServerName
		peerIdentity(a, r.TLS)
	}
	remote := r.RemoteAddr
	if ci := httpproxy.ConnInfoFrom(r.Context()); ci != nil {
		remote = ci.RemoteAddr
		a.Destination, _ = netip.ParseAddrPort(ci.LocalAddr)
	}
	a.DirectRemote, _ = netip.ParseAddrPort(remote)
	a.Remote = a.DirectRemote.Addr()
	if st != nil && st.ClientAddress.IsValid() {
		a.Remote = st.ClientAddress
	}
	a.DirectRemote = netip.AddrPortFrom(a.DirectRemote.Addr().Unmap(), a.DirectRemote.Port())
	a.Remote = a.Remote.Unmap()
	a.Destination = netip.AddrPortFrom(a.Destination.Addr().Unmap(), a.Destination.Port())
	if st != nil {
		a.Metadata = st.Metadata
	}
	return a
}

// peerIdentity sets the mTLS identity of a verified client certificate.
func peerIdentity(a *Attributes, cs *tls.ConnectionState) {
	if len(cs.PeerCertificates) == 0 {
		return
	}
	c := cs.PeerCertificates[0]
	a.Authenticated = true
	if len(c.URIs) > 0 {
		a.Principal = c.URIs[0].String()
		return
	}
	a.Principal = c.Subject.String()
}

// ConnAttributes are the attributes of a connection for the network
// filter. cs may be nil for plain-text connections.
func ConnAttributes(remote, local netip.AddrPort, sni string, cs *tls.ConnectionState) *Attributes {
	a := &Attributes{SNI: sni}
	a.DirectRemote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	a.Remote = a.DirectRemote.Addr()
	a.Destination = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	if cs != nil {
		peerIdentity(a, cs)
	}
	return a
}

// NetworkFilter is a compiled envoy.filters.network.rbac.
type NetworkFilter struct {
	rules, shadow *Engine
	Stats         *Stats
}

// CompileNetwork compiles the network filter.
func CompileNetwork(field string, c *netrbac.RBAC) (*NetworkFilter, error) {
	if c.GetMatcher() != nil || c.GetShadowMatcher() != nil {
		return nil, fmt.Errorf("%s: matcher-based RBAC is not supported; use rules", field)
	}
	if c.GetEnforcementType() != netrbac.RBAC_ONE_TIME_ON_FIRST_BYTE {
		return nil, fmt.Errorf("%s.enforcement_type: only ONE_TIME_ON_FIRST_BYTE is supported", field)
	}
	rules, err := CompileEngine(field+".rules", c.GetRules())
	if err != nil {
		return nil, err
	}
	shadow, err := CompileEngine(field+".shadow_rules", c.GetShadowRules())
	if err != nil {
		return nil, err
	}
	return &NetworkFilter{rules: rules, shadow: shadow, Stats: &Stats{}}, nil
}

// Allowed reports whether a connection may proceed.
func (f *NetworkFilter) Allowed(a *Attributes) bool {
	ok, _ := f.Check(a)
	return ok
}

// Check reports whether a connection may proceed and, when it may not,
// what Envoy's network RBAC filter sets as the connection's
// connection_termination_details before closing it:
// "rbac_access_denied_matched_policy[NAME]", NAME the matched policy or
// "none". Envoy sets no response flag for it.
func (f *NetworkFilter) Check(a *Attributes) (ok bool, details string) {
	if f.shadow != nil {
		if ok, _ := f.shadow.Allowed(a); ok {
			f.Stats.ShadowAllowed.Add(1)
		} else {
			f.Stats.ShadowDenied.Add(1)
		}
	}
	ok, name := f.rules.Allowed(a)
	if ok {
		f.Stats.Allowed.Add(1)
		return true, ""
	}
	f.Stats.Denied.Add(1)
	return false, DeniedDetails(name)
}

// DeniedDetails is Envoy's RBAC denial detail for a matched policy name
// ("" when none matched), whitespace replaced as Envoy does.
func DeniedDetails(name string) string {
	if name == "" {
		name = "none"
	}
	name = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\f', '\v', '\n', '\r':
			return '_'
		}
		return r
	}, name)
	return "rbac_access_denied_matched_policy[" + name + "]"
}
