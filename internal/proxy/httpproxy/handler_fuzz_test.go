package httpproxy

import (
	"bufio"
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/weftmesh/weft/internal/proxy/router"
	"github.com/weftmesh/weft/internal/proxy/upstream"
)

// noClusters resolves routes but no clusters (every forward is 503 NC).
type noClusters struct{ t *router.Table }

func (n noClusters) RouteTable(string) *router.Table  { return n.t }
func (n noClusters) Cluster(string) *upstream.Cluster { return nil }

func fuzzTable(tb testing.TB) *router.Table {
	redirect := func(name, prefix string, a *routev3.RedirectAction) *routev3.Route {
		return &routev3.Route{Name: name, Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}}, Action: &routev3.Route_Redirect{Redirect: a}}
	}
	rc := &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{
		redirect("https", "/s", &routev3.RedirectAction{SchemeRewriteSpecifier: &routev3.RedirectAction_HttpsRedirect{HttpsRedirect: true}, PortRedirect: 8443}),
		redirect("prefix", "/p", &routev3.RedirectAction{PathRewriteSpecifier: &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: "/new"}, StripQuery: true}),
		redirect("path", "/x", &routev3.RedirectAction{PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: "/y?z=1"}, HostRedirect: "h"}),
		{Name: "direct", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/d.*"}}},
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 200, Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "ok"}}}}},
		{Name: "fwd", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}, PrefixRewrite: "/r/"}}},
	}}}}
	t, err := router.Compile(rc)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// FuzzServeHTTP parses arbitrary request bytes as net/http would and runs
// them through the handler: no input may panic it.
func FuzzServeHTTP(f *testing.F) {
	for _, s := range []string{
		"GET /s?q=1 HTTP/1.1\r\nHost: a:80\r\n\r\n",
		"GET /p/x HTTP/1.1\r\nHost: [::1]:9\r\n\r\n",
		"GET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: a\r\nOrigin: o\r\nAccess-Control-Request-Method: GET\r\n\r\n",
		"GET /dd HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	h := &Handler{Resolver: noClusters{fuzzTable(f)}, RouteName: "r", Stats: &Stats{}}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code < 100 || rec.Code > 599 {
			t.Fatalf("status %d", rec.Code)
		}
	})
}
