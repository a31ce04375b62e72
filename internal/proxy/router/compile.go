package router

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// Table is a compiled RouteConfiguration. It is immutable and safe for
// concurrent use.
type Table struct {
	Name string
	// ignorePort is ignore_port_in_host_matching: the authority's port is
	// left out when choosing the virtual host (Istio's gateways).
	ignorePort bool
	exact      map[string]*VirtualHost
	suffixes   []wildcard // "*.example.com": longest first
	prefixes   []wildcard // "example.*": longest first
	any        *VirtualHost
}

type wildcard struct {
	part string
	vh   *VirtualHost
}

// VirtualHost is a compiled virtual host.
type VirtualHost struct {
	Name   string
	Routes []*Route
}

// knownPerFilter lists typed_per_filter_config keys that are understood
// or safely ignored; any other non-optional key is rejected.
var knownPerFilter = map[string]bool{
	"envoy.filters.http.fault": true,
	"envoy.filters.http.cors":  true,
}

// Compile turns rc into a Table, or explains, naming the field, why it
// cannot be served.
func Compile(rc *routev3.RouteConfiguration) (*Table, error) {
	t := &Table{Name: rc.GetName(), exact: map[string]*VirtualHost{}, ignorePort: rc.GetIgnorePortInHostMatching()}
	base := fmt.Sprintf("route %s", rc.GetName())
	reqGlobal, err := compileMutation(base+": request_headers_to_add", rc.GetRequestHeadersToAdd(), rc.GetRequestHeadersToRemove())
	if err != nil {
		return nil, err
	}
	respGlobal, err := compileMutation(base+": response_headers_to_add", rc.GetResponseHeadersToAdd(), rc.GetResponseHeadersToRemove())
	if err != nil {
		return nil, err
	}
	seen := map[string]string{}
	for i, vhc := range rc.GetVirtualHosts() {
		field := fmt.Sprintf("%s: virtual_hosts[%d] (%s)", base, i, vhc.GetName())
		vh, err := compileVirtualHost(field, vhc, reqGlobal, respGlobal)
		if err != nil {
			return nil, err
		}
		for _, d := range vhc.GetDomains() {
			d = strings.ToLower(d)
			if prev, dup := seen[d]; dup {
				return nil, fmt.Errorf("%s.domains: %q already used by virtual host %s", field, d, prev)
			}
			seen[d] = vhc.GetName()
			switch {
			case d == "*":
				t.any = vh
			case strings.HasPrefix(d, "*"):
				t.suffixes = append(t.suffixes, wildcard{d[1:], vh})
			case strings.HasSuffix(d, "*"):
				t.prefixes = append(t.prefixes, wildcard{d[:len(d)-1], vh})
			default:
				t.exact[d] = vh
			}
		}
	}
	longest := func(w []wildcard) {
		sort.SliceStable(w, func(i, j int) bool { return len(w[i].part) > len(w[j].part) })
	}
	longest(t.suffixes)
	longest(t.prefixes)
	return t, nil
}

func compileVirtualHost(field string, vhc *routev3.VirtualHost, reqGlobal, respGlobal HeaderMutation) (*VirtualHost, error) {
	vh := &VirtualHost{Name: vhc.GetName()}
	reqVH, err := compileMutation(field+".request_headers_to_add", vhc.GetRequestHeadersToAdd(), vhc.GetRequestHeadersToRemove())
	if err != nil {
		return nil, err
	}
	respVH, err := compileMutation(field+".response_headers_to_add", vhc.GetResponseHeadersToAdd(), vhc.GetResponseHeadersToRemove())
	if err != nil {
		return nil, err
	}
	if err := checkPerFilter(field, vhc.GetTypedPerFilterConfig()); err != nil {
		return nil, err
	}
	var vhFault *Fault
	if a := perFilter(vhc.GetTypedPerFilterConfig(), "envoy.filters.http.fault"); a != nil {
		if vhFault, err = compileFault(field+".typed_per_filter_config[envoy.filters.http.fault]", a); err != nil {
			return nil, err
		}
	}
	var vhCors *Cors
	if a := perFilter(vhc.GetTypedPerFilterConfig(), "envoy.filters.http.cors"); a != nil {
		if vhCors, err = compileCors(field+".typed_per_filter_config[envoy.filters.http.cors]", a); err != nil {
			return nil, err
		}
	}
	var vhRetry *RetryPolicy
	if rp := vhc.GetRetryPolicy(); rp != nil {
		if vhRetry, err = compileRetry(field+".retry_policy", rp); err != nil {
			return nil, err
		}
	}
	for j, rc := range vhc.GetRoutes() {
		rf := fmt.Sprintf("%s.routes[%d]", field, j)
		if rc.GetName() != "" {
			rf += " (" + rc.GetName() + ")"
		}
		r, err := compileRoute(rf, rc)
		if err != nil {
			return nil, err
		}
		if r.Fault == nil {
			r.Fault = vhFault
		}
		if r.Cors == nil {
			r.Cors = vhCors
		}
		if r.Retry == nil && r.Action <= ActionWeighted {
			r.Retry = vhRetry
		}
		// Envoy's default order: route, then virtual host, then global.
		r.RequestHeaders.merge(reqVH)
		r.RequestHeaders.merge(reqGlobal)
		r.ResponseHeaders.merge(respVH)
		r.ResponseHeaders.merge(respGlobal)
		vh.Routes = append(vh.Routes, r)
	}
	return vh, nil
}

func checkPerFilter(field string, m map[string]*anypb.Any) error {
	for name, a := range m {
		if knownPerFilter[name] {
			continue
		}
		if a.GetTypeUrl() == "type.googleapis.com/envoy.config.route.v3.FilterConfig" {
			fc := &routev3.FilterConfig{}
			if a.UnmarshalTo(fc) == nil && fc.GetIsOptional() {
				continue
			}
		}
		return fmt.Errorf("%s.typed_per_filter_config: unsupported filter %q", field, name)
	}
	return nil
}

func compileRoute(field string, rc *routev3.Route) (*Route, error) {
	r := &Route{Name: rc.GetName(), caseSensitive: true}
	m := rc.GetMatch()
	if cs := m.GetCaseSensitive(); cs != nil {
		r.caseSensitive = cs.GetValue()
	}
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		r.pathKind, r.path = pathPrefix, p.Prefix
	case *routev3.RouteMatch_Path:
		r.pathKind, r.path = pathExact, p.Path
	case *routev3.RouteMatch_SafeRegex:
		re, err := compileRegex(field+".match.safe_regex", p.SafeRegex.GetRegex(), !r.caseSensitive)
		if err != nil {
			return nil, err
		}
		r.pathKind, r.pathRe = pathRegex, re
	case *routev3.RouteMatch_PathSeparatedPrefix:
		r.pathKind, r.path = pathSeparated, p.PathSeparatedPrefix
	default:
		return nil, fmt.Errorf("%s.match: unsupported path specifier %T", field, p)
	}
	if m.GetRuntimeFraction() != nil || m.GetTlsContext() != nil || len(m.GetDynamicMetadata()) > 0 {
		return nil, fmt.Errorf("%s.match: runtime_fraction, tls_context and dynamic_metadata are not supported", field)
	}
	r.grpcOnly = m.GetGrpc() != nil
	for i, h := range m.GetHeaders() {
		hm, err := compileHeaderMatcher(fmt.Sprintf("%s.match.headers[%d]", field, i), h)
		if err != nil {
			return nil, err
		}
		r.headers = append(r.headers, hm)
	}
	for i, q := range m.GetQueryParameters() {
		qf := fmt.Sprintf("%s.match.query_parameters[%d]", field, i)
		qm := queryMatch{name: q.GetName()}
		switch {
		case q.GetStringMatch() != nil:
			sm, err := CompileStringMatcher(qf+".string_match", q.GetStringMatch())
			if err != nil {
				return nil, err
			}
			qm.str = sm
		case q.GetPresentMatch():
			qm.present = true
		}
		r.query = append(r.query, qm)
	}
	var err error
	if r.RequestHeaders, err = compileMutation(field+".request_headers_to_add", rc.GetRequestHeadersToAdd(), rc.GetRequestHeadersToRemove()); err != nil {
		return nil, err
	}
	if r.ResponseHeaders, err = compileMutation(field+".response_headers_to_add", rc.GetResponseHeadersToAdd(), rc.GetResponseHeadersToRemove()); err != nil {
		return nil, err
	}
	if err := checkPerFilter(field, rc.GetTypedPerFilterConfig()); err != nil {
		return nil, err
	}
	if a := perFilter(rc.GetTypedPerFilterConfig(), "envoy.filters.http.fault"); a != nil {
		if r.Fault, err = compileFault(field+".typed_per_filter_config[envoy.filters.http.fault]", a); err != nil {
			return nil, err
		}
	}
	if a := perFilter(rc.GetTypedPerFilterConfig(), "envoy.filters.http.cors"); a != nil {
		if r.Cors, err = compileCors(field+".typed_per_filter_config[envoy.filters.http.cors]", a); err != nil {
			return nil, err
		}
	}

	switch a := rc.GetAction().(type) {
	case *routev3.Route_Route:
		if err := compileRouteAction(field+".route", r, a.Route); err != nil {
			return nil, err
		}
	case *routev3.Route_Redirect:
		rd := a.Redirect
		red := &Redirect{Host: rd.GetHostRedirect(), Port: rd.GetPortRedirect(), StripQuery: rd.GetStripQuery()}
		if rd.GetHttpsRedirect() {
			red.Scheme = "https"
		} else {
			red.Scheme = rd.GetSchemeRedirect()
		}
		red.Path = rd.GetPathRedirect()
		red.PrefixRewrite = rd.GetPrefixRewrite()
		if rd.GetRegexRewrite() != nil {
			return nil, fmt.Errorf("%s.redirect.regex_rewrite: not supported", field)
		}
		switch rd.GetResponseCode() {
		case routev3.RedirectAction_MOVED_PERMANENTLY:
			red.Code = http.StatusMovedPermanently
		case routev3.RedirectAction_FOUND:
			red.Code = http.StatusFound
		case routev3.RedirectAction_SEE_OTHER:
			red.Code = http.StatusSeeOther
		case routev3.RedirectAction_TEMPORARY_REDIRECT:
			red.Code = http.StatusTemporaryRedirect
		case routev3.RedirectAction_PERMANENT_REDIRECT:
			red.Code = http.StatusPermanentRedirect
		}
		r.Action, r.Redirect = ActionRedirect, red
	case *routev3.Route_DirectResponse:
		d := &DirectResponse{Status: int(a.DirectResponse.GetStatus())}
		if b := a.DirectResponse.GetBody(); b != nil {
			switch {
			case b.GetInlineString() != "":
				d.Body = []byte(b.GetInlineString())
			case len(b.GetInlineBytes()) > 0:
				d.Body = b.GetInlineBytes()
			default:
				return nil, fmt.Errorf("%s.direct_response.body: only inline bodies are supported", field)
			}
		}
		r.Action, r.Direct = ActionDirect, d
	case *routev3.Route_NonForwardingAction:
		return nil, fmt.Errorf("%s: non_forwarding_action is only for proxyless gRPC", field)
	default:
		return nil, fmt.Errorf("%s: unsupported action %T", field, a)
	}
	return r, nil
}

func compileRouteAction(field string, r *Route, ra *routev3.RouteAction) error {
	switch c := ra.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		r.Action, r.Cluster = ActionCluster, c.Cluster
	case *routev3.RouteAction_WeightedClusters:
		r.Action = ActionWeighted
		for i, w := range c.WeightedClusters.GetClusters() {
			wf := fmt.Sprintf("%s.weighted_clusters.clusters[%d]", field, i)
			if w.GetName() == "" {
				return fmt.Errorf("%s.name: only named clusters are supported", wf)
			}
			wc := WeightedCluster{Name: w.GetName(), Weight: w.GetWeight().GetValue()}
			var err error
			if wc.RequestHeaders, err = compileMutation(wf+".request_headers_to_add", w.GetRequestHeadersToAdd(), w.GetRequestHeadersToRemove()); err != nil {
				return err
			}
			if wc.ResponseHeaders, err = compileMutation(wf+".response_headers_to_add", w.GetResponseHeadersToAdd(), w.GetResponseHeadersToRemove()); err != nil {
				return err
			}
			r.total += wc.Weight
			r.Weighted = append(r.Weighted, wc)
		}
		if r.total == 0 {
			return fmt.Errorf("%s.weighted_clusters: total weight is 0", field)
		}
	default:
		return fmt.Errorf("%s: unsupported cluster specifier %T", field, c)
	}
	r.PrefixRewrite = ra.GetPrefixRewrite()
	if rr := ra.GetRegexRewrite(); rr != nil {
		re, err := regexp.Compile(rr.GetPattern().GetRegex())
		if err != nil {
			return fmt.Errorf("%s.regex_rewrite.pattern: %v", field, err)
		}
		r.RegexRewrite, r.RegexSubst = re, envoySubst(rr.GetSubstitution())
	}
	switch h := ra.GetHostRewriteSpecifier().(type) {
	case nil:
	case *routev3.RouteAction_HostRewriteLiteral:
		r.HostRewrite = h.HostRewriteLiteral
	case *routev3.RouteAction_AutoHostRewrite:
		r.AutoHostRewrite = h.AutoHostRewrite.GetValue()
	default:
		return fmt.Errorf("%s: unsupported host rewrite %T", field, h)
	}
	r.Timeout = DefaultRouteTimeout
	if ra.GetTimeout() != nil {
		r.Timeout = ra.GetTimeout().AsDuration()
	}
	compileTimeouts(r, ra)
	if ra.GetIdleTimeout() != nil {
		r.IdleTimeout = ra.GetIdleTimeout().AsDuration()
	}
	if rp := ra.GetRetryPolicy(); rp != nil {
		p, err := compileRetry(field+".retry_policy", rp)
		if err != nil {
			return err
		}
		r.Retry = p
	}
	for i, mp := range ra.GetRequestMirrorPolicies() {
		if mp.GetCluster() == "" {
			return fmt.Errorf("%s.request_mirror_policies[%d].cluster: required", field, i)
		}
		f := Fraction(1e6)
		if rf := mp.GetRuntimeFraction(); rf != nil {
			f = CompileFraction(rf.GetDefaultValue())
		}
		r.Mirrors = append(r.Mirrors, Mirror{Cluster: mp.GetCluster(), Fraction: f})
	}
	for _, hp := range ra.GetHashPolicy() {
		p := HashPolicy{Terminal: hp.GetTerminal()}
		switch {
		case hp.GetHeader() != nil:
			p.Header = http.CanonicalHeaderKey(hp.GetHeader().GetHeaderName())
		case hp.GetCookie() != nil:
			p.Cookie = hp.GetCookie().GetName()
		case hp.GetQueryParameter() != nil:
			p.QueryParam = hp.GetQueryParameter().GetName()
		case hp.GetConnectionProperties() != nil:
			p.SourceIP = hp.GetConnectionProperties().GetSourceIp()
		default:
			continue // filter_state: nothing to hash on here
		}
		r.HashPolicy = append(r.HashPolicy, p)
	}
	for _, uc := range ra.GetUpgradeConfigs() {
		if strings.EqualFold(uc.GetUpgradeType(), "websocket") {
			v := uc.GetEnabled() == nil || uc.GetEnabled().GetValue()
			r.UpgradeWebSocket = &v
		}
	}
	return nil
}

// envoySubst converts Envoy's \1 back-references to Go's ${1}.
func envoySubst(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' {
			b.WriteString("${" + string(s[i+1]) + "}")
			i++
			continue
		}
		if s[i] == '$' {
			b.WriteString("$$")
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func compileHeaderMatcher(field string, h *routev3.HeaderMatcher) (headerMatch, error) {
	name := h.GetName()
	if !strings.HasPrefix(name, ":") {
		name = http.CanonicalHeaderKey(name)
	}
	hm := headerMatch{name: name, invert: h.GetInvertMatch(), missingIsEmpty: h.GetTreatMissingHeaderAsEmpty()}
	var err error
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case nil:
		t := true
		hm.present = &t
	case *routev3.HeaderMatcher_PresentMatch:
		v := s.PresentMatch
		hm.present = &v
	case *routev3.HeaderMatcher_StringMatch:
		hm.str, err = CompileStringMatcher(field+".string_match", s.StringMatch)
	case *routev3.HeaderMatcher_ExactMatch:
		hm.str = &StringMatch{kind: matchExact, value: s.ExactMatch}
	case *routev3.HeaderMatcher_PrefixMatch:
		hm.str = &StringMatch{kind: matchPrefix, value: s.PrefixMatch}
	case *routev3.HeaderMatcher_SuffixMatch:
		hm.str = &StringMatch{kind: matchSuffix, value: s.SuffixMatch}
	case *routev3.HeaderMatcher_ContainsMatch:
		hm.str = &StringMatch{kind: matchContains, value: s.ContainsMatch}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		var re = s.SafeRegexMatch.GetRegex()
		var c *StringMatch
		c = &StringMatch{kind: matchRegex}
		c.re, err = compileRegex(field+".safe_regex_match", re, false)
		hm.str = c
	case *routev3.HeaderMatcher_RangeMatch:
		hm.isRange, hm.rangeStart, hm.rangeEnd = true, s.RangeMatch.GetStart(), s.RangeMatch.GetEnd()
	default:
		err = fmt.Errorf("%s: unsupported header matcher %T", field, s)
	}
	return hm, err
}

func compileRetry(field string, rp *routev3.RetryPolicy) (*RetryPolicy, error) {
	p := &RetryPolicy{NumRetries: 1, BackoffBase: 25 * time.Millisecond}
	for _, on := range strings.Split(rp.GetRetryOn(), ",") {
		switch strings.TrimSpace(on) {
		case "":
		case "5xx":
			p.On5xx = true
		case "gateway-error":
			p.OnGatewayError = true
		case "connect-failure":
			p.OnConnectFailure = true
		case "refused-stream":
			p.OnRefusedStream = true
		case "reset", "reset-before-request":
			p.OnReset = true
		case "retriable-4xx":
			p.OnRetriable4xx = true
		case "retriable-status-codes":
			p.OnRetriableStatus = true
		case "cancelled":
			p.GRPCCodes |= 1 << 1
		case "deadline-exceeded":
			p.GRPCCodes |= 1 << 4
		case "resource-exhausted":
			p.GRPCCodes |= 1 << 8
		case "internal":
			p.GRPCCodes |= 1 << 13
		case "unavailable":
			p.GRPCCodes |= 1 << 14
		case "envoy-ratelimited", "retriable-headers", "http3-post-connect-failure":
			// Recognised but not acted on.
		default:
			return nil, fmt.Errorf("%s.retry_on: unknown condition %q", field, on)
		}
	}
	if rp.GetNumRetries() != nil {
		p.NumRetries = int(rp.GetNumRetries().GetValue())
	}
	if rp.GetPerTryTimeout() != nil {
		p.PerTryTimeout = rp.GetPerTryTimeout().AsDuration()
	}
	for _, c := range rp.GetRetriableStatusCodes() {
		p.RetriableStatusCodes = append(p.RetriableStatusCodes, int(c))
	}
	if b := rp.GetRetryBackOff(); b != nil {
		p.BackoffBase = b.GetBaseInterval().AsDuration()
		if b.GetMaxInterval() != nil {
			p.BackoffMax = b.GetMaxInterval().AsDuration()
		}
	}
	if p.BackoffMax == 0 {
		p.BackoffMax = 10 * p.BackoffBase
	}
	for _, hp := range rp.GetRetryHostPredicate() {
		if hp.GetName() == "envoy.retry_host_predicates.previous_hosts" {
			p.PreviousHosts = true
		}
	}
	p.HostSelectionMaxAttempts = int(rp.GetHostSelectionRetryMaxAttempts())
	return p, nil
}

// Match finds the virtual host and route for req. A nil route means no
// route matched (Envoy's NR).
func (t *Table) Match(req *http.Request) (*VirtualHost, *Route) {
	vh := t.host(req.Host)
	if vh == nil {
		return nil, nil
	}
	path := req.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	for _, r := range vh.Routes {
		if r.matches(req, path, req.URL.RawQuery) {
			return vh, r
		}
	}
	return vh, nil
}

// host selects the virtual host for an authority as Envoy does: the
// authority as sent (case-insensitively), without its port when the table
// ignores ports, against exact domains, then wildcards, then "*". A
// "host:port" authority does not match a domain listing only "host".
func (t *Table) host(authority string) *VirtualHost {
	h := lowerASCII(authority)
	if t.ignorePort {
		h = withoutPort(h)
	}
	if vh := t.lookupNoAny(h); vh != nil {
		return vh
	}
	return t.any
}

// withoutPort removes a numeric ":port" from an authority (not the last
// group of a bracketed IPv6 address), as Envoy's getPortStart.
func withoutPort(h string) string {
	i := strings.LastIndexByte(h, ':')
	if i < 0 || strings.LastIndexByte(h, ']') > i || i == len(h)-1 {
		return h
	}
	for _, c := range h[i+1:] {
		if c < '0' || c > '9' {
			return h
		}
	}
	return h[:i]
}

func (t *Table) lookupNoAny(h string) *VirtualHost {
	if vh, ok := t.exact[h]; ok {
		return vh
	}
	for _, w := range t.suffixes {
		if len(h) > len(w.part) && strings.HasSuffix(h, w.part) {
			return w.vh
		}
	}
	for _, w := range t.prefixes {
		if len(h) > len(w.part) && strings.HasPrefix(h, w.part) {
			return w.vh
		}
	}
	return nil
}

// lowerASCII lower-cases s without allocating when it is already lower.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}
