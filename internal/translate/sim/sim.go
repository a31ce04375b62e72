// Package sim evaluates a proxy's generated Envoy configuration the way
// Envoy would for one request: which listener and filter chain accept the
// connection, which virtual host and route match, and which cluster and
// endpoints receive it. Tests use it to assert routing behaviour ("jason
// goes to reviews v2") rather than configuration shape, like Istio's
// pilot simulation tests.
//
// It covers the subset of Envoy's matching that Weft emits: listener
// selection by address and original destination, filter chain matching by
// destination port, server names, transport and application protocols,
// virtual host domain matching, and route matching by path, headers and
// query parameters.
package sim

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// Config is the configuration of one proxy.
type Config struct {
	Listeners []*listener.Listener
	Routes    []*route.RouteConfiguration
	Clusters  []*cluster.Cluster
	Endpoints []*endpoint.ClusterLoadAssignment
}

// Protocol is what a simulated client speaks.
type Protocol string

// Client protocols.
const (
	HTTP  Protocol = "http" // HTTP/1.1 in plain text
	H2C   Protocol = "h2c"  // HTTP/2 in plain text
	TCP   Protocol = "tcp"  // opaque bytes
	TLS   Protocol = "tls"  // a TLS ClientHello, with SNI
	HTTPS Protocol = "https"
)

// Request is one simulated connection (and, for HTTP, request).
type Request struct {
	// Protocol defaults to HTTP.
	Protocol Protocol
	// Address and Port are the destination the client dialled (the
	// original destination); Address "" means an address no listener has.
	Address string
	Port    uint32
	// Listener, if set, names the listener that accepts the connection
	// directly (e.g. "virtualInbound"); otherwise it is chosen from
	// Address and Port as iptables interception plus Envoy would.
	Listener string
	// SNI is the TLS server name and ALPN the protocols the TLS client
	// offers (mesh clients offer "istio-peer-exchange" and "istio").
	SNI  string
	ALPN []string
	// Host is the HTTP authority; defaults to Address:Port.
	Host    string
	Method  string
	Path    string
	Headers map[string]string
}

// Result says where the request went.
type Result struct {
	Listener    string
	FilterChain string
	// RouteConfig, VirtualHost and Route are set for HTTP.
	RouteConfig string
	VirtualHost string
	Route       string
	// Cluster is the destination cluster; for weighted destinations the
	// heaviest, with all weights in WeightedClusters.
	Cluster          string
	WeightedClusters map[string]uint32
	// DirectResponse is the status of a direct response or redirect.
	DirectResponse uint32
	// RedirectTo describes a redirect ("scheme://host:port/path", parts
	// omitted when unchanged).
	RedirectTo string
	// TerminatesTLS is true when the filter chain terminates TLS.
	TerminatesTLS bool
	// RouteEntry is the matched route, for further assertions.
	RouteEntry *route.Route
	// Endpoints are the addresses of the cluster's endpoints, and
	// EndpointMetadata their metadata (for EDS and static clusters).
	Endpoints        []string
	EndpointMetadata []*core.Metadata
}

// Simulator answers requests against one proxy's configuration.
type Simulator struct {
	cfg      Config
	routes   map[string]*route.RouteConfiguration
	clusters map[string]*cluster.Cluster
	cla      map[string]*endpoint.ClusterLoadAssignment
}

// New returns a simulator for cfg.
func New(cfg Config) *Simulator {
	s := &Simulator{cfg: cfg, routes: map[string]*route.RouteConfiguration{}, clusters: map[string]*cluster.Cluster{}, cla: map[string]*endpoint.ClusterLoadAssignment{}}
	for _, r := range cfg.Routes {
		s.routes[r.Name] = r
	}
	for _, c := range cfg.Clusters {
		s.clusters[c.Name] = c
	}
	for _, e := range cfg.Endpoints {
		s.cla[e.ClusterName] = e
	}
	return s
}

// Cluster returns the named cluster, or nil.
func (s *Simulator) Cluster(name string) *cluster.Cluster { return s.clusters[name] }

// Run evaluates req. Errors say where matching stopped (no listener, no
// filter chain, no virtual host, no route, unknown cluster).
func (s *Simulator) Run(req Request) (*Result, error) {
	if req.Protocol == "" {
		req.Protocol = HTTP
	}
	if req.Method == "" {
		req.Method = "GET"
	}
	if req.Path == "" {
		req.Path = "/"
	}
	if req.Host == "" {
		req.Host = req.Address
		if req.Port != 0 {
			req.Host += fmt.Sprintf(":%d", req.Port)
		}
	}
	l := s.listener(req)
	if l == nil {
		return nil, fmt.Errorf("no listener for %s:%d", req.Address, req.Port)
	}
	res := &Result{Listener: l.Name}
	fc := matchFilterChain(l, req)
	if fc == nil {
		return res, fmt.Errorf("listener %s: no filter chain matches", l.Name)
	}
	res.FilterChain = fc.Name
	res.TerminatesTLS = fc.TransportSocket != nil
	for _, f := range fc.Filters {
		msg, err := f.GetTypedConfig().UnmarshalNew()
		if err != nil {
			return res, fmt.Errorf("filter %s: %v", f.Name, err)
		}
		switch m := msg.(type) {
		case *tcpproxy.TcpProxy:
			if c := m.GetCluster(); c != "" {
				res.Cluster = c
			} else {
				res.WeightedClusters = map[string]uint32{}
				for _, w := range m.GetWeightedClusters().GetClusters() {
					res.WeightedClusters[w.Name] = w.Weight
				}
				res.Cluster = heaviest(res.WeightedClusters)
			}
			return res, s.resolveCluster(res, req)
		case *hcm.HttpConnectionManager:
			return res, s.http(res, m, req)
		}
	}
	return res, fmt.Errorf("filter chain %s: no terminal filter", fc.Name)
}

func (p Protocol) isHTTP() bool { return p == HTTP || p == H2C || p == HTTPS }

// listener picks the listener: by name, else one bound to exactly
// Address:Port, else 0.0.0.0:Port, else a use_original_dst listener
// (virtualOutbound) whose chains then apply.
func (s *Simulator) listener(req Request) *listener.Listener {
	if req.Listener != "" {
		for _, l := range s.cfg.Listeners {
			if l.Name == req.Listener {
				return l
			}
		}
		return nil
	}
	var wildcard, original *listener.Listener
	for _, l := range s.cfg.Listeners {
		sa := l.GetAddress().GetSocketAddress()
		if l.GetUseOriginalDst().GetValue() {
			original = l
			continue
		}
		if sa.GetPortValue() != req.Port {
			continue
		}
		switch sa.GetAddress() {
		case req.Address:
			return l
		case "0.0.0.0", "::":
			wildcard = l
		}
	}
	if wildcard != nil {
		return wildcard
	}
	return original
}

// matchFilterChain applies Envoy's filter chain match order: destination
// port, server names, transport protocol, application protocols; at each
// step the most specific matching chains survive.
func matchFilterChain(l *listener.Listener, req Request) *listener.FilterChain {
	cands := l.FilterChains
	// Destination port: chains naming the port beat chains naming none.
	cands = narrow(cands, func(m *listener.FilterChainMatch) int {
		switch p := m.GetDestinationPort(); {
		case p == nil:
			return 1
		case p.Value == req.Port:
			return 2
		}
		return 0
	})
	sni := strings.ToLower(req.SNI)
	cands = narrow(cands, func(m *listener.FilterChainMatch) int {
		names := m.GetServerNames()
		if len(names) == 0 {
			return 1
		}
		best := 0
		for _, n := range names {
			n = strings.ToLower(n)
			switch {
			case sni == "":
			case n == sni:
				best = max(best, 1<<20)
			case strings.HasPrefix(n, "*.") && strings.HasSuffix(sni, n[1:]):
				best = max(best, 2+len(n))
			}
		}
		return best
	})
	transport := "raw_buffer"
	if req.Protocol == TLS || req.Protocol == HTTPS {
		transport = "tls"
	}
	cands = narrow(cands, func(m *listener.FilterChainMatch) int {
		switch m.GetTransportProtocol() {
		case "":
			return 1
		case transport:
			return 2
		}
		return 0
	})
	var alpn []string
	switch req.Protocol {
	case HTTP:
		alpn = []string{"http/1.1"}
	case H2C:
		alpn = []string{"h2c"}
	case TLS, HTTPS:
		alpn = req.ALPN
	}
	cands = narrow(cands, func(m *listener.FilterChainMatch) int {
		ps := m.GetApplicationProtocols()
		if len(ps) == 0 {
			return 1
		}
		for _, p := range ps {
			if slices.Contains(alpn, p) {
				return 2
			}
		}
		return 0
	})
	if len(cands) == 0 {
		if d := l.DefaultFilterChain; d != nil {
			return d
		}
		return nil
	}
	return cands[0]
}

// narrow keeps the chains with the highest positive score.
func narrow(chains []*listener.FilterChain, score func(*listener.FilterChainMatch) int) []*listener.FilterChain {
	best := 0
	var out []*listener.FilterChain
	for _, c := range chains {
		switch s := score(c.GetFilterChainMatch()); {
		case s > best:
			best, out = s, []*listener.FilterChain{c}
		case s == best && s > 0:
			out = append(out, c)
		}
	}
	return out
}

func (s *Simulator) http(res *Result, m *hcm.HttpConnectionManager, req Request) error {
	if !req.Protocol.isHTTP() {
		return fmt.Errorf("filter chain %s: HTTP connection manager got a %s connection", res.FilterChain, req.Protocol)
	}
	rc := m.GetRouteConfig()
	if rc == nil {
		name := m.GetRds().GetRouteConfigName()
		rc = s.routes[name]
		if rc == nil {
			return fmt.Errorf("route configuration %q not found", name)
		}
	}
	res.RouteConfig = rc.Name
	host := strings.ToLower(req.Host)
	if m.GetStripAnyHostPort() || rc.GetIgnorePortInHostMatching() {
		if i := strings.LastIndexByte(host, ':'); i > 0 && !strings.Contains(host[i:], "]") {
			host = host[:i]
		}
	}
	vh := matchVirtualHost(rc.VirtualHosts, host)
	if vh == nil {
		return fmt.Errorf("route %s: no virtual host for %q (404 NR)", rc.Name, host)
	}
	res.VirtualHost = vh.Name
	if vh.RequireTls == route.VirtualHost_ALL && req.Protocol != HTTPS {
		res.DirectResponse = 301
		res.RedirectTo = "https://" + req.Host + req.Path
		return nil
	}
	r := matchRoute(vh.Routes, req)
	if r == nil {
		return fmt.Errorf("virtual host %s: no route for %s %s (404 NR)", vh.Name, req.Method, req.Path)
	}
	res.Route = r.Name
	res.RouteEntry = r
	switch a := r.Action.(type) {
	case *route.Route_DirectResponse:
		res.DirectResponse = a.DirectResponse.Status
		return nil
	case *route.Route_Redirect:
		res.DirectResponse = redirectStatus(a.Redirect.ResponseCode)
		res.RedirectTo = describeRedirect(a.Redirect)
		return nil
	case *route.Route_Route:
		if c := a.Route.GetCluster(); c != "" {
			res.Cluster = c
		} else {
			res.WeightedClusters = map[string]uint32{}
			for _, w := range a.Route.GetWeightedClusters().GetClusters() {
				res.WeightedClusters[w.Name] = w.GetWeight().GetValue()
			}
			res.Cluster = heaviest(res.WeightedClusters)
		}
		return s.resolveCluster(res, req)
	}
	return fmt.Errorf("route %q has no action", r.Name)
}

// matchVirtualHost follows Envoy's order: exact domain, then the longest
// suffix wildcard ("*.example.com"), then the longest prefix wildcard
// ("example.*"), then "*".
func matchVirtualHost(vhs []*route.VirtualHost, host string) *route.VirtualHost {
	var suffix, prefix, any *route.VirtualHost
	suffixLen, prefixLen := -1, -1
	for _, vh := range vhs {
		for _, d := range vh.Domains {
			d = strings.ToLower(d)
			switch {
			case d == host:
				return vh
			case d == "*":
				if any == nil {
					any = vh
				}
			case strings.HasPrefix(d, "*") && strings.HasSuffix(host, d[1:]) && len(host) > len(d)-1:
				if len(d) > suffixLen {
					suffix, suffixLen = vh, len(d)
				}
			case strings.HasSuffix(d, "*") && strings.HasPrefix(host, d[:len(d)-1]) && len(host) > len(d)-1:
				if len(d) > prefixLen {
					prefix, prefixLen = vh, len(d)
				}
			}
		}
	}
	switch {
	case suffix != nil:
		return suffix
	case prefix != nil:
		return prefix
	}
	return any
}

// matchRoute returns the first route whose match accepts req.
func matchRoute(routes []*route.Route, req Request) *route.Route {
	path, query, _ := strings.Cut(req.Path, "?")
	params, _ := url.ParseQuery(query)
	headers := map[string]string{":method": req.Method, ":authority": req.Host, ":path": req.Path, ":scheme": "http"}
	if req.Protocol == HTTPS {
		headers[":scheme"] = "https"
	}
	for k, v := range req.Headers {
		headers[strings.ToLower(k)] = v
	}
	for _, r := range routes {
		if routeMatches(r.Match, path, params, headers) {
			return r
		}
	}
	return nil
}

func routeMatches(m *route.RouteMatch, path string, params url.Values, headers map[string]string) bool {
	cs := m.GetCaseSensitive() == nil || m.GetCaseSensitive().Value
	p, cmpPath := path, func(s string) string { return s }
	if !cs {
		cmpPath = strings.ToLower
	}
	switch ps := m.PathSpecifier.(type) {
	case *route.RouteMatch_Prefix:
		if !strings.HasPrefix(cmpPath(p), cmpPath(ps.Prefix)) {
			return false
		}
	case *route.RouteMatch_Path:
		if cmpPath(p) != cmpPath(ps.Path) {
			return false
		}
	case *route.RouteMatch_SafeRegex:
		if !fullMatch(ps.SafeRegex.Regex, p) {
			return false
		}
	case *route.RouteMatch_PathSeparatedPrefix:
		pre := ps.PathSeparatedPrefix
		if !(p == pre || strings.HasPrefix(p, pre+"/") || strings.HasPrefix(p, pre+"?")) {
			return false
		}
	default:
		return false
	}
	for _, h := range m.Headers {
		v, ok := headers[strings.ToLower(h.Name)]
		var got bool
		switch spec := h.HeaderMatchSpecifier.(type) {
		case *route.HeaderMatcher_PresentMatch:
			got = ok == spec.PresentMatch
		case *route.HeaderMatcher_StringMatch:
			got = ok && stringMatches(spec.StringMatch, v)
		case *route.HeaderMatcher_ExactMatch:
			got = ok && v == spec.ExactMatch
		default:
			got = ok
		}
		if got == h.InvertMatch {
			return false
		}
	}
	for _, q := range m.QueryParameters {
		vs, ok := params[q.Name]
		switch spec := q.QueryParameterMatchSpecifier.(type) {
		case *route.QueryParameterMatcher_PresentMatch:
			if ok != spec.PresentMatch {
				return false
			}
		case *route.QueryParameterMatcher_StringMatch:
			if !ok || !stringMatches(spec.StringMatch, vs[0]) {
				return false
			}
		}
	}
	return true
}

func stringMatches(m *matcher.StringMatcher, v string) bool {
	if m.IgnoreCase {
		v = strings.ToLower(v)
	}
	lower := func(s string) string {
		if m.IgnoreCase {
			return strings.ToLower(s)
		}
		return s
	}
	switch p := m.MatchPattern.(type) {
	case *matcher.StringMatcher_Exact:
		return v == lower(p.Exact)
	case *matcher.StringMatcher_Prefix:
		return strings.HasPrefix(v, lower(p.Prefix))
	case *matcher.StringMatcher_Suffix:
		return strings.HasSuffix(v, lower(p.Suffix))
	case *matcher.StringMatcher_Contains:
		return strings.Contains(v, lower(p.Contains))
	case *matcher.StringMatcher_SafeRegex:
		return fullMatch(p.SafeRegex.Regex, v)
	}
	return false
}

// fullMatch matches Envoy's RE2 semantics: the whole value must match.
func fullMatch(re, v string) bool {
	r, err := regexp.Compile("^(?:" + re + ")$")
	return err == nil && r.MatchString(v)
}

func heaviest(w map[string]uint32) string {
	names := make([]string, 0, len(w))
	for n := range w {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if w[names[i]] != w[names[j]] {
			return w[names[i]] > w[names[j]]
		}
		return names[i] < names[j]
	})
	if len(names) == 0 {
		return ""
	}
	return names[0]
}

// resolveCluster checks the cluster exists and lists its endpoints: from
// EDS, from its inline load assignment, or the original destination.
func (s *Simulator) resolveCluster(res *Result, req Request) error {
	names := []string{res.Cluster}
	for n := range res.WeightedClusters {
		if n != res.Cluster {
			names = append(names, n)
		}
	}
	for _, n := range names {
		if s.clusters[n] == nil {
			return fmt.Errorf("cluster %q not found (503 NC)", n)
		}
	}
	c := s.clusters[res.Cluster]
	var la *endpoint.ClusterLoadAssignment
	switch c.GetType() {
	case cluster.Cluster_EDS:
		name := c.GetEdsClusterConfig().GetServiceName()
		if name == "" {
			name = c.Name
		}
		la = s.cla[name]
	case cluster.Cluster_ORIGINAL_DST:
		if req.Address != "" {
			res.Endpoints = []string{fmt.Sprintf("%s:%d", req.Address, req.Port)}
		}
		return nil
	default:
		la = c.LoadAssignment
	}
	var lbs []*endpoint.LbEndpoint
	for _, g := range la.GetEndpoints() {
		lbs = append(lbs, g.LbEndpoints...)
	}
	addr := func(e *endpoint.LbEndpoint) string {
		sa := e.GetEndpoint().GetAddress().GetSocketAddress()
		return fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue())
	}
	sort.SliceStable(lbs, func(i, j int) bool { return addr(lbs[i]) < addr(lbs[j]) })
	for _, e := range lbs {
		res.Endpoints = append(res.Endpoints, addr(e))
		res.EndpointMetadata = append(res.EndpointMetadata, e.GetMetadata())
	}
	return nil
}

func redirectStatus(c route.RedirectAction_RedirectResponseCode) uint32 {
	switch c {
	case route.RedirectAction_FOUND:
		return 302
	case route.RedirectAction_SEE_OTHER:
		return 303
	case route.RedirectAction_TEMPORARY_REDIRECT:
		return 307
	case route.RedirectAction_PERMANENT_REDIRECT:
		return 308
	}
	return 301
}

func describeRedirect(r *route.RedirectAction) string {
	var b strings.Builder
	if s := r.GetSchemeRedirect(); s != "" {
		b.WriteString(s + "://")
	}
	b.WriteString(r.HostRedirect)
	if r.PortRedirect != 0 {
		fmt.Fprintf(&b, ":%d", r.PortRedirect)
	}
	b.WriteString(r.GetPathRedirect())
	return b.String()
}
