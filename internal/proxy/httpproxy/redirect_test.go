package httpproxy

import (
	"crypto/tls"
	"net/http/httptest"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weftmesh/weft/internal/proxy/router"
)

// TestRedirectLocation checks Envoy's redirect URI rules (newUri and
// processRequestHost in source/common/http/utility.cc).
func TestRedirectLocation(t *testing.T) {
	rd := func(a *routev3.RedirectAction) *routev3.RedirectAction { return a }
	https := &routev3.RedirectAction_HttpsRedirect{HttpsRedirect: true}
	cases := []struct {
		name   string
		action *routev3.RedirectAction
		target string // request URL (scheme and authority included)
		tls    bool
		xfp    string
		want   string
	}{
		{"defaults keep authority and query", rd(&routev3.RedirectAction{}), "http://h:8080/p/x?q=1", false, "", "http://h:8080/p/x?q=1"},
		{"host_redirect drops the request port", rd(&routev3.RedirectAction{HostRedirect: "other"}), "http://h:8080/p/x?q=1", false, "", "http://other/p/x?q=1"},
		{"host and port", rd(&routev3.RedirectAction{HostRedirect: "other", PortRedirect: 9090}), "http://h:8080/p", false, "", "http://other:9090/p"},
		{"port_redirect replaces the port", rd(&routev3.RedirectAction{PortRedirect: 9090}), "http://h:8080/p", false, "", "http://h:9090/p"},
		{"port_redirect adds a port", rd(&routev3.RedirectAction{PortRedirect: 9090}), "http://h/p", false, "", "http://h:9090/p"},
		{"https_redirect drops :80", rd(&routev3.RedirectAction{SchemeRewriteSpecifier: https}), "http://h:80/p", false, "", "https://h/p"},
		{"https_redirect keeps a non-standard port", rd(&routev3.RedirectAction{SchemeRewriteSpecifier: https}), "http://h:8080/p", false, "", "https://h:8080/p"},
		{"https_redirect with port", rd(&routev3.RedirectAction{SchemeRewriteSpecifier: https, PortRedirect: 8443}), "http://h:8080/p", false, "", "https://h:8443/p"},
		{"scheme_redirect http drops :443", rd(&routev3.RedirectAction{SchemeRewriteSpecifier: &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: "http"}}), "https://h:443/p", true, "", "http://h/p"},
		{"same scheme keeps :80", rd(&routev3.RedirectAction{SchemeRewriteSpecifier: &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: "http"}}), "http://h:80/p", false, "", "http://h:80/p"},
		{"x-forwarded-proto decides the default port", rd(&routev3.RedirectAction{SchemeRewriteSpecifier: https}), "http://h:443/p", false, "https", "https://h:443/p"},
		{"tls request keeps https", rd(&routev3.RedirectAction{HostRedirect: "o"}), "https://h:8443/p", true, "", "https://o/p"},
		{"ipv6 host port", rd(&routev3.RedirectAction{PortRedirect: 1}), "http://[::1]:8080/p", false, "", "http://[::1]:1/p"},
		{"ipv6 host without port", rd(&routev3.RedirectAction{PortRedirect: 1}), "http://[::1]/p", false, "", "http://[::1]:1/p"},
		{"path keeps the request query", rd(&routev3.RedirectAction{PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: "/new"}}), "http://h/p?q=1", false, "", "http://h/new?q=1"},
		{"path query wins", rd(&routev3.RedirectAction{PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: "/new?z=2"}}), "http://h/p?q=1", false, "", "http://h/new?z=2"},
		{"strip_query leaves a path query", rd(&routev3.RedirectAction{StripQuery: true, PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: "/new?z=2"}}), "http://h/p?q=1", false, "", "http://h/new?z=2"},
		{"strip_query", rd(&routev3.RedirectAction{StripQuery: true, PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: "/new"}}), "http://h/p?q=1", false, "", "http://h/new"},
		{"prefix_rewrite", rd(&routev3.RedirectAction{PathRewriteSpecifier: &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: "/v2"}}), "http://h/p/x/y?q=1", false, "", "http://h/v2/x/y?q=1"},
		{"escaped path kept", rd(&routev3.RedirectAction{}), "http://h/p/a%2Fb", false, "", "http://h/p/a%2Fb"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tab, err := router.Compile(&routev3.RouteConfiguration{Name: "t", VirtualHosts: []*routev3.VirtualHost{{
				Name: "vh", Domains: []string{"*"},
				Routes: []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/p"}},
					Action: &routev3.Route_Redirect{Redirect: c.action}}},
			}}})
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", c.target, nil)
			if c.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if c.xfp != "" {
				r.Header.Set("X-Forwarded-Proto", c.xfp)
			}
			w := httptest.NewRecorder()
			(&Handler{Static: tab}).ServeHTTP(w, r)
			if got := w.Header().Get("Location"); w.Code != 301 || got != c.want {
				t.Errorf("%s: %d Location %q, want 301 %q", c.target, w.Code, got, c.want)
			}
		})
	}
}
