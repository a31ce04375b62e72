package httpproxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestAbsoluteFormTarget sends a forward-proxy request (absolute-form
// target): the request the observers see and the upstream's request line
// carry the origin-form target, the authority comes from the URL.
func TestAbsoluteFormTarget(t *testing.T) {
	var upURI, upHost string
	backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upURI, upHost = r.RequestURI, r.Host
	})
	h := &Handler{ForwardProxy: true, Resolver: oneCluster{routeTo(t, nil), loopbackCluster(t, backend, nil)}}
	r := httptest.NewRequest("GET", "http://svc.example:8080/logged/a%2Fb?y=2", nil)
	if r.RequestURI != "http://svc.example:8080/logged/a%2Fb?y=2" {
		t.Fatalf("test request target %q is not absolute-form", r.RequestURI)
	}
	var seenURI, seenPath, seenAuthority string
	h.Observer = observerFunc(func(i *Info) { seenURI, seenPath, seenAuthority = i.Request.RequestURI, i.Path, i.Authority })
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("status %d %q", w.Code, w.Body)
	}
	if seenURI != "/logged/a%2Fb?y=2" || seenPath != "/logged/a/b" || seenAuthority != "svc.example:8080" {
		t.Errorf("observer saw target %q path %q authority %q, want /logged/a%%2Fb?y=2, /logged/a/b, svc.example:8080", seenURI, seenPath, seenAuthority)
	}
	if upURI != "/logged/a%2Fb?y=2" || upHost != "svc.example:8080" {
		t.Errorf("upstream got target %q host %q, want /logged/a%%2Fb?y=2 and svc.example:8080", upURI, upHost)
	}

	// An opaque target has no path: 400, nothing forwarded.
	upURI = ""
	r = httptest.NewRequest("GET", "http://svc.example:8080/", nil)
	r.URL.Opaque, r.URL.Path = "svc.example", ""
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusBadRequest || upURI != "" {
		t.Errorf("opaque target: %d (upstream saw %q), want 400 and nothing forwarded", w.Code, upURI)
	}
}

// TestToOriginForm checks the target rewriting on its own.
func TestToOriginForm(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"/a?b", "/a?b"},
		{"*", "*"},
		{"http://h:1/a/%2F?q#f", "/a/%2F?q#f"},
		{"http://h", "/"},
		{"http://h?q=1", "/?q=1"},
		{"http://u@h/x", "/x"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RequestURI = c.in
		if c.in != "*" && c.in[0] != '/' {
			r.URL.Scheme, r.URL.Host = "http", "h"
		}
		if !toOriginForm(r) || r.RequestURI != c.want || r.URL.Scheme != "" || r.URL.Host != "" {
			t.Errorf("%q -> %q (URL %s), want %q", c.in, r.RequestURI, r.URL, c.want)
		}
	}
}
