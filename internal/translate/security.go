package translate

import (
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	httprbac "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netrbac "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/types/known/emptypb"
	security "istio.io/api/security/v1beta1"

	"github.com/weftmesh/weft/internal/model"
)

// Security filter names.
const (
	filterJWT         = "envoy.filters.http.jwt_authn"
	filterRBAC        = "envoy.filters.http.rbac"
	filterNetworkRBAC = "envoy.filters.network.rbac"
)

// MetadataPathNormalization is the proxy metadata key that selects the
// mesh's path normalization, Istio's meshConfig.pathNormalization:
// "NONE", "BASE" (the default: RFC 3986 normalization, backslashes as
// slashes), "MERGE_SLASHES" (BASE and collapsing "//"), or
// "DECODE_AND_MERGE_SLASHES" (MERGE_SLASHES and decoding %2F and %5C
// first). weftd sets it for every proxy from its configuration.
const MetadataPathNormalization = "PATH_NORMALIZATION"

// pathNormalization reads the proxy's path normalization option.
func pathNormalization(proxy *model.Proxy, diags *diagnostics) (normalize, merge bool, slashes hcm.HttpConnectionManager_PathWithEscapedSlashesAction) {
	switch v := proxy.Metadata[MetadataPathNormalization]; v {
	case "NONE":
		return false, false, hcm.HttpConnectionManager_KEEP_UNCHANGED
	case "", "BASE", "DEFAULT":
		return true, false, hcm.HttpConnectionManager_KEEP_UNCHANGED
	case "MERGE_SLASHES":
		return true, true, hcm.HttpConnectionManager_KEEP_UNCHANGED
	case "DECODE_AND_MERGE_SLASHES":
		return true, true, hcm.HttpConnectionManager_UNESCAPE_AND_FORWARD
	default:
		diags.errorf(nil, "proxy.metadata."+MetadataPathNormalization, "unknown path normalization %q (want NONE, BASE, MERGE_SLASHES or DECODE_AND_MERGE_SLASHES); using BASE", v)
		return true, false, hcm.HttpConnectionManager_KEEP_UNCHANGED
	}
}

// buildJWT translates the RequestAuthentications selecting proxy into one
// jwt_authn configuration: a provider per issuer, and a requirement that
// any provider's token verify or none be present (Istio: a missing token
// passes; an invalid one is 401). It returns nil when none applies.
func buildJWT(snap *model.Snapshot, proxy *model.Proxy, diags *diagnostics) *jwtv3.JwtAuthentication {
	cfgs := append([]*model.Config(nil), snap.List(model.KindRequestAuthentication)...)
	sort.Slice(cfgs, func(i, j int) bool {
		if cfgs[i].Namespace != cfgs[j].Namespace {
			return cfgs[i].Namespace < cfgs[j].Namespace
		}
		return cfgs[i].Name < cfgs[j].Name
	})
	providers := map[string]*jwtv3.JwtProvider{}
	var names []string
	for _, c := range cfgs {
		ra, ok := c.Spec.(*security.RequestAuthentication)
		if !ok || !policyApplies(c.Namespace, ra.Selector, ra.TargetRef, ra.TargetRefs, proxy) {
			continue
		}
		for i, r := range ra.JwtRules {
			if r == nil || r.Issuer == "" {
				continue
			}
			field := fmt.Sprintf("spec.jwtRules[%d]", i)
			if _, dup := providers[r.Issuer]; dup {
				diags.errorf(&c.Meta, field+".issuer", "issuer %q is also configured by another rule selecting this workload; the first (by namespace/name) is used", r.Issuer)
				continue
			}
			p, err := jwtProvider(r)
			if err != nil {
				diags.errorf(&c.Meta, field, "%v; tokens of this issuer are rejected", err)
				continue
			}
			providers[r.Issuer] = p
			names = append(names, r.Issuer)
		}
	}
	if len(providers) == 0 {
		return nil
	}
	sort.Strings(names)
	var any []*jwtv3.JwtRequirement
	for _, n := range names {
		any = append(any, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: n}})
	}
	any = append(any, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}})
	return &jwtv3.JwtAuthentication{
		Providers: providers,
		Rules: []*jwtv3.RequirementRule{{
			Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
			RequirementType: &jwtv3.RequirementRule_Requires{Requires: &jwtv3.JwtRequirement{
				RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: any}}}},
		}},
		BypassCorsPreflight: true,
	}
}

// jwtProvider translates one JWTRule.
func jwtProvider(r *security.JWTRule) (*jwtv3.JwtProvider, error) {
	p := &jwtv3.JwtProvider{
		Issuer:               r.Issuer,
		Audiences:            r.Audiences,
		Forward:              r.ForwardOriginalToken,
		ForwardPayloadHeader: r.OutputPayloadToHeader,
		PayloadInMetadata:    r.Issuer,
		FromParams:           r.FromParams,
	}
	for _, h := range r.FromHeaders {
		if headerNameRE.MatchString(h.GetName()) {
			p.FromHeaders = append(p.FromHeaders, &jwtv3.JwtHeader{Name: h.GetName(), ValuePrefix: h.GetPrefix()})
		}
	}
	for _, ch := range r.OutputClaimToHeaders {
		if headerNameRE.MatchString(ch.GetHeader()) && ch.GetClaim() != "" {
			p.ClaimToHeaders = append(p.ClaimToHeaders, &jwtv3.JwtClaimToHeader{HeaderName: ch.GetHeader(), ClaimName: ch.GetClaim()})
		}
	}
	timeout := dur(5e9)
	if r.Timeout != nil && r.Timeout.AsDuration() > 0 {
		timeout = r.Timeout
	}
	switch {
	case r.Jwks != "":
		p.JwksSourceSpecifier = &jwtv3.JwtProvider_LocalJwks{LocalJwks: &core.DataSource{Specifier: &core.DataSource_InlineString{InlineString: r.Jwks}}}
	case r.JwksUri != "":
		u, err := url.Parse(r.JwksUri)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("jwksUri %q is not an http(s) URL", r.JwksUri)
		}
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		host := u.Host
		if h, pt, err := net.SplitHostPort(u.Host); err == nil {
			host, port = h, pt
		}
		p.JwksSourceSpecifier = &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: &jwtv3.RemoteJwks{
			HttpUri:       &core.HttpUri{Uri: r.JwksUri, HttpUpstreamType: &core.HttpUri_Cluster{Cluster: "outbound|" + port + "||" + host}, Timeout: timeout},
			CacheDuration: dur(5 * 60e9),
		}}
	default:
		return nil, fmt.Errorf("jwks or jwksUri is required (OpenID discovery from the issuer is not supported)")
	}
	return p, nil
}

// securityFilters are the filters a proxy's authorizing listeners get.
type securityFilters struct {
	http    []*hcm.HttpFilter
	tcp     []*listener.Filter
	normal  bool
	merge   bool
	slashes hcm.HttpConnectionManager_PathWithEscapedSlashesAction
}

func newSecurityFilters(snap *model.Snapshot, proxy *model.Proxy, diags *diagnostics) *securityFilters {
	s := &securityFilters{}
	s.normal, s.merge, s.slashes = pathNormalization(proxy, diags)
	if j := buildJWT(snap, proxy, diags); j != nil {
		s.http = append(s.http, httpFilter(filterJWT, j))
	}
	az := buildAuthz(snap, proxy, diags)
	for _, r := range az.rbacConfigs(false) {
		s.http = append(s.http, httpFilter(filterRBAC, &httprbac.RBAC{Rules: r}))
	}
	for _, r := range az.rbacConfigs(true) {
		s.tcp = append(s.tcp, &listener.Filter{Name: filterNetworkRBAC, ConfigType: &listener.Filter_TypedConfig{TypedConfig: toAny(&netrbac.RBAC{
			Rules: r, StatPrefix: statPrefixFor(r.Action)})}})
	}
	return s
}

func statPrefixFor(a rbacv3.RBAC_Action) string {
	return "tcp." + strings.ToLower(a.String()) + "."
}

// applySecurity adds authentication, authorization and path
// normalization to the listeners that receive traffic for the proxy: a
// sidecar's inbound listeners, all of a gateway's.
func applySecurity(ls []*listener.Listener, s *securityFilters, gateway bool) {
	for _, l := range ls {
		if !gateway && l.TrafficDirection != core.TrafficDirection_INBOUND {
			continue
		}
		for _, fc := range l.FilterChains {
			s.applyChain(fc)
		}
		if l.DefaultFilterChain != nil {
			s.applyChain(l.DefaultFilterChain)
		}
	}
}

func (s *securityFilters) applyChain(fc *listener.FilterChain) {
	for i, f := range fc.Filters {
		switch f.Name {
		case filterHCM:
			m := &hcm.HttpConnectionManager{}
			if err := f.GetTypedConfig().UnmarshalTo(m); err != nil {
				panic("translate: generated HCM does not unmarshal: " + err.Error())
			}
			m.HttpFilters = append(append([]*hcm.HttpFilter{}, s.http...), m.HttpFilters...)
			m.NormalizePath = wrapBool(s.normal)
			m.MergeSlashes = s.merge
			m.PathWithEscapedSlashesAction = s.slashes
			fc.Filters[i] = &listener.Filter{Name: filterHCM, ConfigType: &listener.Filter_TypedConfig{TypedConfig: toAny(m)}}
			return
		case filterTCPProxy:
			if len(s.tcp) > 0 {
				fc.Filters = append(append(append([]*listener.Filter{}, fc.Filters[:i]...), s.tcp...), fc.Filters[i:]...)
			}
			return
		}
	}
}
