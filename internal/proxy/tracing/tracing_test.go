package tracing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/httpproxy"
)

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{OTLPURL: "collector:4318", SamplingPercent: 1},
		{OTLPURL: "ftp://collector/v1/traces", SamplingPercent: 1},
		{OTLPURL: "http://collector:4318/v1/traces", SamplingPercent: 101},
		{OTLPURL: "http://collector:4318/v1/traces", SamplingPercent: -1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// TestExporterDropsWhenFull checks that ending spans never blocks on a
// stuck collector: spans beyond the queue are dropped and counted.
func TestExporterDropsWhenFull(t *testing.T) {
	release := make(chan struct{})
	col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer col.Close()
	tr, err := New(Config{OTLPURL: col.URL + "/v1/traces", SamplingPercent: 100, QueueSize: 4, BatchSize: 1, FlushInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tr.Run(ctx); close(done) }()
	const n = 100
	for range n {
		r := httptest.NewRequest("GET", "http://reviews:9080/", nil)
		sp := tr.Start(r)
		if sp == nil {
			t.Fatal("100% sampling returned no span")
		}
		sp.End(&httpproxy.Info{Start: time.Now(), Method: "GET", Authority: "reviews:9080", Path: "/", Status: 200})
	}
	// At most one batch in flight plus a full queue can be held.
	if st := tr.Stats(); st.Dropped < n-4-1 || st.Exported != 0 {
		t.Fatalf("stats %+v: want at least %d dropped, none exported", st, n-5)
	}
	cancel()
	close(release) // let the stuck posts finish so Run can return
	<-done
}

func TestExporterReportsFailures(t *testing.T) {
	col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer col.Close()
	tr, err := New(Config{OTLPURL: col.URL + "/v1/traces", SamplingPercent: 100, FlushInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tr.Run(ctx); close(done) }()
	tr.Start(httptest.NewRequest("GET", "/", nil)).End(&httpproxy.Info{Start: time.Now(), Status: 200})
	cancel()
	<-done // Run flushes the queue before returning
	if st := tr.Stats(); st.Failed != 1 || st.Exported != 0 {
		t.Fatalf("stats %+v: want 1 failed", st)
	}
}

func benchmarkStart(b *testing.B, percent float64, traceparent string) {
	tr, err := New(Config{OTLPURL: "http://127.0.0.1:1/v1/traces", SamplingPercent: percent, QueueSize: 1})
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest("GET", "http://reviews:9080/", nil)
	info := &httpproxy.Info{Start: time.Now(), Method: "GET", Authority: "reviews:9080", Path: "/", Status: 200,
		Cluster: "outbound|9080|v1|reviews.default.svc.cluster.local"}
	b.ReportAllocs()
	for b.Loop() {
		r.Header = http.Header{}
		if traceparent != "" {
			r.Header.Set(HeaderTraceparent, traceparent)
		}
		if sp := tr.Start(r); sp != nil {
			sp.End(info) // the queue is full: measures span building, not export
		}
	}
}

// BenchmarkStartUnsampled is the cost tracing adds to a request that is
// not sampled (propagation only).
func BenchmarkStartUnsampled(b *testing.B) { benchmarkStart(b, 0, "") }

// BenchmarkStartSampled adds building the span with its tags.
func BenchmarkStartSampled(b *testing.B) {
	benchmarkStart(b, 0, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
}
