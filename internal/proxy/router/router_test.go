package router

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func prefix(p string) *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: p}}
}

func to(name, cluster string, m *routev3.RouteMatch) *routev3.Route {
	return &routev3.Route{Name: name, Match: m, Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}}}
}

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

func testConfig() *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name: "9080",
		VirtualHosts: []*routev3.VirtualHost{
			{Name: "reviews", Domains: []string{"reviews.default.svc.cluster.local", "reviews", "reviews:9080"}, Routes: []*routev3.Route{
				to("jason", "v2", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
					Headers: []*routev3.HeaderMatcher{{Name: "end-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact("jason")}}}}),
				to("not-test", "v4", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/inv"},
					Headers: []*routev3.HeaderMatcher{{Name: "x-test", InvertMatch: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}}),
				to("query", "v5", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/q"},
					QueryParameters: []*routev3.QueryParameterMatcher{{Name: "debug", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: exact("1")}}}}),
				to("exact", "v3", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/productpage"}}),
				to("ci", "v6", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/CASE"}, CaseSensitive: wrapperspb.Bool(false)}),
				to("regex", "v7", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/api/v[0-9]+/items"}}}),
				to("sep", "v8", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/static"}}),
				to("default", "v1", prefix("/")),
			}},
			{Name: "wild-suffix", Domains: []string{"*.example.com"}, Routes: []*routev3.Route{to("ws", "suffix", prefix("/"))}},
			{Name: "wild-longer", Domains: []string{"*.api.example.com"}, Routes: []*routev3.Route{to("wl", "longer", prefix("/"))}},
			{Name: "wild-prefix", Domains: []string{"foo.*"}, Routes: []*routev3.Route{to("wp", "prefix", prefix("/"))}},
			{Name: "catch", Domains: []string{"*"}, Routes: []*routev3.Route{to("any", "any", prefix("/"))}},
		},
	}
}

func TestMatch(t *testing.T) {
	tab, err := Compile(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		host, target string
		hdr          map[string]string
		want         string
	}{
		{"reviews:9080", "/reviews/0", nil, "default"},
		{"REVIEWS.default.svc.cluster.local", "/", nil, "default"},
		// Envoy matches the authority as sent: a port the domains do not
		// list falls through to "*".
		{"reviews.default.svc.cluster.local:9080", "/", nil, "any"},
		{"reviews", "/", map[string]string{"end-user": "jason"}, "jason"},
		{"reviews", "/", map[string]string{"end-user": "json"}, "default"},
		{"reviews", "/inv", nil, "not-test"},
		{"reviews", "/inv", map[string]string{"x-test": "1"}, "default"},
		{"reviews", "/q?debug=1", nil, "query"},
		{"reviews", "/q?debug=2", nil, "default"},
		{"reviews", "/productpage", nil, "exact"},
		{"reviews", "/productpage?u=normal", nil, "exact"},
		{"reviews", "/productpage/x", nil, "default"},
		{"reviews", "/case/x", nil, "ci"},
		{"reviews", "/api/v12/items", nil, "regex"},
		{"reviews", "/api/v12/items/1", nil, "default"},
		{"reviews", "/static", nil, "sep"},
		{"reviews", "/static/x.css", nil, "sep"},
		{"reviews", "/staticx", nil, "default"},
		{"a.example.com", "/", nil, "ws"},
		{"x.api.example.com", "/", nil, "wl"},
		{"foo.bar", "/", nil, "wp"},
		{"other", "/", nil, "any"},
	}
	for _, c := range cases {
		req := httptest.NewRequest("GET", "http://"+c.host+c.target, nil)
		req.Host = c.host
		for k, v := range c.hdr {
			req.Header.Set(k, v)
		}
		_, r := tab.Match(req)
		if r == nil || r.Name != c.want {
			got := "<nil>"
			if r != nil {
				got = r.Name
			}
			t.Errorf("%s%s %v: got route %s, want %s", c.host, c.target, c.hdr, got, c.want)
		}
	}
}

func TestNoRoute(t *testing.T) {
	rc := &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{
		{Name: "a", Domains: []string{"a"}, Routes: []*routev3.Route{to("x", "c", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/x"}})}},
	}}
	tab, err := Compile(rc)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"http://b/x", "http://a/y"} {
		if _, r := tab.Match(httptest.NewRequest("GET", target, nil)); r != nil {
			t.Errorf("%s: matched %s", target, r.Name)
		}
	}
}

func TestActionsCompile(t *testing.T) {
	fault, _ := anypb.New(&faultv3.HTTPFault{
		Delay: &faultcommonv3.FaultDelay{FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(7e9)},
			Percentage: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}},
		Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 500},
			Percentage: &typev3.FractionalPercent{Numerator: 50, Denominator: typev3.FractionalPercent_TEN_THOUSAND}},
	})
	rc := &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "a", Domains: []string{"*"}, Routes: []*routev3.Route{
		{Name: "w", Match: prefix("/w"), TypedPerFilterConfig: map[string]*anypb.Any{"envoy.filters.http.fault": fault},
			RequestHeadersToAdd: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-a", Value: "1"}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{
					{Name: "v1", Weight: wrapperspb.UInt32(25)}, {Name: "v3", Weight: wrapperspb.UInt32(75)}}}},
				Timeout:      durationpb.New(3e9),
				RetryPolicy:  &routev3.RetryPolicy{RetryOn: "5xx,connect-failure,retriable-status-codes", NumRetries: wrapperspb.UInt32(2), RetriableStatusCodes: []uint32{409}},
				RegexRewrite: &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: "^/w/(.*)$"}, Substitution: `/new/\1`},
				RequestMirrorPolicies: []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "shadow",
					RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100}}}},
			}}},
		{Name: "redir", Match: prefix("/old"), Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
			SchemeRewriteSpecifier: &routev3.RedirectAction_HttpsRedirect{HttpsRedirect: true}, HostRedirect: "new.example", ResponseCode: routev3.RedirectAction_PERMANENT_REDIRECT}}},
		{Name: "direct", Match: prefix("/d"), Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 418,
			Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "teapot"}}}}},
	}}}}
	tab, err := Compile(rc)
	if err != nil {
		t.Fatal(err)
	}
	_, w := tab.Match(httptest.NewRequest("GET", "http://x/w/a", nil))
	if w.Action != ActionWeighted || w.Timeout != 3e9 || w.Retry.NumRetries != 2 || !w.Retry.On5xx || !w.Retry.OnConnectFailure ||
		w.Retry.RetriableStatusCodes[0] != 409 || w.Fault.Delay != 7e9 || w.Fault.DelayFraction != 1e6 || w.Fault.AbortFraction != 5000 ||
		len(w.Mirrors) != 1 || w.Mirrors[0].Fraction != 1e6 {
		t.Fatalf("weighted route %+v", w)
	}
	if got := w.RegexRewrite.ReplaceAllString("/w/abc", w.RegexSubst); got != "/new/abc" {
		t.Fatalf("regex rewrite %q", got)
	}
	counts := map[string]int{}
	for range 4000 {
		c, _ := w.SelectCluster()
		counts[c]++
	}
	if counts["v1"] < 800 || counts["v1"] > 1200 {
		t.Fatalf("weights 25/75 gave %v", counts)
	}
	h := http.Header{"X-A": {"0"}}
	w.RequestHeaders.Apply(h)
	if h.Get("X-A") != "1" || len(h["X-A"]) != 1 {
		t.Fatalf("header overwrite %v", h)
	}
	_, rd := tab.Match(httptest.NewRequest("GET", "http://x/old", nil))
	if rd.Action != ActionRedirect || rd.Redirect.Code != 308 || rd.Redirect.Scheme != "https" || rd.Redirect.Host != "new.example" {
		t.Fatalf("redirect %+v", rd.Redirect)
	}
	_, d := tab.Match(httptest.NewRequest("GET", "http://x/d", nil))
	if d.Action != ActionDirect || d.Direct.Status != 418 || string(d.Direct.Body) != "teapot" {
		t.Fatalf("direct %+v", d.Direct)
	}
}

func TestCompileErrors(t *testing.T) {
	unknown, _ := anypb.New(&faultv3.HTTPFault{})
	cases := []struct {
		rc   *routev3.RouteConfiguration
		want string
	}{
		{&routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{
			{Name: "a", Domains: []string{"x"}}, {Name: "b", Domains: []string{"X"}}}}, `virtual_hosts[1] (b).domains: "x" already used by virtual host a`},
		{&routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "a", Domains: []string{"*"}, Routes: []*routev3.Route{
			to("bad", "c", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "("}}})}}}},
			"route r: virtual_hosts[0] (a).routes[0] (bad).match.safe_regex: invalid regex"},
		{&routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "a", Domains: []string{"*"}, Routes: []*routev3.Route{
			{Name: "lua", Match: prefix("/"), TypedPerFilterConfig: map[string]*anypb.Any{"envoy.filters.http.lua": unknown},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}}}}}}},
			`typed_per_filter_config: unsupported filter "envoy.filters.http.lua"`},
		{&routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "a", Domains: []string{"*"}, Routes: []*routev3.Route{
			{Name: "rt", Match: prefix("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"},
				RetryPolicy: &routev3.RetryPolicy{RetryOn: "5xx,sometimes"}}}}}}}},
			`retry_policy.retry_on: unknown condition "sometimes"`},
	}
	for _, c := range cases {
		_, err := Compile(c.rc)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	tab, err := Compile(testConfig())
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("GET", "http://reviews:9080/reviews/0", nil)
	req.Header.Set("end-user", "nobody")
	b.ReportAllocs()
	for b.Loop() {
		if _, r := tab.Match(req); r == nil {
			b.Fatal("no route")
		}
	}
}

// TestIgnorePortInHostMatching checks ignore_port_in_host_matching (set by
// Istio on gateway route configurations): the authority's port is left
// out when choosing the virtual host, so "host" matches "host:any-port".
func TestIgnorePortInHostMatching(t *testing.T) {
	rc := testConfig()
	rc.IgnorePortInHostMatching = true
	tab, err := Compile(rc)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ host, want string }{
		{"reviews.default.svc.cluster.local:9080", "default"},
		{"reviews:31380", "default"},
		{"REVIEWS:80", "default"},
		{"a.example.com:8443", "ws"},
		{"foo.bar:1", "wp"},
		{"nowhere:9080", "any"},
		{"reviews:", "any"},    // not a port: kept, no match
		{"reviews:abc", "any"}, // not a port
		{"[::1]:8080", "any"},  // IPv6 literal with port
		{"[fe80::1]", "any"},   // IPv6 literal without port: nothing stripped
	} {
		r := httptest.NewRequest("GET", "http://x/", nil)
		r.Host = c.host
		if _, rt := tab.Match(r); rt == nil || rt.Name != c.want {
			t.Errorf("host %q: route %v, want %s", c.host, rt, c.want)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"h:80", "h"}, {"h", "h"}, {"h:", "h:"}, {"h:x1", "h:x1"}, {"[::1]:80", "[::1]"}, {"[::1]", "[::1]"},
	} {
		if got := withoutPort(c.in); got != c.want {
			t.Errorf("withoutPort(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
