package translate

import (
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	security "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/weftmesh/weft/internal/model"
)

// Authorization: AuthorizationPolicy → RBAC, Istio's semantics.
//
// Policies apply to a proxy when they are in the root namespace
// (istio-system: mesh-wide, optionally narrowed by selector), or in the
// proxy's namespace with no selector or one matching its labels; a
// targetRef(s) policy applies only to the gateway it names (Service
// targets are for waypoints, which Weft does not run). Each rule becomes
// one RBAC policy "ns[NS]-policy[NAME]-rule[I]"; CUSTOM (no ext_authz in
// Weft) is enforced as DENY of its rules, fail-closed, with a diagnostic.
// For TCP chains HTTP-only fields (hosts, methods, paths,
// requestPrincipals, request.* conditions) cannot be evaluated: an ALLOW
// rule using one is dropped, a DENY rule ignores it (so it denies more).
// A rule using a field Weft does not support is dropped from ALLOW
// policies and broadened in DENY policies: never allows more.

// authzAction is the enforcement class of a policy.
type authzAction int

const (
	actionAudit authzAction = iota
	actionDeny
	actionAllow
)

// authzRules are one proxy's RBAC policies by action, for HTTP and TCP.
type authzRules struct {
	// present[a] is set when a policy of action a selects the proxy (an
	// ALLOW policy with no rules still denies everything).
	present   [3]bool
	http, tcp [3]map[string]*rbacv3.Policy
}

// policyApplies reports whether a policy in namespace ns with the given
// target selects proxy.
func policyApplies(ns string, sel *typev1beta1.WorkloadSelector, ref *typev1beta1.PolicyTargetReference, refs []*typev1beta1.PolicyTargetReference, proxy *model.Proxy) bool {
	if ref != nil {
		refs = append([]*typev1beta1.PolicyTargetReference{ref}, refs...)
	}
	if len(refs) > 0 {
		if proxy.Type != model.ProxyRouter || ns != proxy.Namespace {
			return false
		}
		for _, r := range refs {
			if r.Kind == "Gateway" && r.Name != "" && proxy.Labels["gateway.networking.k8s.io/gateway-name"] == r.Name {
				return true
			}
		}
		return false
	}
	if ns != RootNamespace && ns != proxy.Namespace {
		return false
	}
	return sel == nil || model.SelectorMatches(sel.MatchLabels, proxy.Labels)
}

// buildAuthz collects the AuthorizationPolicies selecting proxy.
func buildAuthz(snap *model.Snapshot, proxy *model.Proxy, diags *diagnostics) *authzRules {
	out := &authzRules{}
	for a := range out.http {
		out.http[a], out.tcp[a] = map[string]*rbacv3.Policy{}, map[string]*rbacv3.Policy{}
	}
	cfgs := append([]*model.Config(nil), snap.List(model.KindAuthorizationPolicy)...)
	sort.Slice(cfgs, func(i, j int) bool {
		if cfgs[i].Namespace != cfgs[j].Namespace {
			return cfgs[i].Namespace < cfgs[j].Namespace
		}
		return cfgs[i].Name < cfgs[j].Name
	})
	for _, c := range cfgs {
		ap, ok := c.Spec.(*security.AuthorizationPolicy)
		if !ok || !policyApplies(c.Namespace, ap.Selector, ap.TargetRef, ap.TargetRefs, proxy) {
			continue
		}
		var action authzAction
		deny := false
		switch ap.Action {
		case security.AuthorizationPolicy_ALLOW:
			action = actionAllow
		case security.AuthorizationPolicy_DENY:
			action, deny = actionDeny, true
		case security.AuthorizationPolicy_AUDIT:
			action = actionAudit
		case security.AuthorizationPolicy_CUSTOM:
			action, deny = actionDeny, true
			diags.errorf(&c.Meta, "spec.action", "CUSTOM authorization (provider %q) is not supported by Weft (no ext_authz): requests matching its rules are denied", ap.GetProvider().GetName())
		default:
			diags.errorf(&c.Meta, "spec.action", "unknown action %v: the policy denies every request", ap.Action)
			action, deny = actionDeny, true
			ap = &security.AuthorizationPolicy{Rules: []*security.Rule{{}}}
		}
		out.present[action] = true
		for i, r := range ap.Rules {
			if r == nil {
				continue // rejected by validation; matches nothing
			}
			name := fmt.Sprintf("ns[%s]-policy[%s]-rule[%d]", c.Namespace, c.Name, i)
			field := fmt.Sprintf("spec.rules[%d]", i)
			for _, tcp := range []bool{false, true} {
				b := &ruleBuilder{meta: &c.Meta, field: field, deny: deny, tcp: tcp, diags: diags}
				p := b.policy(r)
				if b.drop {
					continue
				}
				if tcp {
					out.tcp[action][name] = p
				} else {
					out.http[action][name] = p
				}
			}
		}
	}
	return out
}

// rbacConfigs returns the RBAC rule sets in evaluation order (audit as
// LOG, then DENY, then ALLOW), for HTTP or TCP chains.
func (a *authzRules) rbacConfigs(tcp bool) []*rbacv3.RBAC {
	var out []*rbacv3.RBAC
	actions := []rbacv3.RBAC_Action{rbacv3.RBAC_LOG, rbacv3.RBAC_DENY, rbacv3.RBAC_ALLOW}
	for i, act := range actions {
		if !a.present[i] {
			continue
		}
		pols := a.http[i]
		if tcp {
			pols = a.tcp[i]
		}
		if len(pols) == 0 && act != rbacv3.RBAC_ALLOW {
			continue
		}
		out = append(out, &rbacv3.RBAC{Action: act, Policies: pols})
	}
	return out
}

// ruleBuilder turns one Istio rule into an RBAC policy.
type ruleBuilder struct {
	meta  *model.Meta
	field string
	// deny is set for DENY (and CUSTOM) rules: what cannot be evaluated
	// is left out (broader); for ALLOW and AUDIT the rule is dropped.
	deny  bool
	tcp   bool
	diags *diagnostics
	drop  bool
}

// skip handles a field that cannot be evaluated; it reports whether the
// caller must leave the field out.
func (b *ruleBuilder) skip(field string, httpOnly bool, reason string) bool {
	if httpOnly && !b.tcp {
		return false
	}
	if !httpOnly {
		b.diags.errorf(b.meta, b.field+"."+field, "%s", reason)
	}
	if !b.deny {
		b.drop = true
	}
	return true
}

func (b *ruleBuilder) policy(r *security.Rule) *rbacv3.Policy {
	var perms []*rbacv3.Permission
	var prins []*rbacv3.Principal
	if len(r.To) > 0 {
		var ors []*rbacv3.Permission
		for i, t := range r.To {
			ors = append(ors, b.operation(fmt.Sprintf("to[%d].operation", i), t.GetOperation()))
		}
		perms = append(perms, orPerm(ors))
	}
	if len(r.From) > 0 {
		var ors []*rbacv3.Principal
		for i, f := range r.From {
			ors = append(ors, b.source(fmt.Sprintf("from[%d].source", i), f.GetSource()))
		}
		prins = append(prins, orPrin(ors))
	}
	for i, c := range r.When {
		pe, pr := b.condition(fmt.Sprintf("when[%d]", i), c)
		if pe != nil {
			perms = append(perms, pe)
		}
		if pr != nil {
			prins = append(prins, pr)
		}
	}
	return &rbacv3.Policy{Permissions: []*rbacv3.Permission{andPerm(perms)}, Principals: []*rbacv3.Principal{andPrin(prins)}}
}

func anyPerm() *rbacv3.Permission { return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}} }
func anyPrin() *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
}

func andPerm(ps []*rbacv3.Permission) *rbacv3.Permission {
	switch len(ps) {
	case 0:
		return anyPerm()
	case 1:
		return ps[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func orPerm(ps []*rbacv3.Permission) *rbacv3.Permission {
	if len(ps) == 1 {
		return ps[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func notPerm(p *rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: p}}
}

func andPrin(ps []*rbacv3.Principal) *rbacv3.Principal {
	switch len(ps) {
	case 0:
		return anyPrin()
	case 1:
		return ps[0]
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: ps}}}
}

func orPrin(ps []*rbacv3.Principal) *rbacv3.Principal {
	if len(ps) == 1 {
		return ps[0]
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: ps}}}
}

func notPrin(p *rbacv3.Principal) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: p}}
}

// permList adds OR(values) and NOT(OR(notValues)) of one field.
func (b *ruleBuilder) permList(out *[]*rbacv3.Permission, field string, httpOnly bool, values, notValues []string, one func(string) (*rbacv3.Permission, error)) {
	*out = append(*out, matchList(b, field, httpOnly, values, notValues, one, orPerm, notPerm)...)
}

// prinList is permList for principals.
func (b *ruleBuilder) prinList(out *[]*rbacv3.Principal, field string, httpOnly bool, values, notValues []string, one func(string) (*rbacv3.Principal, error)) {
	*out = append(*out, matchList(b, field, httpOnly, values, notValues, one, orPrin, notPrin)...)
}

// matchList builds OR(values) and NOT(OR(notValues)) of one field, for
// permissions and principals alike. A field the rule cannot use here
// (HTTP-only on a TCP port) or a value that does not translate is skipped
// through b.skip, which decides whether the rule still holds.
func matchList[T any](b *ruleBuilder, field string, httpOnly bool, values, notValues []string, one func(string) (T, error), or func([]T) T, not func(T) T) []T {
	var out []T
	for _, neg := range []bool{false, true} {
		vs := values
		f := field
		if neg {
			vs, f = notValues, "not"+strings.ToUpper(field[:1])+field[1:]
		}
		if len(vs) == 0 {
			continue
		}
		if httpOnly && b.skip(f, true, "") {
			continue
		}
		var ors []T
		bad := false
		for _, v := range vs {
			p, err := one(v)
			if err != nil {
				bad = true
				b.skip(f, false, err.Error())
				break
			}
			ors = append(ors, p)
		}
		if bad {
			continue
		}
		p := or(ors)
		if neg {
			p = not(p)
		}
		out = append(out, p)
	}
	return out
}

func (b *ruleBuilder) operation(field string, o *security.Operation) *rbacv3.Permission {
	var ands []*rbacv3.Permission
	if o == nil {
		return anyPerm()
	}
	b.permList(&ands, field+".hosts", true, o.Hosts, o.NotHosts, func(v string) (*rbacv3.Permission, error) {
		return headerPerm(":authority", hostMatcher(v, b.deny)), nil
	})
	b.permList(&ands, field+".ports", false, o.Ports, o.NotPorts, func(v string) (*rbacv3.Permission, error) {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("invalid port %q", v)
		}
		return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: uint32(n)}}, nil
	})
	b.permList(&ands, field+".methods", true, o.Methods, o.NotMethods, func(v string) (*rbacv3.Permission, error) {
		return headerPerm(":method", istioString(v, false)), nil
	})
	b.permList(&ands, field+".paths", true, o.Paths, o.NotPaths, func(v string) (*rbacv3.Permission, error) {
		sm, err := pathMatcher(v, b.deny)
		if err != nil {
			return nil, err
		}
		return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcher.PathMatcher{Rule: &matcher.PathMatcher_Path{Path: sm}}}}, nil
	})
	return andPerm(ands)
}

func (b *ruleBuilder) source(field string, s *security.Source) *rbacv3.Principal {
	var ands []*rbacv3.Principal
	if s == nil {
		return anyPrin()
	}
	b.prinList(&ands, field+".principals", false, s.Principals, s.NotPrincipals, func(v string) (*rbacv3.Principal, error) {
		return authenticated(principalMatcher(v)), nil
	})
	b.prinList(&ands, field+".requestPrincipals", true, s.RequestPrincipals, s.NotRequestPrincipals, func(v string) (*rbacv3.Principal, error) {
		return metadataPrin("request.auth.principal", nil, istioString(v, false), false), nil
	})
	b.prinList(&ands, field+".namespaces", false, s.Namespaces, s.NotNamespaces, func(v string) (*rbacv3.Principal, error) {
		return authenticated(namespaceMatcher(v)), nil
	})
	b.prinList(&ands, field+".serviceAccounts", false, s.ServiceAccounts, s.NotServiceAccounts, func(v string) (*rbacv3.Principal, error) {
		ns, sa, ok := strings.Cut(v, "/")
		if !ok { // a bare name is in the policy's namespace
			ns, sa = b.meta.Namespace, v
		}
		return authenticated(&matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: &matcher.RegexMatcher{
			Regex: "spiffe://[^/]+/ns/" + regexp.QuoteMeta(ns) + "/sa/" + regexp.QuoteMeta(sa)}}}), nil
	})
	b.prinList(&ands, field+".trustDomains", false, s.TrustDomains, s.NotTrustDomains, func(v string) (*rbacv3.Principal, error) {
		return authenticated(&matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: "spiffe://" + v + "/"}}), nil
	})
	b.prinList(&ands, field+".ipBlocks", false, s.IpBlocks, s.NotIpBlocks, func(v string) (*rbacv3.Principal, error) {
		c, err := cidrRange(v)
		if err != nil {
			return nil, err
		}
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: c}}, nil
	})
	b.prinList(&ands, field+".remoteIpBlocks", false, s.RemoteIpBlocks, s.NotRemoteIpBlocks, func(v string) (*rbacv3.Principal, error) {
		c, err := cidrRange(v)
		if err != nil {
			return nil, err
		}
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: c}}, nil
	})
	return andPrin(ands)
}

// headerNameRE is Envoy's HTTP_HEADER_NAME rule.
var headerNameRE = regexp.MustCompile("^:?[0-9a-zA-Z!#$%&'*+.^_|~`-]+$")

// claimPath parses request.auth.claims[a][b]... into its keys.
func claimPath(key string) ([]string, bool) {
	rest := strings.TrimPrefix(key, "request.auth.claims")
	var out []string
	for rest != "" {
		if rest[0] != '[' {
			return nil, false
		}
		end := strings.IndexByte(rest, ']')
		if end <= 1 {
			return nil, false
		}
		out = append(out, rest[1:end])
		rest = rest[end+1:]
	}
	return out, len(out) > 0
}

// condition translates one when condition into a permission or a
// principal (at most one is non-nil).
func (b *ruleBuilder) condition(field string, c *security.Condition) (*rbacv3.Permission, *rbacv3.Principal) {
	if c == nil {
		return nil, nil
	}
	var perms []*rbacv3.Permission
	var prins []*rbacv3.Principal
	key := c.Key
	cidrPrin := func(ip func(*core.CidrRange) *rbacv3.Principal) func(string) (*rbacv3.Principal, error) {
		return func(v string) (*rbacv3.Principal, error) {
			r, err := cidrRange(v)
			if err != nil {
				return nil, err
			}
			return ip(r), nil
		}
	}
	switch {
	case strings.HasPrefix(key, "request.headers[") && strings.HasSuffix(key, "]"):
		name := key[len("request.headers[") : len(key)-1]
		if !headerNameRE.MatchString(name) {
			b.skip("key", false, fmt.Sprintf("%q is not a valid header name", name))
			return nil, nil
		}
		b.permList(&perms, field+".values", true, c.Values, c.NotValues, func(v string) (*rbacv3.Permission, error) {
			if v == "*" {
				return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &route.HeaderMatcher{Name: name,
					HeaderMatchSpecifier: &route.HeaderMatcher_PresentMatch{PresentMatch: true}}}}, nil
			}
			if b.deny {
				return headerPerm(name, denyHeaderMatcher(v)), nil
			}
			return headerPerm(name, istioString(v, false)), nil
		})
	case key == "source.ip":
		b.prinList(&prins, field+".values", false, c.Values, c.NotValues, cidrPrin(func(r *core.CidrRange) *rbacv3.Principal {
			return &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: r}}
		}))
	case key == "remote.ip":
		b.prinList(&prins, field+".values", false, c.Values, c.NotValues, cidrPrin(func(r *core.CidrRange) *rbacv3.Principal {
			return &rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: r}}
		}))
	case key == "source.namespace":
		b.prinList(&prins, field+".values", false, c.Values, c.NotValues, func(v string) (*rbacv3.Principal, error) {
			return authenticated(namespaceMatcher(v)), nil
		})
	case key == "source.principal":
		b.prinList(&prins, field+".values", false, c.Values, c.NotValues, func(v string) (*rbacv3.Principal, error) {
			return authenticated(principalMatcher(v)), nil
		})
	case key == "request.auth.principal":
		b.prinList(&prins, field+".values", true, c.Values, c.NotValues, func(v string) (*rbacv3.Principal, error) {
			return metadataPrin("request.auth.principal", nil, istioString(v, false), false), nil
		})
	case key == "request.auth.audiences":
		b.prinList(&prins, field+".values", true, c.Values, c.NotValues, func(v string) (*rbacv3.Principal, error) {
			return metadataPrin("request.auth.audiences", nil, istioString(v, false), true), nil
		})
	case key == "request.auth.presenter":
		b.prinList(&prins, field+".values", true, c.Values, c.NotValues, func(v string) (*rbacv3.Principal, error) {
			return metadataPrin("request.auth.presenter", nil, istioString(v, false), false), nil
		})
	case strings.HasPrefix(key, "request.auth.claims["):
		path, ok := claimPath(key)
		if !ok {
			b.skip("key", false, fmt.Sprintf("invalid claim key %q", key))
			return nil, nil
		}
		b.prinList(&prins, field+".values", true, c.Values, c.NotValues, func(v string) (*rbacv3.Principal, error) {
			return metadataPrin("request.auth.claims", path, istioString(v, false), true), nil
		})
	case key == "destination.ip":
		b.permList(&perms, field+".values", false, c.Values, c.NotValues, func(v string) (*rbacv3.Permission, error) {
			r, err := cidrRange(v)
			if err != nil {
				return nil, err
			}
			return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationIp{DestinationIp: r}}, nil
		})
	case key == "destination.port":
		b.permList(&perms, field+".values", false, c.Values, c.NotValues, func(v string) (*rbacv3.Permission, error) {
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return nil, fmt.Errorf("invalid port %q", v)
			}
			return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: uint32(n)}}, nil
		})
	case key == "connection.sni":
		b.permList(&perms, field+".values", false, c.Values, c.NotValues, func(v string) (*rbacv3.Permission, error) {
			return &rbacv3.Permission{Rule: &rbacv3.Permission_RequestedServerName{RequestedServerName: istioString(v, false)}}, nil
		})
	default:
		b.skip("key", false, fmt.Sprintf("condition key %q is not supported by Weft; the rule is %s", key, map[bool]string{true: "applied without it (denies more)", false: "ignored (allows nothing)"}[b.deny]))
		return nil, nil
	}
	var pe *rbacv3.Permission
	var pr *rbacv3.Principal
	if len(perms) > 0 {
		pe = andPerm(perms)
	}
	if len(prins) > 0 {
		pr = andPrin(prins)
	}
	return pe, pr
}

func headerPerm(name string, sm *matcher.StringMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &route.HeaderMatcher{Name: name,
		HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{StringMatch: sm}}}}
}

func authenticated(sm *matcher.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: sm}}}
}

// metadataPrin matches istio_authn metadata written by the JWT filter;
// list is set for list-valued entries (audiences, claims).
func metadataPrin(key string, path []string, sm *matcher.StringMatcher, list bool) *rbacv3.Principal {
	segs := []*matcher.MetadataMatcher_PathSegment{{Segment: &matcher.MetadataMatcher_PathSegment_Key{Key: key}}}
	for _, p := range path {
		segs = append(segs, &matcher.MetadataMatcher_PathSegment{Segment: &matcher.MetadataMatcher_PathSegment_Key{Key: p}})
	}
	v := &matcher.ValueMatcher{MatchPattern: &matcher.ValueMatcher_StringMatch{StringMatch: sm}}
	if list {
		v = &matcher.ValueMatcher{MatchPattern: &matcher.ValueMatcher_ListMatch{ListMatch: &matcher.ListMatcher{
			MatchPattern: &matcher.ListMatcher_OneOf{OneOf: v}}}}
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: &matcher.MetadataMatcher{
		Filter: "istio_authn", Path: segs, Value: v}}}
}

// istioString is Istio's value syntax: "*" any non-empty value, "x*"
// prefix, "*x" suffix, otherwise exact.
func istioString(v string, ignoreCase bool) *matcher.StringMatcher {
	var sm *matcher.StringMatcher
	switch {
	case v == "*":
		sm = &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: ".+"}}}
	case strings.HasSuffix(v, "*"):
		sm = &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: strings.TrimSuffix(v, "*")}}
	case strings.HasPrefix(v, "*"):
		sm = &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Suffix{Suffix: strings.TrimPrefix(v, "*")}}
	default:
		sm = &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: v}}
	}
	sm.IgnoreCase = ignoreCase
	return sm
}

// hostMatcher matches :authority case-insensitively. For DENY rules it
// also matches the host with a trailing dot or any port, so that
// "example.com.:80" cannot slip past a deny of "example.com".
func hostMatcher(v string, deny bool) *matcher.StringMatcher {
	if !deny || v == "*" {
		return istioString(v, true)
	}
	var re string
	switch {
	case strings.HasSuffix(v, "*"):
		re = regexp.QuoteMeta(strings.TrimSuffix(v, "*")) + ".*"
	case strings.HasPrefix(v, "*"):
		re = ".*" + regexp.QuoteMeta(strings.TrimPrefix(v, "*")) + `\.?(:[0-9]*)?`
	default:
		re = regexp.QuoteMeta(strings.TrimSuffix(v, ".")) + `\.?(:[0-9]*)?`
	}
	return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: "(?i)" + re}}}
}

// principalMatcher matches a peer identity "td/ns/x/sa/y" as a SPIFFE ID.
func principalMatcher(v string) *matcher.StringMatcher {
	switch {
	case v == "*":
		return istioString(v, false)
	case strings.HasPrefix(v, "*"):
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Suffix{Suffix: strings.TrimPrefix(v, "*")}}
	case strings.HasSuffix(v, "*"):
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: "spiffe://" + strings.TrimSuffix(v, "*")}}
	}
	return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: "spiffe://" + v}}
}

// namespaceMatcher matches identities in a namespace (Istio's regex).
func namespaceMatcher(v string) *matcher.StringMatcher {
	var ns string
	switch {
	case v == "*":
		ns = "[^/]+"
	case strings.HasSuffix(v, "*"):
		ns = regexp.QuoteMeta(strings.TrimSuffix(v, "*")) + "[^/]*"
	case strings.HasPrefix(v, "*"):
		ns = "[^/]*" + regexp.QuoteMeta(strings.TrimPrefix(v, "*"))
	default:
		ns = regexp.QuoteMeta(v)
	}
	return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: ".*/ns/" + ns + "/.*"}}}
}

// pathParams matches RFC 3986 path parameters (";a=b") after a segment.
const pathParams = "(;[^/]*)?"

// pathMatcher is Istio's path syntax, including {*} and {**} templates.
// For DENY rules every segment may also carry path parameters, which
// backends such as servlet containers strip: a deny of "/admin/*" also
// denies "/admin;x=y/z".
func pathMatcher(v string, deny bool) (*matcher.StringMatcher, error) {
	if v == "*" {
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: "/"}}, nil
	}
	if !deny && !strings.ContainsAny(v, "{}") {
		return istioString(v, false), nil
	}
	params := ""
	if deny {
		params = pathParams
	}
	var lead, tail string
	switch {
	case strings.HasSuffix(v, "*"):
		v, tail = strings.TrimSuffix(v, "*"), ".*"
	case strings.HasPrefix(v, "*"):
		v, lead = strings.TrimPrefix(v, "*"), ".*"
	}
	var re strings.Builder
	re.WriteString(lead)
	segs := strings.Split(v, "/")
	for i, s := range segs {
		if i > 0 {
			re.WriteString("/")
		}
		switch s {
		case "{*}":
			re.WriteString("[^/]+")
		case "{**}":
			re.WriteString(".+")
		default:
			if strings.ContainsAny(s, "{}") {
				return nil, fmt.Errorf("path template %q is not supported", v)
			}
			re.WriteString(regexp.QuoteMeta(s))
		}
		if s != "" && (i < len(segs)-1 || tail == "") {
			re.WriteString(params)
		}
	}
	re.WriteString(tail)
	return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: re.String()}}}, nil
}

// denyHeaderMatcher matches a header value for DENY rules: each of the
// comma-joined values of a repeated header is tried, so that adding a
// second header line cannot hide the denied value.
func denyHeaderMatcher(v string) *matcher.StringMatcher {
	const before, after = `(?s)(.*,)?\s*`, `\s*(,.*)?`
	var re string
	switch {
	case v == "*":
		re = "(?s).+"
	case strings.HasSuffix(v, "*"):
		re = before + regexp.QuoteMeta(strings.TrimSuffix(v, "*")) + ".*"
	case strings.HasPrefix(v, "*"):
		re = "(?s).*" + regexp.QuoteMeta(strings.TrimPrefix(v, "*")) + after
	default:
		re = before + regexp.QuoteMeta(v) + after
	}
	return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: re}}}
}

func cidrRange(v string) (*core.CidrRange, error) {
	if p, err := netip.ParsePrefix(v); err == nil {
		return &core.CidrRange{AddressPrefix: p.Addr().String(), PrefixLen: u32(uint32(p.Bits()))}, nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return nil, fmt.Errorf("invalid IP address or CIDR %q", v)
	}
	return &core.CidrRange{AddressPrefix: a.String(), PrefixLen: u32(uint32(a.BitLen()))}, nil
}
