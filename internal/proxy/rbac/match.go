package rbac

import (
	"fmt"
	"net/netip"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/weftmesh/weft/internal/proxy/router"
)

// matcher matches request or connection attributes.
type matcher interface {
	match(a *Attributes) bool
}

type anyM struct{}

func (anyM) match(*Attributes) bool { return true }

type andM []matcher

func (m andM) match(a *Attributes) bool {
	for _, x := range m {
		if !x.match(a) {
			return false
		}
	}
	return true
}

type orM []matcher

func (m orM) match(a *Attributes) bool {
	for _, x := range m {
		if x.match(a) {
			return true
		}
	}
	return false
}

type notM struct{ m matcher }

func (m notM) match(a *Attributes) bool { return !m.m.match(a) }

type funcM func(a *Attributes) bool

func (f funcM) match(a *Attributes) bool { return f(a) }

func compilePermission(field string, p *rbacv3.Permission) (matcher, error) {
	switch r := p.GetRule().(type) {
	case *rbacv3.Permission_Any:
		return anyM{}, nil
	case *rbacv3.Permission_AndRules:
		if len(r.AndRules.GetRules()) == 0 {
			return nil, fmt.Errorf("%s.and_rules: empty", field)
		}
		var out andM
		for i, x := range r.AndRules.GetRules() {
			m, err := compilePermission(fmt.Sprintf("%s.and_rules[%d]", field, i), x)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
		return out, nil
	case *rbacv3.Permission_OrRules:
		if len(r.OrRules.GetRules()) == 0 {
			return nil, fmt.Errorf("%s.or_rules: empty", field)
		}
		var out orM
		for i, x := range r.OrRules.GetRules() {
			m, err := compilePermission(fmt.Sprintf("%s.or_rules[%d]", field, i), x)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
		return out, nil
	case *rbacv3.Permission_NotRule:
		m, err := compilePermission(field+".not_rule", r.NotRule)
		if err != nil {
			return nil, err
		}
		return notM{m}, nil
	case *rbacv3.Permission_Header:
		return compileHeader(field+".header", r.Header)
	case *rbacv3.Permission_UrlPath:
		return compilePath(field+".url_path", r.UrlPath)
	case *rbacv3.Permission_DestinationIp:
		pf, err := cidr(r.DestinationIp)
		if err != nil {
			return nil, fmt.Errorf("%s.destination_ip: %v", field, err)
		}
		return funcM(func(a *Attributes) bool { return a.Destination.IsValid() && pf.Contains(a.Destination.Addr().Unmap()) }), nil
	case *rbacv3.Permission_DestinationPort:
		port := r.DestinationPort
		return funcM(func(a *Attributes) bool { return uint32(a.Destination.Port()) == port }), nil
	case *rbacv3.Permission_DestinationPortRange:
		lo, hi := r.DestinationPortRange.GetStart(), r.DestinationPortRange.GetEnd()
		return funcM(func(a *Attributes) bool { p := int32(a.Destination.Port()); return p >= lo && p < hi }), nil
	case *rbacv3.Permission_RequestedServerName:
		sm, err := compileString(field+".requested_server_name", r.RequestedServerName)
		if err != nil {
			return nil, err
		}
		return funcM(func(a *Attributes) bool { return sm(a.SNI) }), nil
	case *rbacv3.Permission_Metadata:
		return compileMetadata(field+".metadata", r.Metadata)
	}
	return nil, fmt.Errorf("%s: unsupported permission rule %T", field, p.GetRule())
}

func compilePrincipal(field string, p *rbacv3.Principal) (matcher, error) {
	switch r := p.GetIdentifier().(type) {
	case *rbacv3.Principal_Any:
		return anyM{}, nil
	case *rbacv3.Principal_AndIds:
		if len(r.AndIds.GetIds()) == 0 {
			return nil, fmt.Errorf("%s.and_ids: empty", field)
		}
		var out andM
		for i, x := range r.AndIds.GetIds() {
			m, err := compilePrincipal(fmt.Sprintf("%s.and_ids[%d]", field, i), x)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
		return out, nil
	case *rbacv3.Principal_OrIds:
		if len(r.OrIds.GetIds()) == 0 {
			return nil, fmt.Errorf("%s.or_ids: empty", field)
		}
		var out orM
		for i, x := range r.OrIds.GetIds() {
			m, err := compilePrincipal(fmt.Sprintf("%s.or_ids[%d]", field, i), x)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
		return out, nil
	case *rbacv3.Principal_NotId:
		m, err := compilePrincipal(field+".not_id", r.NotId)
		if err != nil {
			return nil, err
		}
		return notM{m}, nil
	case *rbacv3.Principal_Authenticated_:
		pm := r.Authenticated.GetPrincipalName()
		if pm == nil {
			return funcM(func(a *Attributes) bool { return a.Authenticated }), nil
		}
		sm, err := compileString(field+".authenticated.principal_name", pm)
		if err != nil {
			return nil, err
		}
		return funcM(func(a *Attributes) bool { return a.Authenticated && sm(a.Principal) }), nil
	case *rbacv3.Principal_SourceIp:
		return ipMatcher(field+".source_ip", r.SourceIp, func(a *Attributes) netip.Addr { return a.DirectRemote.Addr() })
	case *rbacv3.Principal_DirectRemoteIp:
		return ipMatcher(field+".direct_remote_ip", r.DirectRemoteIp, func(a *Attributes) netip.Addr { return a.DirectRemote.Addr() })
	case *rbacv3.Principal_RemoteIp:
		return ipMatcher(field+".remote_ip", r.RemoteIp, func(a *Attributes) netip.Addr { return a.Remote })
	case *rbacv3.Principal_Header:
		return compileHeader(field+".header", r.Header)
	case *rbacv3.Principal_UrlPath:
		return compilePath(field+".url_path", r.UrlPath)
	case *rbacv3.Principal_Metadata:
		return compileMetadata(field+".metadata", r.Metadata)
	}
	return nil, fmt.Errorf("%s: unsupported principal %T", field, p.GetIdentifier())
}

func ipMatcher(field string, c *corev3.CidrRange, get func(*Attributes) netip.Addr) (matcher, error) {
	pf, err := cidr(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", field, err)
	}
	return funcM(func(a *Attributes) bool {
		ip := get(a)
		return ip.IsValid() && pf.Contains(ip.Unmap())
	}), nil
}

func cidr(c *corev3.CidrRange) (netip.Prefix, error) {
	a, err := netip.ParseAddr(c.GetAddressPrefix())
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	bits := a.BitLen()
	if c.GetPrefixLen() != nil {
		bits = int(c.GetPrefixLen().GetValue())
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}, err
	}
	return p, nil
}

// stringMatch is a compiled envoy.type.matcher.v3.StringMatcher.
type stringMatch func(string) bool

func compileString(field string, m *matcherv3.StringMatcher) (stringMatch, error) {
	sm, err := router.CompileStringMatcher(field, m)
	if err != nil {
		return nil, err
	}
	return sm.Match, nil
}

// compilePath matches the request path without its query string, as
// Envoy's url_path does.
func compilePath(field string, m *matcherv3.PathMatcher) (matcher, error) {
	sm, err := compileString(field+".path", m.GetPath())
	if err != nil {
		return nil, err
	}
	return funcM(func(a *Attributes) bool {
		if !a.HTTP {
			return false
		}
		p, _, _ := strings.Cut(a.Path, "?")
		return sm(p)
	}), nil
}

// headerValue is the value of a header as Envoy's matchers see it:
// pseudo-headers from the request line, repeated headers joined by ",".
func headerValue(a *Attributes, name string) (string, bool) {
	switch strings.ToLower(name) {
	case ":method":
		return a.Method, a.HTTP
	case ":path":
		return a.Path, a.HTTP
	case ":authority", "host":
		return a.Host, a.HTTP
	case ":scheme":
		return a.Scheme, a.HTTP
	}
	vs, ok := a.Headers[canonicalKey(name)]
	if !ok {
		return "", false
	}
	return strings.Join(vs, ","), true
}

func compileHeader(field string, h *routev3.HeaderMatcher) (matcher, error) {
	name, invert := h.GetName(), h.GetInvertMatch()
	var valueMatch stringMatch
	present := -1 // -1: not a presence match; 0/1: present_match value
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case nil:
		present = 1
	case *routev3.HeaderMatcher_PresentMatch:
		present = 0
		if s.PresentMatch {
			present = 1
		}
	case *routev3.HeaderMatcher_StringMatch:
		sm, err := compileString(field+".string_match", s.StringMatch)
		if err != nil {
			return nil, err
		}
		valueMatch = sm
	case *routev3.HeaderMatcher_ExactMatch:
		want := s.ExactMatch
		valueMatch = func(v string) bool { return v == want }
	case *routev3.HeaderMatcher_PrefixMatch:
		want := s.PrefixMatch
		valueMatch = func(v string) bool { return strings.HasPrefix(v, want) }
	case *routev3.HeaderMatcher_SuffixMatch:
		want := s.SuffixMatch
		valueMatch = func(v string) bool { return strings.HasSuffix(v, want) }
	case *routev3.HeaderMatcher_ContainsMatch:
		want := s.ContainsMatch
		valueMatch = func(v string) bool { return strings.Contains(v, want) }
	case *routev3.HeaderMatcher_SafeRegexMatch:
		sm, err := compileString(field+".safe_regex_match", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: s.SafeRegexMatch}})
		if err != nil {
			return nil, err
		}
		valueMatch = sm
	default:
		return nil, fmt.Errorf("%s: unsupported header matcher %T", field, s)
	}
	return funcM(func(a *Attributes) bool {
		v, ok := headerValue(a, name)
		if present >= 0 {
			return (ok == (present == 1)) != invert
		}
		if !ok {
			// A missing header matches nothing, inverted or not (Envoy).
			return false
		}
		return valueMatch(v) != invert
	}), nil
}

func compileMetadata(field string, m *matcherv3.MetadataMatcher) (matcher, error) {
	filter := m.GetFilter()
	var path []string
	for _, s := range m.GetPath() {
		path = append(path, s.GetKey())
	}
	vm, err := compileValue(field+".value", m.GetValue())
	if err != nil {
		return nil, err
	}
	invert := m.GetInvert()
	return funcM(func(a *Attributes) bool {
		var v any
		if ns := a.Metadata[filter]; ns != nil {
			v = ns
		}
		for _, k := range path {
			obj, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = obj[k]
		}
		return vm(v) != invert
	}), nil
}

type valueMatch func(v any) bool

func compileValue(field string, m *matcherv3.ValueMatcher) (valueMatch, error) {
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.ValueMatcher_StringMatch:
		sm, err := compileString(field+".string_match", p.StringMatch)
		if err != nil {
			return nil, err
		}
		return func(v any) bool { s, ok := v.(string); return ok && sm(s) }, nil
	case *matcherv3.ValueMatcher_BoolMatch:
		want := p.BoolMatch
		return func(v any) bool { b, ok := v.(bool); return ok && b == want }, nil
	case *matcherv3.ValueMatcher_PresentMatch:
		want := p.PresentMatch
		return func(v any) bool { return (v != nil) == want }, nil
	case *matcherv3.ValueMatcher_ListMatch:
		inner, err := compileValue(field+".list_match.one_of", p.ListMatch.GetOneOf())
		if err != nil {
			return nil, err
		}
		return func(v any) bool {
			l, ok := v.([]any)
			if !ok {
				return false
			}
			for _, x := range l {
				if inner(x) {
					return true
				}
			}
			return false
		}, nil
	case *matcherv3.ValueMatcher_OrMatch:
		var ms []valueMatch
		for i, x := range p.OrMatch.GetValueMatchers() {
			vm, err := compileValue(fmt.Sprintf("%s.or_match[%d]", field, i), x)
			if err != nil {
				return nil, err
			}
			ms = append(ms, vm)
		}
		return func(v any) bool {
			for _, m := range ms {
				if m(v) {
					return true
				}
			}
			return false
		}, nil
	}
	return nil, fmt.Errorf("%s: unsupported value matcher %T", field, m.GetMatchPattern())
}
