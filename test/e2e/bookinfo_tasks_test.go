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
		taskAllV1(t, d)
	})

	t.Run("jason to reviews v2", func(t *testing.T) {
		taskJasonV2(t, d)
	})

	t.Run("7s ratings delay for jason hits productpage's timeout", func(t *testing.T) {
		taskRatingsDelay(t, d)
	})

	t.Run("ratings abort for jason", func(t *testing.T) {
		// weft-proxy labels fault-injected responses destination "unknown"
		// (Envoy knows the route's cluster): match on reporter, code and flag.
		before := d.requestsTotal(reviewsV2Addr, `reporter="source"`, `response_code="500"`, `response_flags="FI"`)
		taskRatingsAbort(t, d)
		after := d.requestsTotal(reviewsV2Addr, `reporter="source"`, `response_code="500"`, `response_flags="FI"`)
		if after <= before {
			t.Errorf("reviews-v2 sidecar: istio_requests_total with 500 FI went %d -> %d, want an increase", before, after)
		}
	})

	t.Run("shift 50/50 v1/v3 then all to v3", func(t *testing.T) {
		taskShift(t, d)
	})

	t.Run("0.5s reviews timeout with 2s ratings delay", func(t *testing.T) {
		before := d.requestsTotal(productpageAddr, `reporter="source"`, `destination_service_name="reviews"`, `response_code="504"`, `response_flags="UT"`)
		taskRequestTimeout(t, d)
		after := d.requestsTotal(productpageAddr, `reporter="source"`, `destination_service_name="reviews"`, `response_code="504"`, `response_flags="UT"`)
		if after < before+2 { // productpage tries reviews twice
			t.Errorf("productpage sidecar: reviews 504 UT went %d -> %d, want +2", before, after)
		}
	})

	// The fortio client workload's outbound calls, through its sidecar's
	// forward proxy (HTTP_PROXY in local mode).
	client := proxyClient("http://" + egressAddr(50))

	t.Run("circuit breaker on httpbin", func(t *testing.T) {
		n503 := taskCircuitBreaker(t, d, client)
		uo := d.requestsTotal(meshAddr(50), `reporter="source"`, `destination_service_name="httpbin"`, `response_code="503"`, `response_flags="UO"`)
		if uo < n503 {
			t.Errorf("fortio sidecar: istio_requests_total 503 UO = %d, want >= %d", uo, n503)
		}
	})

	t.Run("mirror httpbin v1 to v2", func(t *testing.T) {
		taskMirror(t, d, client)
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

// proxyClient is a meshClient whose requests go through the HTTP forward
// proxy at proxyAddr, as an application with HTTP_PROXY set.
func proxyClient(proxyAddr string) meshClient {
	proxyURL, _ := url.Parse(proxyAddr)
	return func(t *testing.T, target string, n, c int, match string) clientResult {
		t.Helper()
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			Proxy: http.ProxyURL(proxyURL), MaxIdleConnsPerHost: c, MaxConnsPerHost: c,
		}}
		return sendRequests(client, target, n, c, match)
	}
}

// sendRequests sends n GETs of target over c workers and counts status
// codes and the bodies containing match.
func sendRequests(client *http.Client, target string, n, c int, match string) clientResult {
	var mu sync.Mutex
	r := clientResult{Codes: map[string]int{}}
	work := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		work <- struct{}{}
	}
	close(work)
	var wg sync.WaitGroup
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				code, matched := "error", false
				if resp, err := client.Get(target); err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					code, matched = strconv.Itoa(resp.StatusCode), match != "" && strings.Contains(string(body), match)
				}
				mu.Lock()
				r.Codes[code]++
				if matched {
					r.Matched++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return r
}
