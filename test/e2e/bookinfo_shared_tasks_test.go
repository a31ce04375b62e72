package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// The bookinfo traffic tasks both modes run (unprivileged and transparent).
// Each applies Istio's task YAML through `weft apply` and checks what the
// product page or a client sees; mode-specific checks (the proxies'
// metrics) follow in the caller.

func taskAllV1(t *testing.T, d *runningDemo) {
	d.apply("virtual-service-all-v1.yaml")
	if c := d.countStars("", 30); c["none"] != 30 {
		t.Fatalf("anonymous: %v, want only v1 (no stars)", c)
	}
	if c := d.countStars("jason", 10); c["none"] != 10 {
		t.Fatalf("jason: %v, want only v1 (no stars)", c)
	}
}

func taskJasonV2(t *testing.T, d *runningDemo) {
	d.apply("virtual-service-reviews-test-v2.yaml")
	if c := d.countStars("jason", 20); c["black"] != 20 {
		t.Fatalf("jason: %v, want only v2 (black stars)", c)
	}
	if c := d.countStars("", 20); c["none"] != 20 {
		t.Fatalf("anonymous: %v, want only v1", c)
	}
	if c := d.countStars("mary", 10); c["none"] != 10 {
		t.Fatalf("mary: %v, want only v1", c)
	}
}

func taskRatingsDelay(t *testing.T, d *runningDemo) {
	d.apply("virtual-service-ratings-test-delay.yaml")
	p := d.productPage("jason")
	if p.status != http.StatusOK || !strings.Contains(p.body, reviewsUnavailable) {
		t.Fatalf("jason: status %d, want %q in:\n%.2000s", p.status, reviewsUnavailable, p.body)
	}
	// productpage waits 3s for reviews and tries twice; the failure bound
	// only says the page did wait for the delay.
	if p.elapsed < 2*time.Second {
		t.Errorf("jason's page took %s; the 7s delay should have made productpage time out (3s, twice)", p.elapsed)
	}
	if p := d.productPage(""); p.stars() != "none" || strings.Contains(p.body, "unavailable") {
		t.Fatalf("anonymous page changed:\n%.2000s", p.body)
	}
}

func taskRatingsAbort(t *testing.T, d *runningDemo) {
	d.apply("virtual-service-ratings-test-abort.yaml")
	p := d.productPage("jason")
	if p.status != http.StatusOK || !strings.Contains(p.body, ratingsUnavailable) || strings.Contains(p.body, reviewsUnavailable) {
		t.Fatalf("jason: status %d, want %q (and reviews shown):\n%.2000s", p.status, ratingsUnavailable, p.body)
	}
}

func taskShift(t *testing.T, d *runningDemo) {
	d.apply("virtual-service-reviews-50-v3.yaml")
	const n = 200
	c := d.countStars("", n)
	// Binomial(200, 0.5): mean 100, sd 7.07; |v3-100| > 35 (4.95 sd)
	// happens with probability below 1e-6 when the split is right.
	if c["none"]+c["red"] != n || c["red"] < 65 || c["red"] > 135 {
		t.Fatalf("%d requests: %v, want only v1 and v3, v3 in [65, 135]", n, c)
	}
	t.Logf("50/50 split over %d requests: v1 %d, v3 %d", n, c["none"], c["red"])
	d.apply("virtual-service-reviews-v3.yaml")
	if c := d.countStars("", 30); c["red"] != 30 {
		t.Fatalf("after virtual-service-reviews-v3.yaml: %v, want only v3 (red stars)", c)
	}
}

func taskRequestTimeout(t *testing.T, d *runningDemo) {
	d.apply("request-timeouts.yaml")
	p := d.productPage("")
	if p.status != http.StatusOK || !strings.Contains(p.body, reviewsUnavailable) {
		t.Fatalf("status %d, want %q:\n%.2000s", p.status, reviewsUnavailable, p.body)
	}
	// Without the timeout the page would wait for ratings (2s, and
	// reviews would render); generous bound.
	if p.elapsed > 10*time.Second {
		t.Errorf("page took %s", p.elapsed)
	}
}

// meshClient sends n GETs of url over c connections from the fortio
// workload, through its sidecar, and reports the status codes and how many
// bodies contained match.
type meshClient func(t *testing.T, url string, n, c int, match string) clientResult

// taskCircuitBreaker is `fortio load -c 8 -qps 0 -n 200` against httpbin
// with maxConnections 1 and http1MaxPendingRequests 1: some requests pass,
// the others get 503, nothing else. It returns the number of 503s.
func taskCircuitBreaker(t *testing.T, d *runningDemo, client meshClient) int {
	d.apply("httpbin-circuit-breaker.yaml")
	r := client(t, "http://httpbin:8000/get", 200, 8, "")
	t.Logf("status codes over 200 requests at concurrency 8: %v", r.Codes)
	if r.Codes["200"] == 0 || r.Codes["503"] == 0 || r.Codes["200"]+r.Codes["503"] != 200 {
		t.Fatalf("status codes %v: want some 200 and some 503, nothing else", r.Codes)
	}
	return r.Codes["503"]
}

// taskMirror mirrors httpbin v1 to v2: every answer is v1's (the mirror's
// are discarded) and v2 logs the copies, with the -shadow host.
func taskMirror(t *testing.T, d *runningDemo, client meshClient) {
	d.apply("httpbin-mirror.yaml")
	v1Before := d.logLines("httpbin-v1", `"path":"/hostname"`)
	v2Before := d.logLines("httpbin-v2", `"path":"/hostname"`)
	const n = 10
	r := client(t, "http://httpbin:8000/hostname", n, 1, "httpbin-v1")
	if r.Codes["200"] != n || r.Matched != n {
		t.Fatalf("answers %v, %d of %d from httpbin-v1: the mirror's answers must be discarded", r.Codes, r.Matched, n)
	}
	waitFor(t, 10*time.Second, "the mirrored requests in httpbin-v2's log", func() bool {
		return d.logLines("httpbin-v2", `"path":"/hostname"`)-v2Before >= n
	})
	if got := d.logLines("httpbin-v1", `"path":"/hostname"`) - v1Before; got != n {
		t.Errorf("httpbin-v1 logged %d requests, want %d", got, n)
	}
	if got := d.logLines("httpbin-v2", `"path":"/hostname"`, `httpbin-shadow`); got < n {
		t.Errorf("httpbin-v2 logged %d requests with the -shadow host, want >= %d", got, n)
	}
}
