package app_test

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"

	"github.com/weftmesh/weft/examples/bookinfo/app"
)

// recorder is a real service wrapped to remember the requests it received.
type recorder struct {
	h  http.Handler
	mu sync.Mutex
	rs []*http.Request // clones, bodies not kept
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	rec.rs = append(rec.rs, r.Clone(r.Context()))
	rec.mu.Unlock()
	rec.h.ServeHTTP(w, r)
}

// requests returns the requests received so far.
func (rec *recorder) requests() []*http.Request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]*http.Request(nil), rec.rs...)
}

// last returns the last request received, failing the test if there was none.
func (rec *recorder) last(t *testing.T) *http.Request {
	t.Helper()
	rs := rec.requests()
	if len(rs) == 0 {
		t.Fatal("service received no request")
	}
	return rs[len(rs)-1]
}

// serve starts h on a loopback port and returns its recorder and base URL.
func serve(t testing.TB, h http.Handler) (*recorder, string) {
	t.Helper()
	rec := &recorder{h: h}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return rec, srv.URL
}

// meshProxy is a forward HTTP proxy standing in for the mesh: it routes
// requests for Istio service names (details:9080 ...) to the services' real
// loopback addresses, keeping the Host header, as the local-mode proxy does.
type meshProxy struct {
	url    *url.URL
	mu     sync.Mutex
	routes map[string]string // host:port -> base URL
	hosts  []string          // Host headers seen, in order
}

func newMeshProxy(t testing.TB) *meshProxy {
	t.Helper()
	m := &meshProxy{routes: make(map[string]string)}
	rp := &httputil.ReverseProxy{
		ErrorLog: log.New(io.Discard, "", 0), // failed upstreams are part of the tests
		Rewrite: func(pr *httputil.ProxyRequest) {
			m.mu.Lock()
			target := m.routes[pr.In.URL.Host]
			m.hosts = append(m.hosts, pr.In.Host)
			m.mu.Unlock()
			u, _ := url.Parse(target)
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", u.Host
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		_, ok := m.routes[r.URL.Host]
		m.mu.Unlock()
		if !r.URL.IsAbs() || !ok {
			http.Error(w, "no route to "+r.URL.Host, http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	m.url, _ = url.Parse(srv.URL)
	return m
}

// route sends requests for hostPort to base.
func (m *meshProxy) route(hostPort, base string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.routes[hostPort] = base
}

// proxy returns the proxy function the services use to reach it.
func (m *meshProxy) proxy() app.ProxyFunc { return http.ProxyURL(m.url) }

// seenHosts returns the Host headers of the requests it proxied.
func (m *meshProxy) seenHosts() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.hosts...)
}

// closedURL returns the base URL of a loopback port nothing listens on.
func closedURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// bookinfo is the four services running on loopback behind a meshProxy, called
// by their Istio names.
type bookinfo struct {
	mesh                      *meshProxy
	details, reviews, ratings *recorder
	productpage               *recorder
	productpageURL            string
}

// startBookinfo starts the sample with the given reviews version.
func startBookinfo(t testing.TB, version string) *bookinfo {
	t.Helper()
	b := &bookinfo{mesh: newMeshProxy(t)}
	var url string
	b.details, url = serve(t, app.NewDetails())
	b.mesh.route("details:9080", url)
	b.ratings, url = serve(t, app.NewRatings())
	b.mesh.route("ratings:9080", url)
	reviews, err := app.NewReviews(app.ReviewsConfig{Version: version, Podname: "reviews-" + version + "-pod", Proxy: b.mesh.proxy()})
	if err != nil {
		t.Fatal(err)
	}
	b.reviews, url = serve(t, reviews)
	b.mesh.route("reviews:9080", url)
	pp, err := app.NewProductpage(app.ProductpageConfig{Proxy: b.mesh.proxy()})
	if err != nil {
		t.Fatal(err)
	}
	b.productpage, b.productpageURL = serve(t, pp)
	return b
}
