package e2e

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Texts the bookinfo pages show (examples/bookinfo/app).
const (
	reviewsUnavailable = "Sorry, product reviews are currently unavailable for this book."
	ratingsUnavailable = "Ratings service is currently unavailable"
)

// TestBookinfoTasks runs `weft demo` on free ports and walks through
// Istio's bookinfo traffic tasks with `weft apply`, checking what the
// product page shows and what the proxies count, then stops the demo with
// SIGTERM and checks that no process or port is left behind.
func TestBookinfoTasks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole mesh (about 20 processes); skipped with -short")
	}
	bin := buildDemoBinaries(t)
	d := startDemo(t, bin)
	gatewayAddr, productpageAddr, reviewsV2Addr := meshAddr(2), meshAddr(10), meshAddr(31)

	t.Run("product page shows reviews of every version", func(t *testing.T) {
		p := d.productPage("")
		if p.status != http.StatusOK || !strings.Contains(p.body, "Book Reviews") || !strings.Contains(p.body, "Reviewer1") {
			t.Fatalf("status %d, body:\n%.2000s", p.status, p.body)
		}
		if !strings.Contains(p.body, "Book Details") || strings.Contains(p.body, "unavailable") {
			t.Fatalf("details or reviews missing:\n%.2000s", p.body)
		}
		// Three versions behind one service: missing one in 45 requests
		// happens with probability about 3*(2/3)^45 < 1e-7.
		counts := d.countStars("", 45)
		if counts["none"] == 0 || counts["black"] == 0 || counts["red"] == 0 {
			t.Fatalf("reviews versions seen: %v, want v1, v2 and v3", counts)
		}
		if n := d.requestsTotal(gatewayAddr, `destination_service_name="productpage"`, `response_code="200"`, `reporter="source"`); n < 46 {
			t.Errorf("gateway istio_requests_total to productpage, 200: %d, want >= 46", n)
		}
	})

	t.Run("all traffic to v1", func(t *testing.T) {
		d.apply("virtual-service-all-v1.yaml")
		if c := d.countStars("", 30); c["none"] != 30 {
			t.Fatalf("anonymous: %v, want only v1 (no stars)", c)
		}
		if c := d.countStars("jason", 10); c["none"] != 10 {
			t.Fatalf("jason: %v, want only v1 (no stars)", c)
		}
	})

	t.Run("jason to reviews v2", func(t *testing.T) {
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
	})

	t.Run("7s ratings delay for jason hits productpage's timeout", func(t *testing.T) {
		d.apply("virtual-service-ratings-test-delay.yaml")
		p := d.productPage("jason")
		if p.status != http.StatusOK || !strings.Contains(p.body, reviewsUnavailable) {
			t.Fatalf("jason: status %d, want %q in:\n%.2000s", p.status, reviewsUnavailable, p.body)
		}
		// productpage waits 3s for reviews and tries twice; the failure
		// bound only says the page did wait for the delay.
		if p.elapsed < 2*time.Second {
			t.Errorf("jason's page took %s; the 7s delay should have made productpage time out (3s, twice)", p.elapsed)
		}
		if p := d.productPage(""); p.stars() != "none" || strings.Contains(p.body, "unavailable") {
			t.Fatalf("anonymous page changed:\n%.2000s", p.body)
		}
	})

	t.Run("ratings abort for jason", func(t *testing.T) {
		// weft-proxy labels fault-injected responses destination "unknown"
		// (Envoy knows the route's cluster): match on reporter, code and flag.
		before := d.requestsTotal(reviewsV2Addr, `reporter="source"`, `response_code="500"`, `response_flags="FI"`)
		d.apply("virtual-service-ratings-test-abort.yaml")
		p := d.productPage("jason")
		if p.status != http.StatusOK || !strings.Contains(p.body, ratingsUnavailable) || strings.Contains(p.body, reviewsUnavailable) {
			t.Fatalf("jason: status %d, want %q (and reviews shown):\n%.2000s", p.status, ratingsUnavailable, p.body)
		}
		after := d.requestsTotal(reviewsV2Addr, `reporter="source"`, `response_code="500"`, `response_flags="FI"`)
		if after <= before {
			t.Errorf("reviews-v2 sidecar: istio_requests_total with 500 FI went %d -> %d, want an increase", before, after)
		}
	})

	t.Run("shift 50/50 v1/v3 then all to v3", func(t *testing.T) {
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
	})

	t.Run("0.5s reviews timeout with 2s ratings delay", func(t *testing.T) {
		d.apply("request-timeouts.yaml")
		before := d.requestsTotal(productpageAddr, `reporter="source"`, `destination_service_name="reviews"`, `response_code="504"`, `response_flags="UT"`)
		p := d.productPage("")
		if p.status != http.StatusOK || !strings.Contains(p.body, reviewsUnavailable) {
			t.Fatalf("status %d, want %q:\n%.2000s", p.status, reviewsUnavailable, p.body)
		}
		// Without the timeout the page would wait for ratings (2s, and
		// reviews would render); generous bound.
		if p.elapsed > 10*time.Second {
			t.Errorf("page took %s", p.elapsed)
		}
		after := d.requestsTotal(productpageAddr, `reporter="source"`, `destination_service_name="reviews"`, `response_code="504"`, `response_flags="UT"`)
		if after < before+2 { // productpage tries reviews twice
			t.Errorf("productpage sidecar: reviews 504 UT went %d -> %d, want +2", before, after)
		}
	})

	fortioEgress := "http://" + egressAddr(50)
	proxyURL, _ := url.Parse(fortioEgress)
	// The fortio client workload's outbound calls, through its sidecar.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy: http.ProxyURL(proxyURL), MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64,
	}}

	t.Run("circuit breaker on httpbin", func(t *testing.T) {
		d.apply("httpbin-circuit-breaker.yaml")
		// fortio load -c 8 -qps 0 -n 200, in Go: 8 concurrent clients.
		var mu sync.Mutex
		codes := map[int]int{}
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 25; i++ {
					code := 0
					resp, err := client.Get("http://httpbin:8000/get")
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						code = resp.StatusCode
					}
					mu.Lock()
					codes[code]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		t.Logf("status codes over 200 requests at concurrency 8: %v", codes)
		if codes[200] == 0 || codes[503] == 0 || codes[200]+codes[503] != 200 {
			t.Fatalf("status codes %v: want some 200 and some 503, nothing else", codes)
		}
		uo := d.requestsTotal(meshAddr(50), `reporter="source"`, `destination_service_name="httpbin"`, `response_code="503"`, `response_flags="UO"`)
		if uo < codes[503] {
			t.Errorf("fortio sidecar: istio_requests_total 503 UO = %d, want >= %d", uo, codes[503])
		}
	})

	t.Run("mirror httpbin v1 to v2", func(t *testing.T) {
		d.apply("httpbin-mirror.yaml")
		v1Before := d.logLines("httpbin-v1", `"path":"/hostname"`)
		v2Before := d.logLines("httpbin-v2", `"path":"/hostname"`)
		const n = 10
		for i := 0; i < n; i++ {
			resp, err := client.Get("http://httpbin:8000/hostname")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			// The mirror's answers are discarded: every answer is v1's.
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "httpbin-v1") {
				t.Fatalf("request %d: %d %q, want v1's hostname", i, resp.StatusCode, body)
			}
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
	})

	t.Run("get, invalid apply, delete", func(t *testing.T) {
		code, out := d.weft("get", "vs")
		for _, want := range []string{"bookinfo", "file", "reviews", "api", "httpbin"} {
			if code != 0 || !strings.Contains(out, want) {
				t.Fatalf("weft get vs: exit %d, want %q in:\n%s", code, want, out)
			}
		}
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		os.WriteFile(bad, []byte("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n    timeout: 3x\n"), 0o644)
		code, out = d.weft("apply", "-f", bad)
		if code != 1 || !strings.Contains(out, bad+":10: error: VirtualService default/reviews: spec.http[0].timeout") {
			t.Fatalf("invalid apply: exit %d:\n%s", code, out)
		}
		code, out = d.weft("delete", "-f", "../../examples/bookinfo/tasks/")
		if code != 0 || !strings.Contains(out, "VirtualService default/reviews deleted") {
			t.Fatalf("weft delete: exit %d:\n%s", code, out)
		}
		d.waitSynced()
		code, out = d.weft("get", "vs", "-o", "json")
		if code != 0 || strings.Contains(out, `"api"`) || !strings.Contains(out, `"bookinfo"`) {
			t.Fatalf("after delete, weft get vs -o json: exit %d:\n%s", code, out)
		}
		if c := d.countStars("", 45); c["none"] == 0 || c["black"] == 0 || c["red"] == 0 {
			t.Fatalf("after delete: %v, want every version again", c)
		}
	})

	t.Run("SIGTERM stops every process and frees every port", func(t *testing.T) {
		if pids := childPIDs(bin); len(pids) < 19 {
			t.Fatalf("found %d child processes before stopping, want 19 (weftd, 10 proxies, 8 apps)", len(pids))
		}
		if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-d.exited:
		case <-time.After(30 * time.Second):
			t.Fatal("weft demo still running 30s after SIGTERM")
		}
		if d.exitErr != nil {
			t.Errorf("weft demo exit: %v\n%s", d.exitErr, d.out.String())
		}
		if !strings.Contains(d.out.String(), "stopped; logs are in "+filepath.Join(d.stateDir, "logs")) {
			t.Errorf("no stop message in:\n%s", d.out.String())
		}
		if pids := childPIDs(bin); len(pids) > 0 {
			t.Errorf("processes left behind: %v", pids)
		}
		addrs := []string{d.gateway, d.weftd}
		for _, name := range []string{"xds-port", "secure-xds-port"} {
			addrs = append(addrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(d.ports[name])))
		}
		for _, a := range []string{meshAddr(2), meshAddr(10), meshAddr(31), meshAddr(50), meshAddr(61)} {
			for _, name := range []string{"proxy-admin-port", "proxy-ready-port", "proxy-stats-port"} {
				addrs = append(addrs, net.JoinHostPort(a, strconv.Itoa(d.ports[name])))
			}
		}
		addrs = append(addrs, meshAddr(10)+":9080", meshAddr(10)+":19080", egressAddr(10), meshAddr(61)+":8000", meshAddr(61)+":18000")
		for _, a := range addrs {
			l, err := net.Listen("tcp", a)
			if err != nil {
				t.Errorf("%s still in use after the demo stopped: %v", a, err)
				continue
			}
			l.Close()
		}
	})
}
