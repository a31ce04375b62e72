package accesslog

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/httpproxy"
	"github.com/weftmesh/weft/internal/proxy/upstream"
)

// BenchmarkObserve is the cost on the request path: building an entry
// and queueing it (the writer goroutine encodes to io.Discard).
func BenchmarkObserve(b *testing.B) {
	l := New(io.Discard, 0)
	ctx, cancel := context.WithCancel(context.Background())
	go l.Run(ctx)
	defer func() { cancel(); <-l.Done() }()
	r := httptest.NewRequest(http.MethodGet, "http://reviews:9080/reviews/0?x=1", nil)
	r.Header.Set("User-Agent", "bench")
	r.Header.Set("X-Request-Id", "0b1f0f6e-3c1e-4d7b-9e0f-5d5c3e0c4a11")
	in := &httpproxy.Info{Start: time.Now(), Method: "GET", Authority: "reviews:9080", Path: "/reviews/0", Protocol: "HTTP/1.1",
		Status: 200, Route: "default", Cluster: "outbound|9080|v1|reviews.default.svc.cluster.local", Upstream: &upstream.Host{Addr: "10.0.0.1:9080"},
		Conn: &httpproxy.ConnInfo{RemoteAddr: "10.0.0.2:41000", LocalAddr: "10.0.0.3:9080"}, Request: r, UpstreamServiceTime: time.Millisecond}
	b.ReportAllocs()
	for b.Loop() {
		l.Observe(in)
	}
	b.ReportMetric(float64(l.Dropped())/float64(b.N), "dropped/op")
}

// BenchmarkAppendJSON is the writer goroutine's cost per line, which
// bounds the sustained log rate before entries are dropped.
func BenchmarkAppendJSON(b *testing.B) {
	r := httptest.NewRequest(http.MethodGet, "http://reviews:9080/reviews/0?x=1", nil)
	r.Header.Set("User-Agent", "bench")
	r.Header.Set("X-Request-Id", "0b1f0f6e-3c1e-4d7b-9e0f-5d5c3e0c4a11")
	e := HTTPEntry(&httpproxy.Info{Start: time.Now(), Method: "GET", Authority: "reviews:9080", Path: "/reviews/0", Protocol: "HTTP/1.1",
		Status: 200, Route: "default", Cluster: "outbound|9080|v1|reviews.default.svc.cluster.local", Upstream: &upstream.Host{Addr: "10.0.0.1:9080"},
		Conn: &httpproxy.ConnInfo{RemoteAddr: "10.0.0.2:41000", LocalAddr: "10.0.0.3:9080"}, Request: r, UpstreamServiceTime: time.Millisecond})
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = e.AppendJSON(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}
