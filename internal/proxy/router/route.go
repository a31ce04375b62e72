// Package router compiles Envoy v3 RouteConfigurations into immutable
// matching tables and selects the route for a request as Envoy does:
// virtual host by domain (exact, longest suffix wildcard, longest prefix
// wildcard, then "*"), then the first route whose path, header and query
// matchers all match.
package router

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// DefaultRouteTimeout is Envoy's default route timeout.
const DefaultRouteTimeout = 15 * time.Second

// Action says what a matched route does.
type Action uint8

// Route actions.
const (
	ActionCluster Action = iota
	ActionWeighted
	ActionRedirect
	ActionDirect
)

// Route is one compiled route.
type Route struct {
	Name string
	// Matching.
	pathKind      pathKind
	path          string
	pathRe        *regexp.Regexp
	caseSensitive bool
	headers       []headerMatch
	query         []queryMatch
	grpcOnly      bool

	Action   Action
	Cluster  string
	Weighted []WeightedCluster
	total    uint32
	Redirect *Redirect
	Direct   *DirectResponse

	PrefixRewrite   string
	RegexRewrite    *regexp.Regexp
	RegexSubst      string
	HostRewrite     string
	AutoHostRewrite bool

	// Timeout is the whole-request timeout; 0 disables it. See
	// RouterTimeout and StreamTimeout for the gRPC variants.
	Timeout time.Duration
	// GRPCTimeout is max_grpc_timeout (nil: not set, or the route has
	// StreamDuration).
	GRPCTimeout *GRPCTimeout
	// StreamDuration is max_stream_duration (nil: not set).
	StreamDuration *StreamDuration
	IdleTimeout    time.Duration
	Retry          *RetryPolicy
	Mirrors        []Mirror
	Fault          *Fault
	Cors           *Cors
	HashPolicy     []HashPolicy

	// Headers are the request/response mutations of this route, its
	// virtual host and its route configuration, in Envoy's order.
	RequestHeaders  HeaderMutation
	ResponseHeaders HeaderMutation
	// UpgradeWebSocket allows Upgrade: websocket (per-route override).
	UpgradeWebSocket *bool
}

type pathKind uint8

const (
	pathPrefix pathKind = iota
	pathExact
	pathRegex
	pathSeparated
)

// WeightedCluster is one destination of a weighted_clusters action.
type WeightedCluster struct {
	Name   string
	Weight uint32
	// RequestHeaders/ResponseHeaders are per-cluster mutations.
	RequestHeaders  HeaderMutation
	ResponseHeaders HeaderMutation
}

// Redirect is a compiled redirect action.
type Redirect struct {
	Scheme, Host, Path, PrefixRewrite string
	Port                              uint32
	Code                              int
	StripQuery                        bool
}

// DirectResponse is a compiled direct_response action.
type DirectResponse struct {
	Status int
	Body   []byte
}

// RetryPolicy is a compiled retry policy.
type RetryPolicy struct {
	On5xx, OnGatewayError, OnConnectFailure, OnRefusedStream, OnReset, OnRetriable4xx, OnRetriableStatus bool
	NumRetries                                                                                           int
	PerTryTimeout                                                                                        time.Duration
	RetriableStatusCodes                                                                                 []int
	BackoffBase, BackoffMax                                                                              time.Duration
	PreviousHosts                                                                                        bool
	HostSelectionMaxAttempts                                                                             int
	// GRPCCodes has bit c set when retry_on names gRPC status c
	// (cancelled, deadline-exceeded, internal, resource-exhausted,
	// unavailable); see RetriesGRPC.
	GRPCCodes uint32
}

// RetriesGRPC reports whether the policy retries gRPC status code c.
func (p *RetryPolicy) RetriesGRPC(c int) bool {
	return c > 0 && c < 32 && p.GRPCCodes&(1<<c) != 0
}

// Mirror sends a copy of a fraction of requests to Cluster.
type Mirror struct {
	Cluster  string
	Fraction Fraction
}

// Fault is a compiled envoy.filters.http.fault configuration.
type Fault struct {
	Delay         time.Duration
	DelayFraction Fraction
	AbortStatus   int
	AbortFraction Fraction
}

// Cors is a compiled CORS policy.
type Cors struct {
	Origins                                 []*StringMatch
	Methods, Headers, ExposeHeaders, MaxAge string
	AllowCredentials                        bool
}

// HashPolicy is one hash_policy entry for ring hash and maglev.
type HashPolicy struct {
	Header, Cookie, QueryParam string
	SourceIP                   bool
	Terminal                   bool
}

type headerMatch struct {
	name           string // canonical, or ":authority" style pseudo-header
	present        *bool
	str            *StringMatch
	rangeStart     int64
	rangeEnd       int64
	isRange        bool
	invert         bool
	missingIsEmpty bool
}

type queryMatch struct {
	name    string
	present bool
	str     *StringMatch
}

// SelectCluster returns the cluster for this request (a weighted pick for
// weighted_clusters) and the index of the weighted entry, or -1.
func (r *Route) SelectCluster() (string, int) {
	if r.Action != ActionWeighted {
		return r.Cluster, -1
	}
	n := rand.Uint32N(r.total)
	for i := range r.Weighted {
		if n < r.Weighted[i].Weight {
			return r.Weighted[i].Name, i
		}
		n -= r.Weighted[i].Weight
	}
	return r.Weighted[len(r.Weighted)-1].Name, len(r.Weighted) - 1
}

// Hit reports whether a random draw falls within f.
func (f Fraction) Hit() bool {
	if f >= 1e6 {
		return true
	}
	return f > 0 && rand.Uint32N(1e6) < uint32(f)
}

// matches reports whether req matches r. path is the escaped path
// without query; query is the raw query.
func (r *Route) matches(req *http.Request, path, query string) bool {
	switch r.pathKind {
	case pathPrefix:
		full := path
		if query != "" {
			full = path + "?" + query
		}
		if r.caseSensitive {
			if !strings.HasPrefix(full, r.path) {
				return false
			}
		} else if len(full) < len(r.path) || !strings.EqualFold(full[:len(r.path)], r.path) {
			return false
		}
	case pathExact:
		if r.caseSensitive {
			if path != r.path {
				return false
			}
		} else if !strings.EqualFold(path, r.path) {
			return false
		}
	case pathRegex:
		if !r.pathRe.MatchString(path) {
			return false
		}
	case pathSeparated:
		if r.caseSensitive {
			if !strings.HasPrefix(path, r.path) {
				return false
			}
		} else if len(path) < len(r.path) || !strings.EqualFold(path[:len(r.path)], r.path) {
			return false
		}
		if len(path) > len(r.path) && path[len(r.path)] != '/' {
			return false
		}
	}
	if r.grpcOnly && !strings.HasPrefix(req.Header.Get("Content-Type"), "application/grpc") {
		return false
	}
	for i := range r.headers {
		if !r.headers[i].matches(req) {
			return false
		}
	}
	if len(r.query) > 0 {
		q := req.URL.Query()
		for _, m := range r.query {
			vs, ok := q[m.name]
			if !ok {
				return false
			}
			if m.str != nil && (len(vs) == 0 || !m.str.Match(vs[0])) {
				return false
			}
		}
	}
	return true
}

func headerValue(req *http.Request, name string) (string, bool) {
	switch name {
	case ":authority", "Host":
		return req.Host, true
	case ":method":
		return req.Method, true
	case ":path":
		return req.URL.RequestURI(), true
	case ":scheme":
		if req.TLS != nil {
			return "https", true
		}
		return "http", true
	}
	vs, ok := req.Header[name]
	if !ok {
		return "", false
	}
	if len(vs) == 1 {
		return vs[0], true
	}
	return strings.Join(vs, ","), true
}

func (m *headerMatch) matches(req *http.Request) bool {
	v, ok := headerValue(req, m.name)
	if !ok && m.missingIsEmpty {
		v, ok = "", true
	}
	var res bool
	switch {
	case m.present != nil:
		res = ok == *m.present
	case !ok:
		// A missing header never matches, even inverted (Envoy).
		return false
	case m.isRange:
		var n int64
		_, err := fmt.Sscan(v, &n)
		res = err == nil && n >= m.rangeStart && n < m.rangeEnd
	case m.str != nil:
		res = m.str.Match(v)
	default:
		res = true
	}
	return res != m.invert
}

// HeaderMutation is a list of header additions and removals.
type HeaderMutation struct {
	Add    []HeaderAdd
	Remove []string
}

// HeaderAdd is one header to add.
type HeaderAdd struct {
	Name, Value string
	Mode        corev3.HeaderValueOption_HeaderAppendAction
}

// Empty reports whether m changes nothing.
func (m *HeaderMutation) Empty() bool { return len(m.Add) == 0 && len(m.Remove) == 0 }

// Apply mutates h.
func (m *HeaderMutation) Apply(h http.Header) {
	for _, n := range m.Remove {
		delete(h, n)
	}
	for _, a := range m.Add {
		switch a.Mode {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			h[a.Name] = append(h[a.Name], a.Value)
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			if _, ok := h[a.Name]; !ok {
				h[a.Name] = []string{a.Value}
			}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			h[a.Name] = []string{a.Value}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			if _, ok := h[a.Name]; ok {
				h[a.Name] = []string{a.Value}
			}
		}
	}
}

func (m *HeaderMutation) merge(o HeaderMutation) {
	m.Add = append(m.Add, o.Add...)
	m.Remove = append(m.Remove, o.Remove...)
}

func compileMutation(field string, add []*corev3.HeaderValueOption, remove []string) (HeaderMutation, error) {
	var m HeaderMutation
	for i, o := range add {
		name := o.GetHeader().GetKey()
		if name == "" || strings.HasPrefix(name, ":") && !strings.EqualFold(name, ":authority") {
			return m, fmt.Errorf("%s[%d]: header %q cannot be set", field, i, name)
		}
		v := o.GetHeader().GetValue()
		if v == "" && len(o.GetHeader().GetRawValue()) > 0 {
			v = string(o.GetHeader().GetRawValue())
		}
		mode := o.GetAppendAction()
		if o.Append != nil { // deprecated bool form
			if o.GetAppend().GetValue() {
				mode = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
			} else {
				mode = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
			}
		}
		if strings.EqualFold(name, ":authority") {
			name = "Host"
		}
		m.Add = append(m.Add, HeaderAdd{Name: http.CanonicalHeaderKey(name), Value: v, Mode: mode})
	}
	for _, n := range remove {
		m.Remove = append(m.Remove, http.CanonicalHeaderKey(n))
	}
	return m, nil
}

// perFilter finds the typed config of a filter in typed_per_filter_config.
func perFilter(cfgs map[string]*anypb.Any, name string) *anypb.Any {
	a := cfgs[name]
	if a == nil {
		return nil
	}
	if a.GetTypeUrl() == "type.googleapis.com/envoy.config.route.v3.FilterConfig" {
		fc := &routev3.FilterConfig{}
		if a.UnmarshalTo(fc) == nil {
			return fc.GetConfig()
		}
	}
	return a
}

func compileFault(field string, a *anypb.Any) (*Fault, error) {
	hf := &faultv3.HTTPFault{}
	if err := a.UnmarshalTo(hf); err != nil {
		return nil, fmt.Errorf("%s: %v", field, err)
	}
	f := &Fault{}
	if d := hf.GetDelay(); d != nil {
		if d.GetFixedDelay() == nil {
			return nil, fmt.Errorf("%s.delay: only fixed_delay is supported", field)
		}
		f.Delay = d.GetFixedDelay().AsDuration()
		f.DelayFraction = CompileFraction(d.GetPercentage())
	}
	if ab := hf.GetAbort(); ab != nil {
		if ab.GetHttpStatus() == 0 {
			return nil, fmt.Errorf("%s.abort: only http_status is supported", field)
		}
		f.AbortStatus = int(ab.GetHttpStatus())
		f.AbortFraction = CompileFraction(ab.GetPercentage())
	}
	return f, nil
}

func compileCors(field string, a *anypb.Any) (*Cors, error) {
	cp := &corsv3.CorsPolicy{}
	if err := a.UnmarshalTo(cp); err != nil {
		return nil, fmt.Errorf("%s: %v", field, err)
	}
	c := &Cors{Methods: cp.GetAllowMethods(), Headers: cp.GetAllowHeaders(), ExposeHeaders: cp.GetExposeHeaders(),
		MaxAge: cp.GetMaxAge(), AllowCredentials: cp.GetAllowCredentials().GetValue()}
	for i, m := range cp.GetAllowOriginStringMatch() {
		sm, err := CompileStringMatcher(fmt.Sprintf("%s.allow_origin_string_match[%d]", field, i), m)
		if err != nil {
			return nil, err
		}
		c.Origins = append(c.Origins, sm)
	}
	return c, nil
}

// AllowOrigin reports whether origin is allowed.
func (c *Cors) AllowOrigin(origin string) bool {
	for _, m := range c.Origins {
		if m.Match(origin) {
			return true
		}
	}
	return false
}

// MatchedPrefix is the route's prefix (or path-separated prefix, or exact
// path) for prefix_rewrite; "" for regex routes.
func (r *Route) MatchedPrefix() string {
	if r.pathKind == pathRegex {
		return ""
	}
	return r.path
}
