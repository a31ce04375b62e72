package httpproxy

import (
	"net/http"
	"net/http/httptest"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weftmesh/weft/internal/proxy/pathnorm"
	"github.com/weftmesh/weft/internal/proxy/router"
)

// echoTable answers every path under /a/ with 200 "matched" and nothing
// else, so a test sees which path routing used.
func echoTable(t *testing.T) *router.Table {
	tab, err := router.Compile(&routev3.RouteConfiguration{Name: "t", VirtualHosts: []*routev3.VirtualHost{{
		Name: "vh", Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/a/"}},
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 200,
				Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "matched"}}}},
		}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

type recordFilter struct {
	paths []string
	reply *LocalReply
}

func (f *recordFilter) Decode(r *http.Request, st *FilterState) *LocalReply {
	f.paths = append(f.paths, r.URL.EscapedPath())
	st.SetMetadata("f", "seen", true)
	return f.reply
}

func serveOne(h *Handler, target string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", "http://h"+target, nil)
	r.RequestURI = target
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestPathNormalizationBeforeRouting(t *testing.T) {
	f := &recordFilter{}
	h := &Handler{Static: echoTable(t), Filters: []Filter{f},
		PathNormalization: pathnorm.Options{Normalize: true, MergeSlashes: true, EscapedSlashes: pathnorm.UnescapeAndForward}}
	if w := serveOne(h, "/x/../a/%62"); w.Code != 200 || w.Body.String() != "matched" {
		t.Errorf("normalized path not routed: %d %q", w.Code, w.Body)
	}
	if w := serveOne(h, "/a%2Fb"); w.Code != 200 {
		t.Errorf("unescaped slash not routed: %d", w.Code)
	}
	if len(f.paths) != 2 || f.paths[0] != "/a/b" || f.paths[1] != "/a/b" {
		t.Errorf("filters saw %q, want the normalized paths", f.paths)
	}
	if w := serveOne(h, "/a/#x"); w.Code != 400 {
		t.Errorf("fragment: %d, want 400", w.Code)
	}
}

func TestEscapedSlashActions(t *testing.T) {
	reject := &Handler{Static: echoTable(t), PathNormalization: pathnorm.Options{Normalize: true, EscapedSlashes: pathnorm.Reject}}
	if w := serveOne(reject, "/a%2fb"); w.Code != 400 {
		t.Errorf("REJECT_REQUEST: %d, want 400", w.Code)
	}
	redirect := &Handler{Static: echoTable(t), PathNormalization: pathnorm.Options{Normalize: true, EscapedSlashes: pathnorm.UnescapeAndRedirect}}
	w := serveOne(redirect, "/a%2fb?q=1")
	if w.Code != 307 || w.Header().Get("Location") != "http://h/a/b?q=1" {
		t.Errorf("UNESCAPE_AND_REDIRECT: %d %q", w.Code, w.Header().Get("Location"))
	}
	keep := &Handler{Static: echoTable(t), PathNormalization: pathnorm.Options{Normalize: true}}
	if w := serveOne(keep, "/a%2fb"); w.Code != 404 {
		t.Errorf("KEEP_UNCHANGED routed /a%%2Fb as /a/b: %d", w.Code)
	}
}

func TestFilterLocalReply(t *testing.T) {
	first := &recordFilter{reply: &LocalReply{Status: 401, Body: "Jwt is missing", Header: http.Header{"Www-Authenticate": {"Bearer"}}}}
	second := &recordFilter{}
	var got *Info
	h := &Handler{Static: echoTable(t), Filters: []Filter{first, second}, Observer: observerFunc(func(i *Info) { c := *i; got = &c })}
	w := serveOne(h, "/a/x")
	if w.Code != 401 || w.Body.String() != "Jwt is missing" || w.Header().Get("Www-Authenticate") != "Bearer" {
		t.Errorf("local reply: %d %q %v", w.Code, w.Body, w.Header())
	}
	if len(second.paths) != 0 {
		t.Error("a filter ran after a local reply")
	}
	deny := &recordFilter{reply: &LocalReply{Status: 403, Body: "RBAC: access denied", Details: "rbac_access_denied_matched_policy[none]"}}
	h = &Handler{Static: echoTable(t), Filters: []Filter{deny}, Observer: observerFunc(func(i *Info) { c := *i; got = &c })}
	if w := serveOne(h, "/a/x"); w.Code != 403 || got == nil || got.Flags != "" || got.Details != "rbac_access_denied_matched_policy[none]" || got.Status != 403 {
		t.Errorf("RBAC denial: %d, info %+v", w.Code, got)
	}
}

type observerFunc func(*Info)

func (f observerFunc) Observe(i *Info) { f(i) }

func TestStripAnyHostPort(t *testing.T) {
	f := &hostFilter{}
	h := &Handler{Static: echoTable(t), Filters: []Filter{f}, StripAnyHostPort: true}
	for in, want := range map[string]string{"h.example:8080": "h.example", "h.example": "h.example", "[::1]:80": "[::1]", "10.0.0.1:443": "10.0.0.1"} {
		r := httptest.NewRequest("GET", "/a/x", nil)
		r.Host = in
		h.ServeHTTP(httptest.NewRecorder(), r)
		if f.host != want {
			t.Errorf("%s: filters saw %q, want %q", in, f.host, want)
		}
	}
}

type hostFilter struct{ host string }

func (f *hostFilter) Decode(r *http.Request, _ *FilterState) *LocalReply {
	f.host = r.Host
	return nil
}
