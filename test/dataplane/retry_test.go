package dataplane

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// TestRetriesAvoidPreviousHost: with one of two endpoints failing every
// request and RANDOM balancing, one retry on 5xx almost always succeeds,
// because Istio's routes ask for another host on retry
// (envoy.retry_host_predicates.previous_hosts, up to 5 reselections):
// about 0.8% of requests fail, against 25% if the retry picked a host at
// random. The failing endpoint must still see about half the first tries,
// so the retries are what saves the requests.
func TestRetriesAvoidPreviousHost(t *testing.T) {
	m, svc, client, backends := upstreamMesh(t, "loadBalancer: {simple: RANDOM}\n", upstreamEndpoints(2)...)
	m.Apply("up-vs.yaml", VirtualServiceYAML("up", fmt.Sprintf(`hosts: [%[1]s]
http:
- route: [{destination: {host: %[1]s}}]
  retries: {attempts: 1, retryOn: 5xx}
`, svc.Host)))
	m.Sync()
	bad := backends[0]
	bad.SetFailing(true)
	const n = 100
	failed := 0
	for range n {
		if r := client.Get(t, svc.URL("/retry")); r.Status != http.StatusOK {
			failed++
		}
	}
	if failed >= 10 {
		t.Errorf("%d of %d requests failed; with previous-host avoidance about 1 should (25 without)", failed, n)
	}
	upstreamWithin(t, "first tries on the failing endpoint", bad.Requests(), n, 0.5)
	t.Logf("%d of %d failed; the failing endpoint got %d requests", failed, n, bad.Requests())
}

// TestRetryBudget: a DestinationRule retryBudget (percent 1, at least 1
// retry in flight) lets only one retry run at a time. Ten concurrent
// requests to an endpoint that answers 503 after 300 ms, each allowed 3
// retries: without the budget the endpoint would see 40 tries; with it,
// most retries are refused (upstream_rq_retry_overflow), the requests end
// with 503 and the endpoint sees far fewer tries.
func TestRetryBudget(t *testing.T) {
	m, svc, client, backends := upstreamMesh(t, "retryBudget: {percent: 1, minRetryConcurrency: 1}\n", upstreamEndpoints(1)...)
	m.Apply("up-vs.yaml", VirtualServiceYAML("up", fmt.Sprintf(`hosts: [%[1]s]
http:
- route: [{destination: {host: %[1]s}}]
  retries: {attempts: 3, retryOn: 5xx}
`, svc.Host)))
	m.Sync()
	b := backends[0]
	b.SetFailing(true)
	const n = 10
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = client.Get(t, svc.URL("/budget"), HeaderDelay, "300ms").Status
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusServiceUnavailable {
			t.Errorf("request %d: %d, want 503", i, c)
		}
	}
	cluster := "outbound|" + fmt.Sprint(svc.Port) + "||" + svc.Host
	overflow := extraStat(t, client, "cluster."+cluster+".upstream_rq_retry_overflow")
	if overflow < 5 {
		t.Errorf("upstream_rq_retry_overflow = %d, want most of the %d requests' retries refused", overflow, n)
	}
	if tries := b.Requests(); tries > 25 {
		t.Errorf("the endpoint saw %d tries; the budget should keep it far below %d", tries, n*4)
	}
	t.Logf("retry overflow %d, endpoint tries %d", overflow, b.Requests())
}
