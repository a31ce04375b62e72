// Package jwt is weft-proxy's JWT authentication filter
// (envoy.filters.http.jwt_authn): it extracts tokens from headers and
// query parameters, verifies them against inline or remote JWKS (RS*,
// PS*, ES*, EdDSA; never "none" or HMAC), checks issuer, audiences, exp
// and nbf with clock skew, enforces the configured requirements, and
// exposes the verified claims as dynamic metadata to RBAC: under the
// provider's payload_in_metadata key in envoy.filters.http.jwt_authn, and
// under istio_authn as request.auth.principal, request.auth.audiences,
// request.auth.presenter and request.auth.claims (as Istio's authn
// filter did).
package jwt

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"

	"github.com/weftmesh/weft/internal/proxy/httpproxy"
)

// TypeURL is the type of the filter's configuration.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"

// Metadata namespaces written by the filter.
const (
	FilterName      = "envoy.filters.http.jwt_authn"
	IstioAuthnName  = "istio_authn"
	defaultSkew     = 60 * time.Second
	defaultCacheTTL = 10 * time.Minute
)

// Filter is a compiled jwt_authn filter. It is safe for concurrent use;
// remote key sets are cached by their provider.
type Filter struct {
	providers           map[string]*provider
	rules               []rule
	bypassCORSPreflight bool
	// Now is the clock (tests may set it before use).
	Now   func() time.Time
	Stats *Stats
}

// Stats are the filter's counters (Envoy's jwt_authn.allowed, .denied).
type Stats struct {
	Allowed, Denied atomic.Uint64
}

type rule struct {
	prefix, path string
	req          requirement
}

type provider struct {
	name           string
	issuer         string
	audiences      []string
	headers        []headerLoc
	params         []string
	forward        bool
	payloadHeader  string
	payloadMeta    string
	claimToHeaders []claimHeader
	skew           time.Duration
	keys           keySource
	verified       *verifiedCache
}

type headerLoc struct{ name, prefix string }
type claimHeader struct{ header, claim string }

// Compile compiles a JwtAuthentication configuration. Remote key sets are
// fetched through their http_uri cluster when clusters has it (clusters
// may be nil: then directly).
func Compile(field string, c *jwtv3.JwtAuthentication, clusters Clusters) (*Filter, error) {
	f := &Filter{providers: map[string]*provider{}, bypassCORSPreflight: c.GetBypassCorsPreflight(), Now: time.Now, Stats: &Stats{}}
	if c.GetFilterStateRules() != nil {
		return nil, fmt.Errorf("%s.filter_state_rules: not supported", field)
	}
	for name, p := range c.GetProviders() {
		pp, err := compileProvider(fmt.Sprintf("%s.providers[%s]", field, name), name, p, clusters)
		if err != nil {
			return nil, err
		}
		f.providers[name] = pp
	}
	reqs := map[string]requirement{}
	for name, r := range c.GetRequirementMap() {
		req, err := f.compileRequirement(fmt.Sprintf("%s.requirement_map[%s]", field, name), r)
		if err != nil {
			return nil, err
		}
		reqs[name] = req
	}
	for i, r := range c.GetRules() {
		rf := fmt.Sprintf("%s.rules[%d]", field, i)
		ru, err := compileMatch(rf+".match", r.GetMatch())
		if err != nil {
			return nil, err
		}
		switch t := r.GetRequirementType().(type) {
		case *jwtv3.RequirementRule_Requires:
			ru.req, err = f.compileRequirement(rf+".requires", t.Requires)
			if err != nil {
				return nil, err
			}
		case *jwtv3.RequirementRule_RequirementName:
			req, ok := reqs[t.RequirementName]
			if !ok {
				return nil, fmt.Errorf("%s.requirement_name: %q is not in requirement_map", rf, t.RequirementName)
			}
			ru.req = req
		default:
			ru.req = allowAll{} // no requirement: tokens are verified if present, never enforced
		}
		f.rules = append(f.rules, ru)
	}
	return f, nil
}

func compileMatch(field string, m *routev3.RouteMatch) (rule, error) {
	if len(m.GetHeaders()) > 0 || len(m.GetQueryParameters()) > 0 || m.GetCaseSensitive() != nil && !m.GetCaseSensitive().GetValue() {
		return rule{}, fmt.Errorf("%s: only prefix and path matches are supported", field)
	}
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		return rule{prefix: p.Prefix}, nil
	case *routev3.RouteMatch_Path:
		return rule{path: p.Path}, nil
	}
	return rule{}, fmt.Errorf("%s: unsupported path specifier %T", field, m.GetPathSpecifier())
}

func compileProvider(field, name string, p *jwtv3.JwtProvider, clusters Clusters) (*provider, error) {
	pp := &provider{name: name, issuer: p.GetIssuer(), audiences: p.GetAudiences(), params: p.GetFromParams(),
		forward: p.GetForward(), payloadHeader: p.GetForwardPayloadHeader(), payloadMeta: p.GetPayloadInMetadata(), skew: defaultSkew,
		verified: newVerifiedCache(verifiedCacheSize)}
	if len(p.GetFromCookies()) > 0 || p.GetSubjects() != nil || p.GetRequireExpiration() || p.GetMaxLifetime() != nil {
		return nil, fmt.Errorf("%s: from_cookies, subjects, require_expiration and max_lifetime are not supported", field)
	}
	if p.GetClockSkewSeconds() != 0 {
		pp.skew = time.Duration(p.GetClockSkewSeconds()) * time.Second
	}
	for _, h := range p.GetFromHeaders() {
		pp.headers = append(pp.headers, headerLoc{name: h.GetName(), prefix: h.GetValuePrefix()})
	}
	if len(pp.headers) == 0 && len(pp.params) == 0 {
		pp.headers = []headerLoc{{name: "Authorization", prefix: "Bearer "}}
		pp.params = []string{"access_token"}
	}
	for _, c := range p.GetClaimToHeaders() {
		pp.claimToHeaders = append(pp.claimToHeaders, claimHeader{header: c.GetHeaderName(), claim: c.GetClaimName()})
	}
	switch s := p.GetJwksSourceSpecifier().(type) {
	case *jwtv3.JwtProvider_LocalJwks:
		data := []byte(s.LocalJwks.GetInlineString())
		if len(data) == 0 {
			data = s.LocalJwks.GetInlineBytes()
		}
		ks, err := parseJWKS(data)
		if err != nil {
			return nil, fmt.Errorf("%s.local_jwks: %v", field, err)
		}
		pp.keys = staticKeys{ks}
	case *jwtv3.JwtProvider_RemoteJwks:
		u := s.RemoteJwks.GetHttpUri().GetUri()
		if pu, err := url.Parse(u); err != nil || pu.Scheme != "http" && pu.Scheme != "https" {
			return nil, fmt.Errorf("%s.remote_jwks.http_uri.uri: %q is not an http(s) URL", field, u)
		}
		ttl := defaultCacheTTL
		if d := s.RemoteJwks.GetCacheDuration(); d != nil {
			ttl = d.AsDuration()
		}
		timeout := time.Second
		if d := s.RemoteJwks.GetHttpUri().GetTimeout(); d != nil && d.AsDuration() > 0 {
			timeout = d.AsDuration()
		}
		pp.keys = newRemoteKeys(u, s.RemoteJwks.GetHttpUri().GetCluster(), clusters, ttl, timeout)
	default:
		return nil, fmt.Errorf("%s: jwks source required (local_jwks or remote_jwks)", field)
	}
	return pp, nil
}

// Decode implements httpproxy.Filter.
func (f *Filter) Decode(r *http.Request, st *httpproxy.FilterState) *httpproxy.LocalReply {
	if f.bypassCORSPreflight && r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != "" {
		return nil
	}
	path := r.URL.EscapedPath()
	var req requirement
	for _, ru := range f.rules {
		if ru.path != "" && path == ru.path || ru.path == "" && strings.HasPrefix(path, ru.prefix) {
			req = ru.req
			break
		}
	}
	if req == nil {
		return nil
	}
	ev := &evaluation{f: f, r: r, now: f.Now(), results: map[*provider]*outcome{}}
	if err := req.check(ev); err != nil {
		f.Stats.Denied.Add(1)
		host := r.Host
		return &httpproxy.LocalReply{Status: http.StatusUnauthorized, Body: err.Error(),
			Details: "jwt_authn_access_denied{" + strings.ReplaceAll(err.Error(), " ", "_") + "}",
			Header:  http.Header{"Www-Authenticate": {fmt.Sprintf(`Bearer realm="http://%s%s", error="invalid_token"`, host, path)}}}
	}
	f.Stats.Allowed.Add(1)
	ev.apply(st)
	return nil
}

// evaluation is the verification of one request's tokens.
type evaluation struct {
	f       *Filter
	r       *http.Request
	now     time.Time
	results map[*provider]*outcome
}

// outcome is one provider's verdict: verified tokens, or an error
// (StatusMissing when it found no token).
type outcome struct {
	tok  *token
	from headerLoc
	err  error
}

// extract returns the tokens at p's locations.
func (ev *evaluation) extract(p *provider) []struct {
	raw  string
	from headerLoc
} {
	var out []struct {
		raw  string
		from headerLoc
	}
	for _, h := range p.headers {
		for _, v := range ev.r.Header.Values(h.name) {
			if h.prefix == "" {
				out = append(out, struct {
					raw  string
					from headerLoc
				}{strings.TrimSpace(v), h})
				continue
			}
			if len(v) >= len(h.prefix) && strings.EqualFold(v[:len(h.prefix)], h.prefix) {
				out = append(out, struct {
					raw  string
					from headerLoc
				}{strings.TrimSpace(v[len(h.prefix):]), h})
			}
		}
	}
	if len(p.params) > 0 {
		q, _ := url.ParseQuery(ev.r.URL.RawQuery)
		for _, name := range p.params {
			for _, v := range q[name] {
				out = append(out, struct {
					raw  string
					from headerLoc
				}{v, headerLoc{}})
			}
		}
	}
	return out
}

// verify checks p's tokens once per request. All tokens at p's locations
// must verify; a token of another issuer is that issuer's business.
func (ev *evaluation) verify(p *provider, audiences []string) *outcome {
	if o, ok := ev.results[p]; ok && audiences == nil {
		return o
	}
	toks := ev.extract(p)
	o := &outcome{err: StatusMissing}
	for _, t := range toks {
		tok, err := parse(t.raw)
		if err == nil && p.issuer != "" && tok.str("iss") != p.issuer {
			err = StatusUnknownIssuer
		}
		if err == nil {
			err = tok.checkTime(ev.now, p.skew)
		}
		if err == nil {
			err = checkAudiences(tok, p.audiences, audiences)
		}
		if err == nil {
			ks, kerr := p.keys.keys(ev.now)
			if kerr != nil {
				err = StatusJwksFetchFail
			} else if !p.verified.has(t.raw, ks) {
				if err = tok.verifySignature(ks); err == nil {
					p.verified.add(t.raw, ks)
				}
			}
		}
		if err != nil {
			o = &outcome{err: err}
			break
		}
		if o.tok == nil {
			o = &outcome{tok: tok, from: t.from}
		}
	}
	if audiences == nil {
		ev.results[p] = o
	}
	return o
}

func checkAudiences(t *token, configured, override []string) error {
	want := configured
	if override != nil {
		want = override
	}
	if len(want) == 0 {
		return nil
	}
	for _, a := range t.audiences() {
		for _, w := range want {
			if a == w || strings.TrimSuffix(a, "/") == strings.TrimSuffix(w, "/") {
				return nil
			}
		}
	}
	return StatusAudience
}

// apply writes the verified tokens' metadata and headers.
func (ev *evaluation) apply(st *httpproxy.FilterState) {
	names := make([]string, 0, len(ev.results))
	byName := map[string]*provider{}
	for p := range ev.results {
		names = append(names, p.name)
		byName[p.name] = p
	}
	sort.Strings(names)
	first := true
	for _, n := range names {
		p := byName[n]
		o := ev.results[p]
		if o.tok == nil {
			continue
		}
		claims := plain(o.tok.claims).(map[string]any)
		if p.payloadMeta != "" {
			st.SetMetadata(FilterName, p.payloadMeta, claims)
		}
		if first {
			first = false
			st.SetMetadata(IstioAuthnName, "request.auth.principal", o.tok.str("iss")+"/"+o.tok.str("sub"))
			var auds []any
			for _, a := range o.tok.audiences() {
				auds = append(auds, a)
			}
			st.SetMetadata(IstioAuthnName, "request.auth.audiences", auds)
			st.SetMetadata(IstioAuthnName, "request.auth.presenter", o.tok.str("azp"))
			st.SetMetadata(IstioAuthnName, "request.auth.claims", listClaims(claims))
			st.SetMetadata(IstioAuthnName, "request.auth.raw_claims", claims)
		}
		if p.payloadHeader != "" {
			ev.r.Header.Set(p.payloadHeader, o.tok.payload)
		}
		for _, ch := range p.claimToHeaders {
			if v, ok := claimString(claims[ch.claim]); ok {
				ev.r.Header.Set(ch.header, v)
			}
		}
		if !p.forward && o.from.name != "" {
			ev.r.Header.Del(o.from.name)
		}
	}
}

// plain converts decoded JSON (with json.Number) to metadata values.
func plain(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, _ := x.Float64()
		return f
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = plain(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plain(e)
		}
		return out
	}
	return v
}

// listClaims turns every leaf claim into a list of strings, recursing
// into objects, as Istio's authn filter did so that RBAC list matchers
// apply to string and list claims alike.
func listClaims(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch x := v.(type) {
		case map[string]any:
			out[k] = listClaims(x)
		case []any:
			var l []any
			for _, e := range x {
				if s, ok := claimString(e); ok {
					l = append(l, s)
				}
			}
			out[k] = l
		default:
			if s, ok := claimString(x); ok {
				out[k] = []any{s}
			}
		}
	}
	return out
}

func claimString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	case float64:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%f", x), "0"), "."), true
	}
	return "", false
}
