//lint:file-ignore SA1019 checking deprecated fields (and warning about them) is the validator's job

package validate

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// retryOnPolicies are the retry conditions Envoy understands
// (x-envoy-retry-on and x-envoy-retry-grpc-on); HTTP status codes are
// accepted as well.
var retryOnPolicies = map[string]bool{
	"5xx": true, "gateway-error": true, "reset": true, "reset-before-request": true,
	"connect-failure": true, "retriable-4xx": true, "refused-stream": true,
	"retriable-status-codes": true, "retriable-headers": true, "envoy-ratelimited": true,
	"http3-post-connect-failure": true,
	"cancelled":                  true, "deadline-exceeded": true, "internal": true,
	"resource-exhausted": true, "unavailable": true,
}

// corsMethods are the methods a CORS policy may allow.
var corsMethods = map[string]bool{
	"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true,
	"CONNECT": true, "OPTIONS": true, "TRACE": true, "*": true,
}

// grpcStatuses are the gRPC status names a fault may return.
var grpcStatuses = map[string]bool{
	"OK": true, "CANCELLED": true, "UNKNOWN": true, "INVALID_ARGUMENT": true,
	"DEADLINE_EXCEEDED": true, "NOT_FOUND": true, "ALREADY_EXISTS": true,
	"PERMISSION_DENIED": true, "RESOURCE_EXHAUSTED": true, "FAILED_PRECONDITION": true,
	"ABORTED": true, "OUT_OF_RANGE": true, "UNIMPLEMENTED": true, "INTERNAL": true,
	"UNAVAILABLE": true, "DATA_LOSS": true, "UNAUTHENTICATED": true,
}

// maxPairwise bounds quadratic checks (overlapping hosts); lists longer
// than this are far beyond real configuration.
const maxPairwise = 1000

// maxRegexLen mirrors the bound Istio puts on regular expressions (Envoy
// limits RE2 program size; length is a safe approximation).
const maxRegexLen = 1024

func (k *checker) virtualService(vs *networking.VirtualService) {
	delegate := len(vs.Hosts) == 0
	if delegate {
		// A VirtualService without hosts is a delegate, included by a root.
		if len(vs.Gateways) > 0 {
			k.errorf("spec.gateways", "delegate VirtualService (no hosts) must not specify gateways")
		}
		if len(vs.Tls) > 0 {
			k.errorf("spec.tls", "delegate VirtualService (no hosts) must not specify tls routes")
		}
		if len(vs.Tcp) > 0 {
			k.errorf("spec.tcp", "delegate VirtualService (no hosts) must not specify tcp routes")
		}
	}
	appliesToMesh := len(vs.Gateways) == 0
	for i, g := range vs.Gateways {
		if g == "mesh" {
			appliesToMesh = true
		}
		k.gatewayRef(idx("spec.gateways", i), g)
	}
	appliesToGateway := len(vs.Gateways) > 0 && !(len(vs.Gateways) == 1 && vs.Gateways[0] == "mesh")

	allValid := true
	for i, h := range vs.Hosts {
		p := idx("spec.hosts", i)
		if isIP(h) {
			continue
		}
		if err := checkWildcardDomain(h); err != nil {
			k.errorf(p, "%v", err)
			allValid = false
			continue
		}
		if h == "*" && appliesToMesh {
			k.errorf(p, "wildcard host * is not allowed for virtual services bound to the mesh gateway")
			allValid = false
		}
	}
	if allValid && len(vs.Hosts) <= maxPairwise {
		for i := range vs.Hosts {
			for j := i + 1; j < len(vs.Hosts); j++ {
				if hostsOverlap(vs.Hosts[i], vs.Hosts[j]) {
					k.errorf(idx("spec.hosts", j), "duplicate hosts in virtual service: %s and %s", vs.Hosts[i], vs.Hosts[j])
				}
			}
		}
	}

	if len(vs.Http) == 0 && len(vs.Tcp) == 0 && len(vs.Tls) == 0 {
		k.errorf("spec", "http, tcp or tls routes must be provided")
	}
	for i, r := range vs.Http {
		p := idx("spec.http", i)
		if r == nil {
			k.errorf(p, "http route may not be null")
			continue
		}
		if !appliesToGateway {
			for _, m := range r.Match {
				for _, h := range append(sortedKeys(m.GetHeaders()), sortedKeys(m.GetWithoutHeaders())...) {
					if isClaimRoute(h) {
						k.errorf(p, "JWT claim based routing (header %s) is only supported for gateways", h)
					}
				}
			}
		}
		k.httpRoute(p, r, delegate)
	}
	for i, r := range vs.Tls {
		k.tlsRoute(idx("spec.tls", i), r, vs)
	}
	for i, r := range vs.Tcp {
		k.tcpRoute(idx("spec.tcp", i), r)
	}
	k.exportTo("spec.exportTo", vs.ExportTo, false)
	k.unreachableHTTP(vs.Http)
}

// gatewayRef checks a gateway reference: "mesh", "name", "ns/name", or the
// legacy "name.namespace[.svc.cluster.local]".
func (k *checker) gatewayRef(p, g string) {
	ns, name, found := strings.Cut(g, "/")
	if !found {
		if strings.Contains(g, ".") {
			parts := strings.Split(g, ".")
			k.warnf(p, "legacy gateway name format %q; prefer <namespace>/<name>: %q", g, parts[1]+"/"+parts[0])
		}
		k.err(p, checkFQDN(g))
		return
	}
	if ns == "" || name == "" {
		k.errorf(p, "gateway reference %q: namespace and name cannot be empty", g)
		return
	}
	if !isLabel(ns) {
		k.errorf(p, "gateway reference %q: invalid namespace %q", g, ns)
	}
	if !isLabel(name) {
		k.errorf(p, "gateway reference %q: invalid gateway name %q", g, name)
	}
}

func (k *checker) httpRoute(p string, r *networking.HTTPRoute, delegate bool) {
	root := r.Delegate != nil
	switch {
	case root && delegate:
		k.errorf(fld(p, "delegate"), "a delegate VirtualService cannot delegate again")
	case root:
		if r.Redirect != nil {
			k.errorf(fld(p, "redirect"), "a route with delegate must not specify redirect")
		}
		if len(r.Route) > 0 {
			k.errorf(fld(p, "route"), "a route with delegate must not specify route")
		}
		if r.Delegate.Name == "" {
			k.errorf(fld(p, "delegate.name"), "required")
		} else if !isLabel(r.Delegate.Name) && checkFQDN(r.Delegate.Name) != nil {
			k.errorf(fld(p, "delegate.name"), "invalid name %q", r.Delegate.Name)
		}
		if r.Delegate.Namespace != "" && !isLabel(r.Delegate.Namespace) {
			k.errorf(fld(p, "delegate.namespace"), "invalid namespace %q", r.Delegate.Namespace)
		}
	}
	if !root {
		actions := 0
		for _, set := range []bool{len(r.Route) > 0, r.Redirect != nil, r.DirectResponse != nil} {
			if set {
				actions++
			}
		}
		switch {
		case actions == 0:
			k.errorf(p, "one of route, redirect or directResponse is required")
		case actions > 1:
			k.errorf(p, "only one of route, redirect or directResponse may be set")
		}
		if r.Redirect != nil && r.Fault != nil {
			k.errorf(fld(p, "fault"), "a route cannot contain both fault and redirect")
		}
		if r.Redirect != nil && r.Rewrite != nil {
			k.errorf(fld(p, "rewrite"), "a route cannot contain both rewrite and redirect")
		}
	}

	for i, m := range r.Match {
		k.httpMatch(idx(fld(p, "match"), i), m, delegate)
	}
	k.headerOps(fld(p, "headers"), r.Headers)
	k.cors(fld(p, "corsPolicy"), r.CorsPolicy)
	k.fault(fld(p, "fault"), r.Fault)

	if r.MirrorPercent != nil {
		k.warnf(fld(p, "mirrorPercent"), "deprecated: use mirrorPercentage")
		if v := r.MirrorPercent.GetValue(); v > 100 {
			k.errorf(fld(p, "mirrorPercent"), "must be in the range 0..100, got %d", v)
		}
	}
	if r.MirrorPercentage != nil {
		if v := r.MirrorPercentage.GetValue(); v < 0 || v > 100 {
			k.errorf(fld(p, "mirrorPercentage.value"), "must be in the range 0..100, got %v", v)
		}
	}
	if r.Mirror != nil {
		k.destination(fld(p, "mirror"), r.Mirror)
	}
	for i, m := range r.Mirrors {
		mp := idx(fld(p, "mirrors"), i)
		if m.GetDestination() == nil {
			k.errorf(fld(mp, "destination"), "required")
			continue
		}
		k.destination(fld(mp, "destination"), m.Destination)
		if m.Percentage != nil {
			if v := m.Percentage.GetValue(); v < 0 || v > 100 {
				k.errorf(fld(mp, "percentage.value"), "must be in the range 0..100, got %v", v)
			}
		}
	}
	k.redirect(fld(p, "redirect"), r.Redirect)
	k.directResponse(fld(p, "directResponse"), r.DirectResponse)
	k.retries(fld(p, "retries"), r.Retries)
	k.rewrite(fld(p, "rewrite"), r.Rewrite, r.Headers)
	k.httpDestinations(fld(p, "route"), r.Route)
	// A timeout of 0s disables the route timeout.
	k.durationOrZero(fld(p, "timeout"), r.Timeout)
}

func (k *checker) httpMatch(p string, m *networking.HTTPMatchRequest, delegate bool) {
	if m == nil {
		k.errorf(p, "match may not be null")
		return
	}
	sm := []struct {
		name string
		m    *networking.StringMatch
	}{{"uri", m.Uri}, {"scheme", m.Scheme}, {"method", m.Method}, {"authority", m.Authority}}
	for _, s := range sm {
		if s.m == nil {
			continue
		}
		if s.m.MatchType == nil {
			k.warnf(fld(p, s.name), "empty match matches everything; set exact, prefix or regex, or remove it")
		}
		k.stringMatch(fld(p, s.name), s.m, delegate)
	}
	for _, group := range []struct {
		name string
		m    map[string]*networking.StringMatch
	}{{"headers", m.Headers}, {"withoutHeaders", m.WithoutHeaders}, {"queryParams", m.QueryParams}} {
		for _, name := range sortedKeys(group.m) {
			hp := key(fld(p, group.name), name)
			if group.name != "queryParams" {
				k.err(hp, checkMatchHeaderName(name))
			} else if name == "" {
				k.errorf(hp, "query parameter name cannot be empty")
			}
			k.stringMatch(hp, group.m[name], delegate)
		}
	}
	if m.Port != 0 {
		k.port(fld(p, "port"), m.Port)
	}
	k.labels(fld(p, "sourceLabels"), m.SourceLabels)
	for i, g := range m.Gateways {
		k.gatewayRef(idx(fld(p, "gateways"), i), g)
	}
	if m.SourceNamespace != "" && !isLabel(m.SourceNamespace) {
		k.errorf(fld(p, "sourceNamespace"), "invalid namespace %q", m.SourceNamespace)
	}
}

// stringMatch checks a StringMatch: regexes must be valid RE2 (and are not
// allowed in delegates); an empty prefix is suspicious.
func (k *checker) stringMatch(p string, m *networking.StringMatch, delegate bool) {
	switch t := m.GetMatchType().(type) {
	case *networking.StringMatch_Regex:
		if delegate {
			k.errorf(fld(p, "regex"), "regex matches are not supported in delegate VirtualServices")
			return
		}
		k.regex(fld(p, "regex"), t.Regex)
	case *networking.StringMatch_Prefix:
		if t.Prefix == "" {
			k.warnf(fld(p, "prefix"), "empty prefix matches everything")
		}
	}
}

// regex checks an RE2 regular expression.
func (k *checker) regex(p, re string) {
	switch {
	case re == "":
		k.errorf(p, "regex must not be empty")
	case len(re) > maxRegexLen:
		k.errorf(p, "regex is too large (%d bytes, max %d)", len(re), maxRegexLen)
	default:
		if _, err := regexp.Compile(re); err != nil {
			k.errorf(p, "invalid RE2 regex: %v", err)
		}
	}
}

// headerOps checks request and response header manipulation.
func (k *checker) headerOps(p string, h *networking.Headers) {
	if h == nil {
		return
	}
	for _, dir := range []struct {
		name    string
		ops     *networking.Headers_HeaderOperations
		request bool
	}{{"request", h.Request, true}, {"response", h.Response, false}} {
		if dir.ops == nil {
			continue
		}
		dp := fld(p, dir.name)
		for _, op := range []struct {
			name string
			m    map[string]string
		}{{"set", dir.ops.Set}, {"add", dir.ops.Add}} {
			for _, name := range sortedKeys(op.m) {
				hp := key(fld(dp, op.name), name)
				if dir.request {
					k.err(hp, checkSettableRequestHeader(name))
				} else {
					k.err(hp, checkHeaderOperationName(name))
				}
				k.err(hp, checkHeaderValue(op.m[name]))
			}
		}
		for i, name := range dir.ops.Remove {
			k.err(idx(fld(dp, "remove"), i), checkHeaderOperationName(name))
		}
	}
}

func isAuthority(name string) bool {
	return strings.EqualFold(name, ":authority") || strings.EqualFold(name, "host")
}

// checkSettableRequestHeader allows the authority header (routed to
// Envoy's host rewrite) but no other pseudo header.
func checkSettableRequestHeader(name string) error {
	if name == "" {
		return fmt.Errorf("header name cannot be empty")
	}
	if strings.HasPrefix(name, ":") && !isAuthority(name) {
		return fmt.Errorf("invalid header %q: header cannot have \":\" prefix", name)
	}
	return nil
}

// checkHeaderOperationName is for removals and response headers.
func checkHeaderOperationName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("header name cannot be empty")
	case strings.EqualFold(name, "host"):
		return fmt.Errorf("invalid header %q: cannot set or remove the Host header", name)
	case strings.HasPrefix(name, ":"):
		return fmt.Errorf("invalid header %q: header cannot have \":\" prefix", name)
	}
	return nil
}

func (k *checker) cors(p string, c *networking.CorsPolicy) {
	if c == nil {
		return
	}
	if len(c.AllowOrigin) > 0 {
		k.warnf(fld(p, "allowOrigin"), "deprecated: use allowOrigins")
	}
	for i, o := range c.AllowOrigins {
		op := idx(fld(p, "allowOrigins"), i)
		var v string
		switch t := o.GetMatchType().(type) {
		case *networking.StringMatch_Exact:
			v = t.Exact
		case *networking.StringMatch_Prefix:
			v = t.Prefix
		case *networking.StringMatch_Regex:
			v = t.Regex
			if v != "" {
				k.regex(fld(op, "regex"), v)
			}
		}
		if v == "" {
			k.errorf(op, "allowOrigins entries need a non-empty exact, prefix or regex")
		}
	}
	for i, m := range c.AllowMethods {
		if !corsMethods[m] {
			k.errorf(idx(fld(p, "allowMethods"), i), "%q is not a supported HTTP method", m)
		}
	}
	for _, list := range []struct {
		name  string
		names []string
	}{{"allowHeaders", c.AllowHeaders}, {"exposeHeaders", c.ExposeHeaders}} {
		for i, h := range list.names {
			if h != "*" && !headerNameRE.MatchString(h) {
				k.errorf(idx(fld(p, list.name), i), "header name %q is not a valid header name", h)
			}
		}
	}
	if c.MaxAge != nil {
		k.duration(fld(p, "maxAge"), c.MaxAge)
		if c.MaxAge.GetNanos() != 0 {
			k.errorf(fld(p, "maxAge"), "maxAge is accurate only to seconds")
		}
	}
}

// percentage checks a fault percentage: 0, or 0.0001..100.
func (k *checker) percentage(p string, pc *networking.Percent) {
	if pc == nil {
		return
	}
	if v := pc.Value; v < 0 || v > 100 || (v > 0 && v < 0.0001) {
		k.errorf(fld(p, "value"), "percentage %v is neither 0 nor in the range 0.0001..100", v)
	}
}

func (k *checker) fault(p string, f *networking.HTTPFaultInjection) {
	if f == nil {
		return
	}
	if f.Abort == nil && f.Delay == nil {
		k.errorf(p, "fault injection needs an abort and/or a delay")
	}
	if a := f.Abort; a != nil {
		ap := fld(p, "abort")
		k.percentage(fld(ap, "percentage"), a.Percentage)
		switch t := a.ErrorType.(type) {
		case *networking.HTTPFaultInjection_Abort_HttpStatus:
			if t.HttpStatus < 200 || t.HttpStatus > 599 {
				k.errorf(fld(ap, "httpStatus"), "HTTP status %d is not in the range 200..599", t.HttpStatus)
			}
		case *networking.HTTPFaultInjection_Abort_GrpcStatus:
			if !grpcStatuses[t.GrpcStatus] {
				k.errorf(fld(ap, "grpcStatus"), "unknown gRPC status %q (want a name such as UNAVAILABLE or NOT_FOUND)", t.GrpcStatus)
			}
		case *networking.HTTPFaultInjection_Abort_Http2Error:
			k.errorf(fld(ap, "http2Error"), "HTTP/2 abort fault injection is not supported")
		default:
			k.errorf(ap, "abort needs httpStatus or grpcStatus")
		}
	}
	if d := f.Delay; d != nil {
		dp := fld(p, "delay")
		k.percentage(fld(dp, "percentage"), d.Percentage)
		if d.Percent != 0 {
			k.warnf(fld(dp, "percent"), "deprecated: use percentage")
			if d.Percent < 0 || d.Percent > 100 {
				k.errorf(fld(dp, "percent"), "must be in the range 0..100, got %d", d.Percent)
			}
		}
		switch t := d.HttpDelayType.(type) {
		case *networking.HTTPFaultInjection_Delay_FixedDelay:
			if t.FixedDelay == nil {
				k.errorf(fld(dp, "fixedDelay"), "required")
			}
			k.duration(fld(dp, "fixedDelay"), t.FixedDelay)
		case *networking.HTTPFaultInjection_Delay_ExponentialDelay:
			k.errorf(fld(dp, "exponentialDelay"), "exponentialDelay is not supported; use fixedDelay")
		default:
			k.errorf(dp, "delay needs fixedDelay")
		}
	}
}

func (k *checker) redirect(p string, r *networking.HTTPRedirect) {
	if r == nil {
		return
	}
	if r.Uri == "" && r.Authority == "" && r.RedirectPort == nil && r.Scheme == "" && r.PrefixRewrite == "" {
		k.errorf(p, "redirect must specify uri, authority, scheme or port")
	}
	if r.Uri != "" && r.PrefixRewrite != "" {
		k.errorf(fld(p, "prefixRewrite"), "only one of uri and prefixRewrite may be set")
	}
	if r.RedirectCode != 0 && (r.RedirectCode < 300 || r.RedirectCode > 399) {
		k.errorf(fld(p, "redirectCode"), "%d is not a valid redirect code, must be 3xx", r.RedirectCode)
	}
	if r.Scheme != "" && r.Scheme != "http" && r.Scheme != "https" {
		k.errorf(fld(p, "scheme"), "invalid redirect scheme %q, must be \"http\" or \"https\"", r.Scheme)
	}
	if pp, ok := r.RedirectPort.(*networking.HTTPRedirect_Port); ok {
		k.port(fld(p, "port"), pp.Port)
	}
}

func (k *checker) directResponse(p string, d *networking.HTTPDirectResponse) {
	if d == nil {
		return
	}
	if d.Status < 200 || d.Status > 599 {
		k.errorf(fld(p, "status"), "HTTP status %d is not in the range 200..599", d.Status)
	}
	size := len(d.GetBody().GetString_()) + len(d.GetBody().GetBytes())
	switch {
	case size > 1<<20:
		k.errorf(fld(p, "body"), "direct response body must be smaller than 1MB")
	case size > 100<<10:
		k.warnf(fld(p, "body"), "large direct response bodies may impact control plane performance")
	}
}

func (k *checker) retries(p string, r *networking.HTTPRetry) {
	if r == nil {
		return
	}
	if r.Attempts < 0 {
		k.errorf(fld(p, "attempts"), "attempts cannot be negative")
	}
	if r.Attempts == 0 && (r.PerTryTimeout != nil || r.RetryOn != "" || r.RetryRemoteLocalities != nil) {
		k.errorf(fld(p, "attempts"), "retry policy configured while attempts is 0 (retries disabled)")
	}
	k.duration(fld(p, "perTryTimeout"), r.PerTryTimeout)
	if r.RetryOn != "" {
		for _, c := range strings.Split(r.RetryOn, ",") {
			c = strings.TrimSpace(c)
			if n, err := strconv.Atoi(c); err == nil && http.StatusText(n) != "" {
				continue
			}
			if !retryOnPolicies[c] {
				k.errorf(fld(p, "retryOn"), "%q is not a valid retryOn condition (want Envoy conditions such as 5xx, gateway-error, connect-failure, gRPC ones such as unavailable, or HTTP status codes)", c)
			}
		}
	}
	k.duration(fld(p, "backoff"), r.Backoff)
}

func (k *checker) rewrite(p string, r *networking.HTTPRewrite, h *networking.Headers) {
	authorities := 0
	if r != nil {
		if r.Uri != "" && r.UriRegexRewrite != nil {
			k.errorf(p, "only one of uri and uriRegexRewrite may be set")
		}
		if r.Uri == "" && r.UriRegexRewrite == nil && r.Authority == "" {
			k.errorf(p, "rewrite must specify uri, uriRegexRewrite or authority")
		}
		if rr := r.UriRegexRewrite; rr != nil {
			if rr.Match == "" || rr.Rewrite == "" {
				k.errorf(fld(p, "uriRegexRewrite"), "both match and rewrite are required")
			}
			if rr.Match != "" {
				k.regex(fld(p, "uriRegexRewrite.match"), rr.Match)
			}
		}
		if r.Authority != "" {
			authorities++
		}
	}
	for _, m := range []map[string]string{h.GetRequest().GetSet(), h.GetRequest().GetAdd()} {
		for name := range m {
			if isAuthority(name) {
				authorities++
			}
		}
	}
	if authorities > 1 {
		k.errorf(p, "the authority is rewritten in more than one place (rewrite.authority and headers)")
	}
}

// httpDestinations checks weighted HTTP destinations.
func (k *checker) httpDestinations(p string, ds []*networking.HTTPRouteDestination) {
	var weights []int32
	for i, d := range ds {
		dp := idx(p, i)
		if d == nil {
			k.errorf(dp, "destination may not be null")
			continue
		}
		k.headerOps(fld(dp, "headers"), d.Headers)
		k.routeDestination(dp, d.Destination, d.Weight)
		weights = append(weights, d.Weight)
	}
	k.weights(p, weights)
}

// routeDestination checks one weighted destination.
func (k *checker) routeDestination(p string, d *networking.Destination, weight int32) {
	if d == nil {
		k.errorf(fld(p, "destination"), "required")
	} else {
		k.destination(fld(p, "destination"), d)
	}
	if weight < 0 {
		k.errorf(fld(p, "weight"), "weight %d must not be negative", weight)
	}
}

// weights checks the weights of a route's destinations. Istio treats
// weights as relative, so a sum other than 100 works but is usually a
// mistake.
func (k *checker) weights(p string, ws []int32) {
	if len(ws) < 2 {
		return
	}
	var total int64
	for _, w := range ws {
		if w > 0 {
			total += int64(w)
		}
	}
	switch {
	case total == 0:
		k.errorf(p, "total destination weight is 0")
	case total != 100:
		k.warnf(p, "destination weights sum to %d, not 100 (Istio treats them as relative)", total)
	}
}

// destination checks a route destination.
func (k *checker) destination(p string, d *networking.Destination) {
	switch {
	case d.Host == "":
		k.errorf(fld(p, "host"), "required")
	case d.Host == "*":
		k.errorf(fld(p, "host"), "invalid destination host *")
	default:
		k.err(fld(p, "host"), checkWildcardDomain(d.Host))
	}
	if d.Subset != "" && !isLabel(d.Subset) {
		k.errorf(fld(p, "subset"), "invalid subset name %q (must be a DNS label)", d.Subset)
	}
	if d.Port != nil {
		k.port(fld(p, "port.number"), d.Port.Number)
	}
}

func (k *checker) tlsRoute(p string, r *networking.TLSRoute, vs *networking.VirtualService) {
	if r == nil {
		k.errorf(p, "tls route may not be null")
		return
	}
	if len(r.Match) == 0 {
		k.errorf(fld(p, "match"), "a TLS route needs at least one match (with sniHosts)")
	}
	gateway := len(vs.Gateways) > 0 && !(len(vs.Gateways) == 1 && vs.Gateways[0] == "mesh")
	for i, m := range r.Match {
		mp := idx(fld(p, "match"), i)
		if m == nil {
			k.errorf(mp, "match may not be null")
			continue
		}
		if len(m.SniHosts) == 0 {
			k.errorf(fld(mp, "sniHosts"), "a TLS match needs at least one SNI host")
		}
		for j, sni := range m.SniHosts {
			sp := idx(fld(mp, "sniHosts"), j)
			if isIP(sni) {
				k.warnf(sp, "using an IP address (%q) goes against the SNI spec; most clients do not send it", sni)
				continue
			}
			if err := checkWildcardDomain(sni); err != nil {
				k.err(sp, err)
				continue
			}
			if gateway && sni == "*" {
				continue
			}
			covered := false
			for _, h := range vs.Hosts {
				if hostCovers(h, sni) {
					covered = true
				}
			}
			if !covered {
				k.errorf(sp, "SNI host %q is not a subset of any of the virtual service hosts [%s]", sni, strings.Join(vs.Hosts, ", "))
			}
		}
		k.l4Match(mp, m.DestinationSubnets, m.Port, m.SourceLabels, m.Gateways, m.SourceNamespace)
	}
	if len(r.Route) == 0 {
		k.errorf(fld(p, "route"), "required")
	}
	k.l4Destinations(fld(p, "route"), r.Route)
}

func (k *checker) tcpRoute(p string, r *networking.TCPRoute) {
	if r == nil {
		k.errorf(p, "tcp route may not be null")
		return
	}
	for i, m := range r.Match {
		mp := idx(fld(p, "match"), i)
		if m == nil {
			k.errorf(mp, "match may not be null")
			continue
		}
		k.l4Match(mp, m.DestinationSubnets, m.Port, m.SourceLabels, m.Gateways, m.SourceNamespace)
		if m.SourceSubnet != "" {
			k.err(fld(mp, "sourceSubnet"), checkIPOrCIDR(m.SourceSubnet))
		}
	}
	if len(r.Route) == 0 {
		k.errorf(fld(p, "route"), "required")
	}
	k.l4Destinations(fld(p, "route"), r.Route)
}

func (k *checker) l4Match(p string, subnets []string, port uint32, labels map[string]string, gateways []string, ns string) {
	for i, s := range subnets {
		k.err(idx(fld(p, "destinationSubnets"), i), checkIPOrCIDR(s))
	}
	if port != 0 {
		k.port(fld(p, "port"), port)
	}
	k.labels(fld(p, "sourceLabels"), labels)
	for i, g := range gateways {
		k.gatewayRef(idx(fld(p, "gateways"), i), g)
	}
	if ns != "" && !isLabel(ns) {
		k.errorf(fld(p, "sourceNamespace"), "invalid namespace %q", ns)
	}
}

func (k *checker) l4Destinations(p string, ds []*networking.RouteDestination) {
	var weights []int32
	for i, d := range ds {
		dp := idx(p, i)
		if d == nil {
			k.errorf(dp, "destination may not be null")
			continue
		}
		k.routeDestination(dp, d.Destination, d.Weight)
		weights = append(weights, d.Weight)
	}
	k.weights(p, weights)
}

// unreachableHTTP warns about HTTP rules that can never match: rules after
// a catch-all rule, and rules whose every match repeats an earlier one.
func (k *checker) unreachableHTTP(routes []*networking.HTTPRoute) {
	catchAll := -1
	seen := map[string]int{} // deterministic encoding of a match (without name) → rule
	for i, r := range routes {
		if r == nil {
			continue
		}
		p := idx("spec.http", i)
		if catchAll >= 0 {
			k.warnf(p, "rule is unreachable: rule spec.http[%d] before it has no match conditions and matches everything", catchAll)
			continue
		}
		if len(r.Match) == 0 {
			catchAll = i
			continue
		}
		dups := 0
		for j, m := range r.Match {
			if m == nil {
				continue
			}
			anon := proto.Clone(m).(*networking.HTTPMatchRequest)
			anon.Name = ""
			b, err := proto.MarshalOptions{Deterministic: true}.Marshal(anon)
			if err != nil {
				continue
			}
			if prev, ok := seen[string(b)]; ok {
				k.warnf(idx(fld(p, "match"), j), "match is unused: the same match appears in spec.http[%d]", prev)
				dups++
				continue
			}
			seen[string(b)] = i
		}
		if dups == len(r.Match) {
			k.warnf(p, "rule is unreachable: all its matches are used by earlier rules")
		}
	}
}
