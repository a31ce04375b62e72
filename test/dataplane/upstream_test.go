package dataplane

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// upstreamMesh starts a mesh with service "up" (HTTP) whose endpoints
// are extraBackends reached directly by the client sidecar (no server
// sidecar), one per entry of eps (Addr is filled in), and a
// DestinationRule with trafficPolicy (YAML under "trafficPolicy:", or
// none). The client has an access log.
func upstreamMesh(t *testing.T, trafficPolicy string, eps ...extraEndpoint) (*Mesh, *Service, *Proxy, []*extraBackend) {
	t.Helper()
	m := NewMesh(t)
	svc := m.AddService("up", "http", "HTTP")
	var backends []*extraBackend
	for i := range eps {
		b := extraStartBackend(t, eps[i].Name, m.NewAddress())
		eps[i].Addr = b.Addr
		backends = append(backends, b)
	}
	m.Apply("up.yaml", extraServiceYAML(svc, eps...))
	if trafficPolicy != "" {
		m.Apply("up-dr.yaml", SubsetsYAML(svc, trafficPolicy))
	}
	client := m.StartClientWithAccessLog("client")
	m.Sync()
	return m, svc, client, backends
}

// upstreamEndpoints returns n endpoints named up-1 .. up-n.
func upstreamEndpoints(n int) []extraEndpoint {
	eps := make([]extraEndpoint, n)
	for i := range eps {
		eps[i].Name = fmt.Sprintf("up-%d", i+1)
	}
	return eps
}

// upstreamSpread sends n sequential GETs with headers and counts the
// answering instances; any answer but a 200 echo fails the test.
func upstreamSpread(t *testing.T, client *Proxy, url string, n int, headerPairs ...string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for range n {
		counts[instanceOf(t, client, "GET", url, headerPairs...)]++
	}
	return counts
}

// upstreamWithin checks that count is within 5 standard deviations of a
// binomial(n, p) mean (a false failure about once in 3 million runs).
func upstreamWithin(t *testing.T, what string, count, n int, p float64) {
	t.Helper()
	mean, sd := float64(n)*p, math.Sqrt(float64(n)*p*(1-p))
	if math.Abs(float64(count)-mean) > 5*sd {
		t.Errorf("%s: %d of %d, want %.0f±%.0f", what, count, n, mean, 5*sd)
	}
}

// TestUpstreamEndpointWeights gives two WorkloadEntries weights 1 and 3:
// with the weighted balancers (round robin, least request) the second
// gets three quarters of the requests. (Envoy's RANDOM ignores weights.)
func TestUpstreamEndpointWeights(t *testing.T) {
	eps := upstreamEndpoints(2)
	eps[0].Weight, eps[1].Weight = 1, 3
	for _, lb := range []string{"ROUND_ROBIN", "LEAST_REQUEST"} {
		t.Run(lb, func(t *testing.T) {
			_, svc, client, _ := upstreamMesh(t, "loadBalancer: {simple: "+lb+"}\n", eps...)
			const n = 400
			counts := upstreamSpread(t, client, svc.URL("/w"), n)
			// Envoy's least request balancer, when host weights differ,
			// picks by weight/(active+1)^bias (an EDF schedule), so with
			// sequential requests the weights decide, as for round robin.
			upstreamWithin(t, "weight 3 of 4 ("+extraCounts(counts)+")", counts["up-2"], n, 0.75)
			if counts["up-1"]+counts["up-2"] != n {
				t.Errorf("answers from unknown instances: %s", extraCounts(counts))
			}
			t.Logf("%s weights 1:3 -> %s", lb, extraCounts(counts))
		})
	}
}

// TestUpstreamLoadBalancers spreads requests over three endpoints with
// ROUND_ROBIN (each within 1 of a third: strict rotation for one
// client), LEAST_REQUEST and RANDOM (each within a binomial bound).
func TestUpstreamLoadBalancers(t *testing.T) {
	for _, lb := range []string{"ROUND_ROBIN", "LEAST_REQUEST", "RANDOM"} {
		t.Run(lb, func(t *testing.T) {
			_, svc, client, _ := upstreamMesh(t, "loadBalancer: {simple: "+lb+"}\n", upstreamEndpoints(3)...)
			const n = 300
			counts := upstreamSpread(t, client, svc.URL("/lb"), n)
			t.Logf("%s -> %s", lb, extraCounts(counts))
			for i := 1; i <= 3; i++ {
				name := fmt.Sprintf("up-%d", i)
				if lb == "ROUND_ROBIN" {
					if d := counts[name] - n/3; d < -1 || d > 1 {
						t.Errorf("round robin: %s got %d of %d (%s), want %d±1", name, counts[name], n, extraCounts(counts), n/3)
					}
					continue
				}
				upstreamWithin(t, lb+" "+name+" ("+extraCounts(counts)+")", counts[name], n, 1.0/3)
			}
		})
	}
}

// TestUpstreamConsistentHash hashes on header x-user with a ring hash
// and with maglev: every request of one user goes to the same instance,
// and the users are spread over more than one instance.
func TestUpstreamConsistentHash(t *testing.T) {
	policies := map[string]string{
		"ringHash": "loadBalancer:\n  consistentHash:\n    httpHeaderName: x-user\n    ringHash: {minimumRingSize: 1024}\n",
		"maglev":   "loadBalancer:\n  consistentHash:\n    httpHeaderName: x-user\n    maglev: {tableSize: 65537}\n",
	}
	for _, name := range []string{"ringHash", "maglev"} {
		t.Run(name, func(t *testing.T) {
			_, svc, client, _ := upstreamMesh(t, policies[name], upstreamEndpoints(3)...)
			used := map[string]int{}
			for u := range 24 {
				user := fmt.Sprintf("user-%d", u)
				counts := upstreamSpread(t, client, svc.URL("/hash"), 5, "x-user", user)
				if len(counts) != 1 {
					t.Errorf("%s: requests of %s went to %s, want one instance", name, user, extraCounts(counts))
				}
				for inst := range counts {
					used[inst]++
				}
			}
			if len(used) < 2 {
				t.Errorf("%s: 24 users all hashed to %s", name, extraCounts(used))
			}
			t.Logf("%s: users per instance %s", name, extraCounts(used))
		})
	}
}

// TestUpstreamLocalityFailover gives the client locality r1/z1/s1 and the
// service one endpoint there and one in r2/z2/s2: with
// localityLbSetting and outlier detection all traffic stays local; once
// the local endpoint dies, it is ejected and all traffic fails over to
// the other locality.
func TestUpstreamLocalityFailover(t *testing.T) {
	m := NewMesh(t)
	svc := m.AddService("up", "http", "HTTP")
	local := extraStartBackend(t, "local", m.NewAddress())
	remote := extraStartBackend(t, "remote", m.NewAddress())
	m.Apply("up.yaml", extraServiceYAML(svc,
		extraEndpoint{Name: "local", Addr: local.Addr, Locality: "r1/z1/s1"},
		extraEndpoint{Name: "remote", Addr: remote.Addr, Locality: "r2/z2/s2"}))
	m.Apply("up-dr.yaml", SubsetsYAML(svc, `loadBalancer:
  simple: ROUND_ROBIN
  localityLbSetting: {enabled: true}
outlierDetection:
  consecutive5xxErrors: 1
  consecutiveGatewayErrors: 1
  interval: 1s
  baseEjectionTime: 30s
  maxEjectionPercent: 100
`))
	client := m.StartProxy(ProxyOptions{Name: "client", App: "client", Version: "v1", ServiceAccount: "client", AccessLog: true,
		Metadata: map[string]string{"LOCALITY": "r1/z1/s1"}})
	m.Sync()

	if counts := upstreamSpread(t, client, svc.URL("/before"), 20); counts["local"] != 20 {
		t.Fatalf("before failover: %s, want all 20 to the local endpoint", extraCounts(counts))
	}
	local.Stop()
	failed := 0
	eventually(t, "traffic to fail over to r2/z2/s2", func() error {
		for i := range 20 {
			r := client.Get(t, svc.URL("/after"))
			if r.Status != 200 || r.Echo == nil || r.Echo.Instance != "remote" {
				failed++
				return fmt.Errorf("request %d after the local endpoint died: %d %q", i, r.Status, r.Body)
			}
		}
		return nil
	})
	cluster := "outbound|" + fmt.Sprint(svc.Port) + "||" + svc.Host
	if got := extraStat(t, client, "cluster."+cluster+".outlier_detection.ejections_total"); got < 1 {
		t.Errorf("outlier_detection.ejections_total = %d, want ≥ 1 (the dead local endpoint)", got)
	}
	t.Logf("%d requests failed before the failover; the remote endpoint served %d", failed, remote.Requests())
}

// TestUpstreamCircuitBreaker allows one connection and one pending
// request: of ten concurrent slow requests some are answered 503 with
// flag UO at once, the others succeed, and the cluster's
// upstream_rq_pending_overflow counter counts the rejections.
func TestUpstreamCircuitBreaker(t *testing.T) {
	_, svc, client, backends := upstreamMesh(t, `connectionPool:
  tcp: {maxConnections: 1}
  http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 0}
`, upstreamEndpoints(1)...)
	const n = 10
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", svc.URL(fmt.Sprintf("/cb/%d", i)), nil)
			req.Header.Set(HeaderDelay, "500ms")
			resp, err := client.HTTPClient().Do(req)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			codes[i] = readResponse(t, resp).Status
		}()
	}
	wg.Wait()
	ok, overflow := 0, 0
	for _, c := range codes {
		switch c {
		case 200:
			ok++
		case 503:
			overflow++
		}
	}
	if ok == 0 || overflow == 0 || ok+overflow != n {
		t.Fatalf("status codes %v: want some 200 and some 503", codes)
	}
	if backends[0].MaxInFlight() > 1 {
		t.Errorf("backend served %d requests at once, want at most 1 (maxConnections 1, HTTP/1.1)", backends[0].MaxInFlight())
	}
	cluster := "outbound|" + fmt.Sprint(svc.Port) + "||" + svc.Host
	if got := extraStat(t, client, "cluster."+cluster+".upstream_rq_pending_overflow"); got != overflow {
		t.Errorf("upstream_rq_pending_overflow = %d, want %d (the 503s)", got, overflow)
	}
	uo := 0
	eventually(t, "access log entries of the 503s", func() error {
		uo = 0
		for _, e := range client.AccessLogEntries(t) {
			if strings.HasPrefix(e.RequestPath(), "/cb/") && e.Str("response_flags") == "UO" {
				if code, _ := e["response_code"].(float64); code != 503 {
					t.Errorf("UO entry with response_code %v", e["response_code"])
				}
				uo++
			}
		}
		if uo != overflow {
			return fmt.Errorf("%d access log entries with flag UO, want %d", uo, overflow)
		}
		return nil
	})
	t.Logf("%d ok, %d overflowed (UO)", ok, overflow)
}

// TestUpstreamOutlierDetection makes one of two endpoints answer 503 to
// everything: with consecutive5xxErrors 2 it is ejected, and afterwards
// every request succeeds on the good endpoint without reaching it.
func TestUpstreamOutlierDetection(t *testing.T) {
	_, svc, client, backends := upstreamMesh(t, `loadBalancer: {simple: ROUND_ROBIN}
outlierDetection:
  consecutive5xxErrors: 2
  interval: 1s
  baseEjectionTime: 30s
  maxEjectionPercent: 100
`, upstreamEndpoints(2)...)
	bad := backends[0]
	bad.SetFailing(true)
	// Istio's default retry policy retries 503s on another host, so the
	// client may never see the failures: the bad endpoint's request count
	// shows the ejection.
	eventually(t, "the failing endpoint to be ejected", func() error {
		before := bad.Requests()
		for i := range 20 {
			r := client.Get(t, svc.URL("/od"))
			if r.Status != 200 {
				return fmt.Errorf("request %d: %d", i, r.Status)
			}
		}
		if got := bad.Requests(); got != before {
			return fmt.Errorf("the failing endpoint still got %d of 20 requests", got-before)
		}
		return nil
	})
	cluster := "outbound|" + fmt.Sprint(svc.Port) + "||" + svc.Host
	if got := extraStat(t, client, "cluster."+cluster+".outlier_detection.ejections_total"); got < 1 {
		t.Errorf("outlier_detection.ejections_total = %d, want ≥ 1", got)
	}
	if c := client.AdminGet(t, "/clusters"); !strings.Contains(c, cluster+"::"+bad.Addr+"::health_flags::/failed_outlier_check") {
		t.Errorf("/clusters does not show %s ejected:\n%s", bad.Addr, c)
	}
}

// TestUpstreamConnectTimeout sends requests to an endpoint that never
// completes the TCP handshake: with connectTimeout 200ms the client gets
// 503 and the access log flag UF.
func TestUpstreamConnectTimeout(t *testing.T) {
	m := NewMesh(t)
	svc := m.AddService("dead", "http", "HTTP")
	dead := extraDeadEndpoint(t, m.NewAddress())
	m.Apply("dead.yaml", extraServiceYAML(svc, extraEndpoint{Name: "dead", Addr: dead}))
	m.Apply("dead-dr.yaml", SubsetsYAML(svc, "connectionPool:\n  tcp: {connectTimeout: 200ms}\n"))
	client := m.StartClientWithAccessLog("client")
	m.Sync()
	r := client.Get(t, svc.URL("/dead"))
	if r.Status != http.StatusServiceUnavailable {
		t.Fatalf("request to a dead endpoint: %d %q, want 503", r.Status, r.Body)
	}
	e := client.WaitAccessLog(t, "/dead")
	if flags := e.Str("response_flags"); !strings.Contains(flags, "UF") {
		t.Errorf("response_flags %q, want UF (upstream connection failure)", flags)
	}
	// The connection attempt hung until the connect timeout: it was not
	// refused (which would also be UF).
	if d, _ := e["duration"].(float64); d < 200 {
		t.Errorf("request took %v ms, want at least the 200 ms connect timeout", e["duration"])
	}
	t.Logf("body %q, flags %q, details %q", r.Body, e.Str("response_flags"), e.Str("response_code_details"))
}

// TestUpstreamNoHealthy routes to a service without endpoints: 503 "no
// healthy upstream" with flag UH.
func TestUpstreamNoHealthy(t *testing.T) {
	_, svc, client, _ := upstreamMesh(t, "")
	r := client.Get(t, svc.URL("/none"))
	if r.Status != http.StatusServiceUnavailable || r.Body != "no healthy upstream" {
		t.Errorf("request to a service without endpoints: %d %q, want 503 \"no healthy upstream\"", r.Status, r.Body)
	}
	if flags := client.WaitAccessLog(t, "/none").Str("response_flags"); flags != "UH" {
		t.Errorf("response_flags %q, want UH", flags)
	}
}

// TestUpstreamKeepAlive sends 30 sequential requests: the proxy reuses
// one HTTP/1.1 connection to the backend.
func TestUpstreamKeepAlive(t *testing.T) {
	_, svc, client, backends := upstreamMesh(t, "", upstreamEndpoints(1)...)
	hc := client.HTTPClient()
	for i := range 30 {
		resp, err := hc.Get(svc.URL(fmt.Sprintf("/ka/%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if r := readResponse(t, resp); r.Status != 200 || r.Echo == nil || r.Echo.Proto != "HTTP/1.1" {
			t.Fatalf("request %d: %d %q", i, r.Status, r.Body)
		}
	}
	b := backends[0]
	if b.Requests() != 30 || b.Conns() != 1 {
		t.Errorf("backend got %d requests on %d connections, want 30 on 1 (keep-alive)", b.Requests(), b.Conns())
	}
}

// TestUpstreamHTTP2Multiplexing declares the port HTTP2: twenty
// concurrent slow requests reach the backend as HTTP/2 streams on one
// connection, several at once.
func TestUpstreamHTTP2Multiplexing(t *testing.T) {
	m := NewMesh(t)
	svc := m.AddService("up", "http2", "HTTP2")
	b := extraStartBackend(t, "up-1", m.NewAddress())
	m.Apply("up.yaml", extraServiceYAML(svc, extraEndpoint{Name: "up-1", Addr: b.Addr}))
	client := m.StartClient("client")
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", svc.URL(fmt.Sprintf("/h2/%d", i)), nil)
			req.Header.Set(HeaderDelay, "300ms")
			resp, err := client.HTTPClient().Do(req)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			if r := readResponse(t, resp); r.Status != 200 {
				t.Errorf("request %d: %d %q", i, r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	if p := b.Protos(); p["HTTP/2.0"] != n {
		t.Errorf("backend saw protocols %v, want %d HTTP/2.0", p, n)
	}
	if b.Conns() != 1 || b.MaxInFlight() < 2 {
		t.Errorf("backend got %d connections with at most %d requests at once, want 1 connection multiplexing several", b.Conns(), b.MaxInFlight())
	}
	t.Logf("%d streams on %d connection(s), %d at once", n, b.Conns(), b.MaxInFlight())
}
