package translate

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonfault "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	previoushosts "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	previouspriorities "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/model"
)

// HTTP filter names.
const (
	filterFault  = "envoy.filters.http.fault"
	filterCORS   = "envoy.filters.http.cors"
	filterRouter = "envoy.filters.http.router"
)

// Istio's default retry policy for routes without explicit retries.
const (
	defaultRetryOn       = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
	defaultRetryAttempts = 2
)

// routeContext is what translating one VirtualService HTTP route needs:
// who asks (for sourceLabels, sourceNamespace and gateways matches), on
// which port, and how to name and hash destinations.
type routeContext struct {
	proxy *model.Proxy
	// gateways are the gateways the proxy implements ("mesh" for sidecars).
	gateways []string
	// port is the listener port the route configuration serves.
	port uint32
	// namespace is the VirtualService's namespace, for short hosts.
	namespace string
	// services resolves a destination host to a visible service, or nil.
	services func(host string) *model.Service
	// rules finds the DestinationRule of a destination, for hash policies.
	rules *ruleIndex
	// delegates finds delegate VirtualServices.
	delegates delegateIndex
	// vs is the VirtualService being translated and field the path of
	// the HTTP route within it, for diagnostics.
	vs    *model.Meta
	field string
	// diags collects translation problems; owned by one Generate call.
	diags *diagnostics
}

// forVS returns a copy of rc for translating routes of vs.
func (rc routeContext) forVS(vs *boundVS) routeContext {
	rc.namespace = vs.namespace
	rc.vs = vs.meta
	return rc
}

// httpRoutes translates one VirtualService's HTTP routes into Envoy
// routes, expanding delegates, in order.
func (rc *routeContext) httpRoutes(hrs []*networking.HTTPRoute) []*route.Route {
	var out []*route.Route
	for i, hr := range hrs {
		sub := *rc
		sub.field = fmt.Sprintf("spec.http[%d]", i)
		out = append(out, sub.httpRoute(hr)...)
	}
	return out
}

// httpRoute translates one HTTPRoute: one Envoy route per match that
// applies to this proxy and port (none when no match applies).
func (rc *routeContext) httpRoute(hr *networking.HTTPRoute) []*route.Route {
	matches := rc.applicableMatches(hr.Match)
	if matches == nil {
		return nil
	}
	if d := hr.Delegate; d != nil {
		return rc.delegate(hr, d, matches)
	}
	var out []*route.Route
	for _, m := range matches {
		r := &route.Route{Name: hr.Name, Match: routeMatch(m)}
		if m != nil && m.Name != "" {
			if r.Name != "" {
				r.Name += "."
			}
			r.Name += m.Name
		}
		err := rc.action(r, hr)
		if err == nil {
			err = validateDeep(r)
		}
		if err != nil {
			rc.diags.errorf(rc.vs, rc.field, "route left out, it would be rejected by Envoy: %v", err)
			continue
		}
		out = append(out, r)
	}
	return out
}

// applicableMatches filters matches by port, source and gateway. It
// returns nil when none applies, and [nil] for a route without matches.
func (rc *routeContext) applicableMatches(ms []*networking.HTTPMatchRequest) []*networking.HTTPMatchRequest {
	if len(ms) == 0 {
		return []*networking.HTTPMatchRequest{nil}
	}
	var out []*networking.HTTPMatchRequest
	for _, m := range ms {
		if m.Port != 0 && m.Port != rc.port {
			continue
		}
		if len(m.SourceLabels) > 0 && !model.SelectorMatches(m.SourceLabels, rc.proxy.Labels) {
			continue
		}
		if m.SourceNamespace != "" && m.SourceNamespace != rc.proxy.Namespace {
			continue
		}
		if len(m.Gateways) > 0 {
			ok := false
			for _, g := range normalizeGateways(m.Gateways, rc.namespace) {
				ok = ok || containsString(rc.gateways, g)
			}
			if !ok {
				continue
			}
		}
		out = append(out, m)
	}
	return out
}

// delegate inlines the routes of a delegate VirtualService under the
// root route's matches: each delegate match is merged with each root
// match (the delegate's uri wins, headers and query parameters add up).
func (rc *routeContext) delegate(root *networking.HTTPRoute, d *networking.Delegate, rootMatches []*networking.HTTPMatchRequest) []*route.Route {
	ns := d.Namespace
	if ns == "" {
		ns = rc.namespace
	}
	dvs := rc.delegates[ns+"/"+d.Name]
	if dvs == nil {
		rc.diags.errorf(rc.vs, rc.field+".delegate", "delegate VirtualService %s/%s not found (or it has hosts)", ns, d.Name)
		return nil
	}
	if !exportedTo(dvs.vs.ExportTo, dvs.namespace, rc.namespace) {
		rc.diags.errorf(rc.vs, rc.field+".delegate", "delegate VirtualService %s/%s is not exported to namespace %s", ns, d.Name, rc.namespace)
		return nil
	}
	sub := rc.forVS(dvs)
	var out []*route.Route
	for i, hr := range dvs.vs.Http {
		sub.field = fmt.Sprintf("spec.http[%d]", i)
		merged := proto.Clone(hr).(*networking.HTTPRoute)
		merged.Match = nil
		for _, rm := range rootMatches {
			for _, dm := range sub.applicableMatches(hr.Match) {
				if m := mergeMatch(rm, dm); m != nil {
					merged.Match = append(merged.Match, m)
				}
			}
		}
		if len(merged.Match) == 0 {
			merged.Match = nil
		}
		out = append(out, sub.httpRoute(merged)...)
	}
	return out
}

func mergeMatch(root, del *networking.HTTPMatchRequest) *networking.HTTPMatchRequest {
	if root == nil {
		return del
	}
	if del == nil {
		return root
	}
	m := &networking.HTTPMatchRequest{
		Name: del.Name, Uri: root.Uri, Scheme: root.Scheme, Method: root.Method, Authority: root.Authority,
		IgnoreUriCase: root.IgnoreUriCase || del.IgnoreUriCase,
		Headers:       map[string]*networking.StringMatch{}, QueryParams: map[string]*networking.StringMatch{},
		WithoutHeaders: map[string]*networking.StringMatch{},
	}
	if del.Uri != nil {
		m.Uri = del.Uri
	}
	if del.Scheme != nil {
		m.Scheme = del.Scheme
	}
	if del.Method != nil {
		m.Method = del.Method
	}
	if del.Authority != nil {
		m.Authority = del.Authority
	}
	for _, src := range []*networking.HTTPMatchRequest{root, del} {
		for k, v := range src.Headers {
			m.Headers[k] = v
		}
		for k, v := range src.QueryParams {
			m.QueryParams[k] = v
		}
		for k, v := range src.WithoutHeaders {
			m.WithoutHeaders[k] = v
		}
	}
	return m
}

// routeMatch translates an Istio match; nil matches every path.
func routeMatch(m *networking.HTTPMatchRequest) *route.RouteMatch {
	rm := &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}}
	if m == nil {
		return rm
	}
	switch u := m.Uri.GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		rm.PathSpecifier = &route.RouteMatch_Path{Path: u.Exact}
	case *networking.StringMatch_Prefix:
		rm.PathSpecifier = &route.RouteMatch_Prefix{Prefix: u.Prefix}
	case *networking.StringMatch_Regex:
		re := u.Regex
		if m.IgnoreUriCase {
			// Envoy's case_sensitive does not apply to regexes.
			re = "(?i)" + re
		}
		rm.PathSpecifier = &route.RouteMatch_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: re}}
	}
	if m.IgnoreUriCase {
		rm.CaseSensitive = wrapBool(false)
	}
	for _, name := range sortedKeys(m.Headers) {
		rm.Headers = append(rm.Headers, headerMatcher(strings.ToLower(name), m.Headers[name], false))
	}
	for _, name := range sortedKeys(m.WithoutHeaders) {
		rm.Headers = append(rm.Headers, headerMatcher(strings.ToLower(name), m.WithoutHeaders[name], true))
	}
	for _, pseudo := range []struct {
		name string
		sm   *networking.StringMatch
	}{{":scheme", m.Scheme}, {":method", m.Method}, {":authority", m.Authority}} {
		if pseudo.sm != nil {
			rm.Headers = append(rm.Headers, headerMatcher(pseudo.name, pseudo.sm, false))
		}
	}
	for _, name := range sortedKeys(m.QueryParams) {
		q := &route.QueryParameterMatcher{Name: name}
		if sm := stringMatcher(m.QueryParams[name], false); sm != nil {
			q.QueryParameterMatchSpecifier = &route.QueryParameterMatcher_StringMatch{StringMatch: sm}
		} else {
			q.QueryParameterMatchSpecifier = &route.QueryParameterMatcher_PresentMatch{PresentMatch: true}
		}
		rm.QueryParameters = append(rm.QueryParameters, q)
	}
	return rm
}

func headerMatcher(name string, sm *networking.StringMatch, invert bool) *route.HeaderMatcher {
	h := &route.HeaderMatcher{Name: name, InvertMatch: invert}
	if s := stringMatcher(sm, false); s != nil {
		h.HeaderMatchSpecifier = &route.HeaderMatcher_StringMatch{StringMatch: s}
	} else {
		h.HeaderMatchSpecifier = &route.HeaderMatcher_PresentMatch{PresentMatch: true}
	}
	return h
}

// stringMatcher translates an Istio StringMatch; nil for an empty one
// (which Istio treats as "present").
func stringMatcher(sm *networking.StringMatch, ignoreCase bool) *matcher.StringMatcher {
	switch v := sm.GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: v.Exact}, IgnoreCase: ignoreCase}
	case *networking.StringMatch_Prefix:
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: v.Prefix}, IgnoreCase: ignoreCase}
	case *networking.StringMatch_Regex:
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: v.Regex}}}
	}
	return nil
}

// action fills in what r does: a direct response, a redirect, or
// forwarding with Istio's timeout, retry, rewrite, mirror, fault, CORS and
// header settings. It reports per-filter configs that Envoy would reject
// (route validation does not look inside them).
func (rc *routeContext) action(r *route.Route, hr *networking.HTTPRoute) error {
	r.RequestHeadersToAdd, r.RequestHeadersToRemove, r.ResponseHeadersToAdd, r.ResponseHeadersToRemove = headerOps(hr.Headers)
	switch {
	case hr.DirectResponse != nil:
		dr := &route.DirectResponseAction{Status: hr.DirectResponse.Status}
		switch b := hr.DirectResponse.GetBody().GetSpecifier().(type) {
		case *networking.HTTPBody_String_:
			dr.Body = &core.DataSource{Specifier: &core.DataSource_InlineString{InlineString: b.String_}}
		case *networking.HTTPBody_Bytes:
			dr.Body = &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: b.Bytes}}
		}
		r.Action = &route.Route_DirectResponse{DirectResponse: dr}
		return nil
	case hr.Redirect != nil:
		r.Action = &route.Route_Redirect{Redirect: redirect(hr.Redirect, rc.port)}
		return nil
	}
	ra := &route.RouteAction{}
	setTimeout(ra, hr.Timeout)
	rc.destinations(ra, hr.Route)
	if len(hr.Route) == 1 && hr.Route[0].Headers != nil {
		// A single destination's headers apply to the whole route.
		qa, qr, sa, sr := headerOps(hr.Route[0].Headers)
		r.RequestHeadersToAdd = append(r.RequestHeadersToAdd, qa...)
		r.RequestHeadersToRemove = append(r.RequestHeadersToRemove, qr...)
		r.ResponseHeadersToAdd = append(r.ResponseHeadersToAdd, sa...)
		r.ResponseHeadersToRemove = append(r.ResponseHeadersToRemove, sr...)
	}
	ra.RetryPolicy = retryPolicy(hr.Retries)
	if rw := hr.Rewrite; rw != nil {
		if rw.Uri != "" {
			ra.PrefixRewrite = rw.Uri
		}
		if rr := rw.UriRegexRewrite; rr != nil {
			ra.RegexRewrite = &matcher.RegexMatchAndSubstitute{Pattern: &matcher.RegexMatcher{Regex: rr.Match}, Substitution: rr.Rewrite}
		}
		if rw.Authority != "" {
			ra.HostRewriteSpecifier = &route.RouteAction_HostRewriteLiteral{HostRewriteLiteral: rw.Authority}
		}
	}
	if hr.Mirror != nil {
		pct := hr.MirrorPercentage
		if pct == nil && hr.MirrorPercent != nil {
			pct = &networking.Percent{Value: float64(hr.MirrorPercent.Value)}
		}
		ra.RequestMirrorPolicies = append(ra.RequestMirrorPolicies, rc.mirror(hr.Mirror, pct))
	}
	for _, m := range hr.Mirrors {
		ra.RequestMirrorPolicies = append(ra.RequestMirrorPolicies, rc.mirror(m.Destination, m.Percentage))
	}
	r.Action = &route.Route_Route{Route: ra}
	if f := faultFilter(hr.Fault); f != nil {
		r.TypedPerFilterConfig = map[string]*anypb.Any{filterFault: toAny(f)}
	}
	if c := corsPolicy(hr.CorsPolicy); c != nil {
		if r.TypedPerFilterConfig == nil {
			r.TypedPerFilterConfig = map[string]*anypb.Any{}
		}
		r.TypedPerFilterConfig[filterCORS] = toAny(c)
	}
	return nil
}

// destinations sets the cluster or weighted clusters of ra, and the hash
// policy of the destination's DestinationRule for single destinations.
func (rc *routeContext) destinations(ra *route.RouteAction, dests []*networking.HTTPRouteDestination) {
	var live []*networking.HTTPRouteDestination
	for _, d := range dests {
		if d.Destination != nil && (d.Weight > 0 || len(dests) == 1) {
			live = append(live, d)
		}
	}
	switch len(live) {
	case 0:
		ra.ClusterSpecifier = &route.RouteAction_Cluster{Cluster: BlackHoleCluster}
	case 1:
		ra.ClusterSpecifier = &route.RouteAction_Cluster{Cluster: rc.clusterFor(live[0].Destination)}
		ra.HashPolicy = rc.hashPolicy(live[0].Destination)
	default:
		wc := &route.WeightedCluster{}
		for _, d := range live {
			cw := &route.WeightedCluster_ClusterWeight{Name: rc.clusterFor(d.Destination), Weight: u32(uint32(d.Weight))}
			cw.RequestHeadersToAdd, cw.RequestHeadersToRemove, cw.ResponseHeadersToAdd, cw.ResponseHeadersToRemove = headerOps(d.Headers)
			wc.Clusters = append(wc.Clusters, cw)
		}
		ra.ClusterSpecifier = &route.RouteAction_WeightedClusters{WeightedClusters: wc}
	}
}

// clusterFor names the cluster of a destination: its host resolved
// against the VirtualService's namespace, its port (or the service's only
// port, or the listener port) and subset.
func (rc *routeContext) clusterFor(d *networking.Destination) string {
	host := resolveHost(d.Host, rc.namespace)
	port := d.GetPort().GetNumber()
	if port == 0 {
		port = rc.port
		if svc := rc.services(host); svc != nil && len(svc.Ports) == 1 {
			port = svc.Ports[0].Number
		}
	}
	return OutboundClusterName(port, d.Subset, host)
}

// hashPolicy returns the route hash policy for a destination whose
// DestinationRule asks for consistent hashing.
func (rc *routeContext) hashPolicy(d *networking.Destination) []*route.RouteAction_HashPolicy {
	host := resolveHost(d.Host, rc.namespace)
	ns := rc.namespace
	if svc := rc.services(host); svc != nil {
		ns = svc.Namespace
	}
	br := rc.rules.lookupBound(host, ns)
	if br == nil {
		return nil
	}
	dr := br.rule
	port := d.GetPort().GetNumber()
	if port == 0 {
		port = rc.port
	}
	ch := effectivePolicy(dr, port, d.Subset).lb.GetConsistentHash()
	if ch == nil {
		return nil
	}
	hp := &route.RouteAction_HashPolicy{}
	switch k := ch.HashKey.(type) {
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName:
		hp.PolicySpecifier = &route.RouteAction_HashPolicy_Header_{Header: &route.RouteAction_HashPolicy_Header{HeaderName: k.HttpHeaderName}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpCookie:
		hp.PolicySpecifier = &route.RouteAction_HashPolicy_Cookie_{Cookie: &route.RouteAction_HashPolicy_Cookie{
			Name: k.HttpCookie.Name, Path: k.HttpCookie.Path, Ttl: k.HttpCookie.Ttl,
		}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_UseSourceIp:
		hp.PolicySpecifier = &route.RouteAction_HashPolicy_ConnectionProperties_{ConnectionProperties: &route.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpQueryParameterName:
		hp.PolicySpecifier = &route.RouteAction_HashPolicy_QueryParameter_{QueryParameter: &route.RouteAction_HashPolicy_QueryParameter{Name: k.HttpQueryParameterName}}
	default:
		return nil
	}
	if err := hp.ValidateAll(); err != nil {
		rc.diags.errorf(br.meta, "spec.trafficPolicy.loadBalancer.consistentHash", "hash key not applied, Envoy would reject it: %v", err)
		return nil
	}
	return []*route.RouteAction_HashPolicy{hp}
}

func (rc *routeContext) mirror(d *networking.Destination, pct *networking.Percent) *route.RouteAction_RequestMirrorPolicy {
	p := &route.RouteAction_RequestMirrorPolicy{Cluster: rc.clusterFor(d)}
	value := 100.0
	if pct != nil {
		value = pct.Value
	}
	p.RuntimeFraction = &core.RuntimeFractionalPercent{DefaultValue: fraction(value)}
	return p
}

// fraction converts a percentage (0-100, fractional) to a per-million
// FractionalPercent.
func fraction(pct float64) *typev3.FractionalPercent {
	pct = max(0, min(pct, 100))
	return &typev3.FractionalPercent{Numerator: uint32(pct*10000 + 0.5), Denominator: typev3.FractionalPercent_MILLION}
}

func redirect(r *networking.HTTPRedirect, listenPort uint32) *route.RedirectAction {
	ra := &route.RedirectAction{HostRedirect: r.Authority}
	if r.Uri != "" {
		ra.PathRewriteSpecifier = &route.RedirectAction_PathRedirect{PathRedirect: r.Uri}
	}
	switch p := r.RedirectPort.(type) {
	case *networking.HTTPRedirect_Port:
		ra.PortRedirect = p.Port
	case *networking.HTTPRedirect_DerivePort:
		// Envoy cannot take the port from the request; as Istio's
		// applyRedirect, routes are built per listener port, so that port
		// is the request's. FROM_PROTOCOL_DEFAULT is Envoy's default (no
		// port; a host_redirect drops the request's).
		if p.DerivePort == networking.HTTPRedirect_FROM_REQUEST_PORT {
			ra.PortRedirect = listenPort
		}
	}
	if r.Scheme != "" {
		ra.SchemeRewriteSpecifier = &route.RedirectAction_SchemeRedirect{SchemeRedirect: r.Scheme}
	}
	switch r.RedirectCode {
	case 302:
		ra.ResponseCode = route.RedirectAction_FOUND
	case 303:
		ra.ResponseCode = route.RedirectAction_SEE_OTHER
	case 307:
		ra.ResponseCode = route.RedirectAction_TEMPORARY_REDIRECT
	case 308:
		ra.ResponseCode = route.RedirectAction_PERMANENT_REDIRECT
	default:
		ra.ResponseCode = route.RedirectAction_MOVED_PERMANENTLY
	}
	return ra
}

// retryPolicy translates Istio retries; nil retries get Istio's default
// policy, attempts 0 disables retries.
func retryPolicy(r *networking.HTTPRetry) *route.RetryPolicy {
	previousHosts := &route.RetryPolicy_RetryHostPredicate{
		Name:       "envoy.retry_host_predicates.previous_hosts",
		ConfigType: &route.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: toAny(&previoushosts.PreviousHostsPredicate{})},
	}
	p := &route.RetryPolicy{
		RetryOn:                       defaultRetryOn,
		NumRetries:                    u32(defaultRetryAttempts),
		RetriableStatusCodes:          []uint32{503},
		RetryHostPredicate:            []*route.RetryPolicy_RetryHostPredicate{previousHosts},
		HostSelectionRetryMaxAttempts: 5,
	}
	if r == nil {
		return p
	}
	if r.Attempts <= 0 {
		return nil
	}
	p.NumRetries = u32(uint32(r.Attempts))
	if r.RetryOn != "" {
		p.RetriableStatusCodes = nil
		var on []string
		for _, part := range strings.Split(r.RetryOn, ",") {
			part = strings.TrimSpace(part)
			if code, err := strconv.Atoi(part); err == nil {
				p.RetriableStatusCodes = append(p.RetriableStatusCodes, uint32(code))
				continue
			}
			if part != "" {
				on = append(on, part)
			}
		}
		if len(p.RetriableStatusCodes) > 0 && !containsString(on, "retriable-status-codes") {
			on = append(on, "retriable-status-codes")
		}
		p.RetryOn = strings.Join(on, ",")
	}
	if r.PerTryTimeout != nil {
		p.PerTryTimeout = r.PerTryTimeout
	}
	if r.RetryRemoteLocalities != nil && r.RetryRemoteLocalities.Value {
		p.RetryPriority = &route.RetryPolicy_RetryPriority{
			Name: "envoy.retry_priorities.previous_priorities",
			ConfigType: &route.RetryPolicy_RetryPriority_TypedConfig{TypedConfig: toAny(&previouspriorities.PreviousPrioritiesConfig{
				UpdateFrequency: 2,
			})},
		}
	}
	if r.RetryIgnorePreviousHosts != nil && !r.RetryIgnorePreviousHosts.Value {
		p.RetryHostPredicate = nil
		p.HostSelectionRetryMaxAttempts = 0
	}
	if r.Backoff != nil {
		p.RetryBackOff = &route.RetryPolicy_RetryBackOff{BaseInterval: r.Backoff}
	}
	return p
}

// headerOps translates header set/add/remove operations.
func headerOps(h *networking.Headers) (reqAdd []*core.HeaderValueOption, reqRemove []string, respAdd []*core.HeaderValueOption, respRemove []string) {
	if h == nil {
		return
	}
	ops := func(o *networking.Headers_HeaderOperations) ([]*core.HeaderValueOption, []string) {
		if o == nil {
			return nil, nil
		}
		var add []*core.HeaderValueOption
		for _, k := range sortedKeys(o.Set) {
			add = append(add, &core.HeaderValueOption{Header: &core.HeaderValue{Key: k, Value: o.Set[k]}, AppendAction: core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD})
		}
		for _, k := range sortedKeys(o.Add) {
			add = append(add, &core.HeaderValueOption{Header: &core.HeaderValue{Key: k, Value: o.Add[k]}, AppendAction: core.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD})
		}
		return add, o.Remove
	}
	reqAdd, reqRemove = ops(h.Request)
	respAdd, respRemove = ops(h.Response)
	return
}

// faultFilter translates fault injection into the fault filter's
// per-route config; nil without faults.
func faultFilter(f *networking.HTTPFaultInjection) *faultv3.HTTPFault {
	if f == nil || (f.Delay == nil && f.Abort == nil) {
		return nil
	}
	out := &faultv3.HTTPFault{}
	if d := f.Delay; d != nil {
		fd := &commonfault.FaultDelay{Percentage: faultPercent(d.Percentage, d.Percent)}
		switch v := d.HttpDelayType.(type) {
		case *networking.HTTPFaultInjection_Delay_FixedDelay:
			fd.FaultDelaySecifier = &commonfault.FaultDelay_FixedDelay{FixedDelay: v.FixedDelay}
		case *networking.HTTPFaultInjection_Delay_ExponentialDelay:
			fd.FaultDelaySecifier = &commonfault.FaultDelay_FixedDelay{FixedDelay: v.ExponentialDelay}
		default:
			fd.FaultDelaySecifier = &commonfault.FaultDelay_FixedDelay{FixedDelay: durationpb.New(time.Duration(0))}
		}
		out.Delay = fd
	}
	if a := f.Abort; a != nil {
		fa := &faultv3.FaultAbort{Percentage: faultPercent(a.Percentage, 0)}
		switch v := a.ErrorType.(type) {
		case *networking.HTTPFaultInjection_Abort_HttpStatus:
			fa.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: uint32(v.HttpStatus)}
		case *networking.HTTPFaultInjection_Abort_GrpcStatus:
			fa.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: grpcCode(v.GrpcStatus)}
		default:
			fa.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: 500}
		}
		out.Abort = fa
	}
	return out
}

func faultPercent(p *networking.Percent, legacy int32) *typev3.FractionalPercent {
	switch {
	case p != nil:
		return fraction(p.Value)
	case legacy > 0:
		return fraction(float64(legacy))
	}
	return fraction(100)
}

var grpcCodes = []string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
	"OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

// grpcCode maps a gRPC status name (or number) to its code; unknown names
// give UNKNOWN (2).
func grpcCode(s string) uint32 {
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return uint32(n)
	}
	for i, c := range grpcCodes {
		if strings.EqualFold(c, s) {
			return uint32(i)
		}
	}
	return 2
}

// corsPolicy translates a CORS policy into the CORS filter's per-route
// config; nil without policy.
func corsPolicy(c *networking.CorsPolicy) *corsv3.CorsPolicy {
	if c == nil {
		return nil
	}
	out := &corsv3.CorsPolicy{
		AllowMethods:     strings.Join(c.AllowMethods, ","),
		AllowHeaders:     strings.Join(c.AllowHeaders, ","),
		ExposeHeaders:    strings.Join(c.ExposeHeaders, ","),
		AllowCredentials: c.AllowCredentials,
	}
	for _, o := range c.AllowOrigin {
		out.AllowOriginStringMatch = append(out.AllowOriginStringMatch, &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: o}})
	}
	for _, o := range c.AllowOrigins {
		if sm := stringMatcher(o, false); sm != nil {
			out.AllowOriginStringMatch = append(out.AllowOriginStringMatch, sm)
		}
	}
	if c.MaxAge != nil {
		out.MaxAge = strconv.FormatInt(int64(c.MaxAge.AsDuration().Seconds()), 10)
	}
	return out
}
