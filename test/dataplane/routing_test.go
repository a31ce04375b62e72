package dataplane

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"
)

// echoMesh starts a mesh with service "echo" (HTTP) of workloads v1 and
// v2 with their DestinationRule subsets, and a client sidecar with an
// access log; vs, if not empty, is applied as a VirtualService spec for
// the echo host (indented YAML under "spec:", %[1]s is the host).
func echoMesh(t *testing.T, vs string) (*Mesh, *Service, *Proxy) {
	t.Helper()
	m := NewMesh(t)
	echo := m.AddService("echo", "http", "HTTP")
	m.AddWorkload(echo, "v1", BackendHTTP)
	m.AddWorkload(echo, "v2", BackendHTTP)
	client := m.StartClientWithAccessLog("client")
	m.Apply("echo-dr.yaml", SubsetsYAML(echo, "", "v1", "v2"))
	if vs != "" {
		m.Apply("echo-vs.yaml", VirtualServiceYAML("echo", fmt.Sprintf(vs, echo.Host)))
	}
	m.Sync()
	return m, echo, client
}

// VirtualServiceYAML wraps spec (YAML at column 0) into a VirtualService
// named name in the default namespace.
func VirtualServiceYAML(name, spec string) string {
	return fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n%s", name, Namespace, indent(spec, "  "))
}

// instanceOf sends GET url with headers and returns the answering
// instance, failing unless the answer is a 200 echo.
func instanceOf(t *testing.T, client *Proxy, method, url string, headerPairs ...string) string {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headerPairs); i += 2 {
		req.Header.Add(headerPairs[i], headerPairs[i+1])
	}
	r := client.Do(t, req)
	if r.Status != 200 || r.Echo == nil {
		t.Fatalf("%s %s %v: %d %q", method, url, headerPairs, r.Status, r.Body)
	}
	return r.Echo.Instance
}

// TestRouteMatches routes by header (exact, prefix, regex), URI (exact,
// prefix, regex), method and query parameter to v2, everything else to
// the default route v1; the first matching rule wins.
func TestRouteMatches(t *testing.T) {
	_, echo, client := echoMesh(t, `hosts: [%[1]s]
http:
- name: header
  match:
  - headers: {x-user: {exact: jason}}
  - headers: {x-team: {prefix: blue-}}
  - headers: {x-id: {regex: "[0-9]{3}"}}
  route: [{destination: {host: %[1]s, subset: v2}}]
- name: uri
  match:
  - uri: {exact: /exact}
  - uri: {prefix: /v2/}
  - uri: {regex: "/items/[0-9]+"}
  route: [{destination: {host: %[1]s, subset: v2}}]
- name: method
  match: [{method: {exact: DELETE}}]
  route: [{destination: {host: %[1]s, subset: v2}}]
- name: query
  match: [{queryParams: {canary: {exact: "yes"}}}]
  route: [{destination: {host: %[1]s, subset: v2}}]
- name: default
  route: [{destination: {host: %[1]s, subset: v1}}]
`)
	cases := []struct {
		name, method, path string
		headers            []string
		want               string
	}{
		{"no match", "GET", "/", nil, "echo-v1"},
		{"header exact", "GET", "/", []string{"x-user", "jason"}, "echo-v2"},
		{"header exact, other value", "GET", "/", []string{"x-user", "bob"}, "echo-v1"},
		{"header prefix", "GET", "/", []string{"x-team", "blue-7"}, "echo-v2"},
		{"header regex is a full match", "GET", "/", []string{"x-id", "1234"}, "echo-v1"},
		{"header regex", "GET", "/", []string{"x-id", "123"}, "echo-v2"},
		{"uri exact", "GET", "/exact", nil, "echo-v2"},
		{"uri exact, longer", "GET", "/exact/more", nil, "echo-v1"},
		{"uri prefix", "GET", "/v2/anything", nil, "echo-v2"},
		{"uri regex", "GET", "/items/42", nil, "echo-v2"},
		{"uri regex, no match", "GET", "/items/x", nil, "echo-v1"},
		{"method", "DELETE", "/", nil, "echo-v2"},
		{"other method", "PUT", "/", nil, "echo-v1"},
		{"query parameter", "GET", "/?canary=yes", nil, "echo-v2"},
		{"query parameter, other value", "GET", "/?canary=no", nil, "echo-v1"},
	}
	for _, c := range cases {
		for range 3 { // the default route would pick either instance by chance
			if got := instanceOf(t, client, c.method, echo.URL(c.path), c.headers...); got != c.want {
				t.Errorf("%s: %s %s %v answered by %s, want %s", c.name, c.method, c.path, c.headers, got, c.want)
				break
			}
		}
	}
}

// TestWeightedSplit sends 400 requests to a 75/25 split between v1 and v2
// and checks the v2 count against a binomial bound (5 standard
// deviations: a false failure about once in 3 million runs).
func TestWeightedSplit(t *testing.T) {
	_, echo, client := echoMesh(t, `hosts: [%[1]s]
http:
- route:
  - destination: {host: %[1]s, subset: v1}
    weight: 75
  - destination: {host: %[1]s, subset: v2}
    weight: 25
`)
	const n, p = 400, 0.25
	counts := map[string]int{}
	for range n {
		counts[instanceOf(t, client, "GET", echo.URL("/split"))]++
	}
	mean, sd := n*p, math.Sqrt(n*p*(1-p))
	if got := float64(counts["echo-v2"]); math.Abs(got-mean) > 5*sd || counts["echo-v1"]+counts["echo-v2"] != n {
		t.Errorf("split %v over %d requests, want echo-v2 within %.0f±%.0f", counts, n, mean, 5*sd)
	}
	t.Logf("75/25 split: %v", counts)
}

// TestRedirect answers with Istio's HTTPRedirect (uri, authority, code)
// without calling the backend.
func TestRedirect(t *testing.T) {
	_, echo, client := echoMesh(t, `hosts: [%[1]s]
http:
- match: [{uri: {prefix: /old}}]
  redirect: {uri: /new, authority: other.example.com, redirectCode: 308}
- match: [{uri: {exact: /moved}}]
  redirect: {uri: /here}
- route: [{destination: {host: %[1]s}}]
`)
	r := client.Get(t, echo.URL("/moved"))
	if want := "http://" + echo.HostPort() + "/here"; r.Status != http.StatusMovedPermanently || r.Header.Get("Location") != want {
		t.Errorf("redirect with defaults: %d Location %q, want 301 %s", r.Status, r.Header.Get("Location"), want)
	}
	r = client.Get(t, echo.URL("/old/page?q=1"))
	if r.Status != http.StatusPermanentRedirect || !strings.HasPrefix(r.Header.Get("Location"), "http://other.example.com") || !strings.HasSuffix(r.Header.Get("Location"), "/new?q=1") {
		t.Errorf("redirect: %d Location %q, want 308 http://other.example.com/new?q=1", r.Status, r.Header.Get("Location"))
	}
	for _, w := range echo.Workloads {
		for _, e := range w.Backend.Requests() {
			t.Errorf("a redirected request reached %s: %s", w.Name, e.URI)
		}
	}
	t.Run("authority without port drops the request port", func(t *testing.T) {
		// Envoy's RouteEntryImplBase::newUri: with host_redirect and no
		// port_redirect, the Location has no port.
		if loc := r.Header.Get("Location"); loc != "http://other.example.com/new?q=1" {
			t.Errorf("Location %q, want http://other.example.com/new?q=1", loc)
		}
	})
}

// TestDirectResponse answers from the proxy with Istio's
// HTTPDirectResponse.
func TestDirectResponse(t *testing.T) {
	_, echo, client := echoMesh(t, `hosts: [%[1]s]
http:
- match: [{uri: {exact: /teapot}}]
  directResponse:
    status: 418
    body: {string: "short and stout"}
- route: [{destination: {host: %[1]s}}]
`)
	r := client.Get(t, echo.URL("/teapot"))
	if r.Status != 418 || r.Body != "short and stout" {
		t.Errorf("direct response: %d %q, want 418 \"short and stout\"", r.Status, r.Body)
	}
	if r := client.Get(t, echo.URL("/other")); r.Status != 200 || r.Echo == nil {
		t.Errorf("other path: %d %q", r.Status, r.Body)
	}
}

// TestRewrite rewrites the path prefix and the authority, a whole path,
// and a path by regular expression (uriRegexRewrite) before routing to the
// backend.
func TestRewrite(t *testing.T) {
	_, echo, client := echoMesh(t, `hosts: [%[1]s]
http:
- match: [{uri: {prefix: /api/}}]
  rewrite: {uri: /v1/, authority: internal.example.com}
  route: [{destination: {host: %[1]s}}]
- match: [{uri: {exact: /whole}}]
  rewrite: {uri: /replaced}
  route: [{destination: {host: %[1]s}}]
- match: [{uri: {prefix: /users/}}]
  rewrite:
    uriRegexRewrite: {match: "^/users/([0-9]+)/profile$", rewrite: '/profiles/\1'}
  route: [{destination: {host: %[1]s}}]
- route: [{destination: {host: %[1]s}}]
`)
	r := client.Get(t, echo.URL("/api/items?id=3"))
	if r.Echo == nil || r.Echo.URI != "/v1/items?id=3" || r.Echo.Host != "internal.example.com" {
		t.Errorf("rewrite: backend saw %q host %q (%d %q), want /v1/items?id=3 host internal.example.com", echoURI(r), echoHost(r), r.Status, r.Body)
	}
	r = client.Get(t, echo.URL("/whole"))
	if r.Echo == nil || r.Echo.URI != "/replaced" || r.Echo.Host != echo.HostPort() {
		t.Errorf("rewrite exact: backend saw %q host %q, want /replaced host %s", echoURI(r), echoHost(r), echo.HostPort())
	}
	r = client.Get(t, echo.URL("/users/42/profile?full=1"))
	if r.Echo == nil || r.Echo.URI != "/profiles/42?full=1" {
		t.Errorf("uriRegexRewrite: backend saw %q (%d %q), want /profiles/42?full=1 (the query is kept)", echoURI(r), r.Status, r.Body)
	}
}

func echoURI(r *Response) string {
	if r.Echo == nil {
		return ""
	}
	return r.Echo.URI
}

func echoHost(r *Response) string {
	if r.Echo == nil {
		return ""
	}
	return r.Echo.Host
}

// TestHeaderManipulation sets, adds and removes request and response
// headers at the route and the destination level.
func TestHeaderManipulation(t *testing.T) {
	_, echo, client := echoMesh(t, `hosts: [%[1]s]
http:
- headers:
    request:
      set: {x-set: route}
      add: {x-add: route}
      remove: [x-remove]
    response:
      set: {x-resp-set: route}
      add: {x-resp-add: route}
      remove: [x-instance]
  route:
  - destination: {host: %[1]s, subset: v1}
    headers:
      request:
        set: {x-dest: v1}
      response:
        add: {x-dest-resp: v1}
`)
	r := client.Get(t, echo.URL("/headers"),
		"x-set", "client", "x-add", "client", "x-remove", "gone",
		HeaderRespond, "x-resp-add: backend", HeaderRespond, "x-resp-set: backend")
	if r.Status != 200 || r.Echo == nil {
		t.Fatalf("GET /headers: %d %q", r.Status, r.Body)
	}
	h := r.Echo.Header
	if got := h.Values("X-Set"); len(got) != 1 || got[0] != "route" {
		t.Errorf("request x-set = %q, want [route] (set replaces)", got)
	}
	if got := h.Values("X-Add"); strings.Join(got, ",") != "client,route" {
		t.Errorf("request x-add = %q, want [client route] (add appends)", got)
	}
	if got := h.Values("X-Remove"); len(got) != 0 {
		t.Errorf("request x-remove = %q, want removed", got)
	}
	if got := h.Get("X-Dest"); got != "v1" {
		t.Errorf("request x-dest = %q, want v1 (destination headers)", got)
	}
	if got := r.Header.Values("X-Resp-Set"); len(got) != 1 || got[0] != "route" {
		t.Errorf("response x-resp-set = %q, want [route]", got)
	}
	if got := r.Header.Values("X-Resp-Add"); strings.Join(got, ",") != "backend,route" {
		t.Errorf("response x-resp-add = %q, want [backend route]", got)
	}
	if got := r.Header.Values("X-Instance"); len(got) != 0 {
		t.Errorf("response x-instance = %q, want removed", got)
	}
	if got := r.Header.Get("X-Dest-Resp"); got != "v1" {
		t.Errorf("response x-dest-resp = %q, want v1", got)
	}
}

// TestTimeout gives a route a 1s timeout: a slower backend answer
// becomes Envoy's 504 "upstream request timeout" with response flag UT,
// a faster one passes.
func TestTimeout(t *testing.T) {
	_, echo, client := echoMesh(t, `hosts: [%[1]s]
http:
- timeout: 1s
  route: [{destination: {host: %[1]s}}]
`)
	start := time.Now()
	r := client.Get(t, echo.URL("/slow"), HeaderDelay, "5s")
	took := time.Since(start)
	if r.Status != http.StatusGatewayTimeout || r.Body != "upstream request timeout" {
		t.Errorf("slow backend: %d %q, want 504 \"upstream request timeout\"", r.Status, r.Body)
	}
	if took < time.Second || took >= 5*time.Second {
		t.Errorf("the 1s timeout answered after %s (backend delay 5s)", took)
	}
	if e := client.WaitAccessLog(t, "/slow"); e.Str("response_flags") != "UT" {
		t.Errorf("access log response_flags %q, want UT", e.Str("response_flags"))
	}
	if r := client.Get(t, echo.URL("/fast")); r.Status != 200 {
		t.Errorf("fast backend: %d %q", r.Status, r.Body)
	}
}

// TestRetries retries 5xx answers up to 3 times: a backend failing twice
// succeeds on the third try, one failing always is tried 4 times and its
// 503 returned (flag URX), and a try slower than perTryTimeout is retried.
func TestRetries(t *testing.T) {
	m := NewMesh(t)
	echo := m.AddService("echo", "http", "HTTP")
	w := m.AddWorkload(echo, "v1", BackendHTTP) // one instance: every try hits it
	client := m.StartClientWithAccessLog("client")
	m.Apply("echo-vs.yaml", VirtualServiceYAML("echo", fmt.Sprintf(`hosts: [%[1]s]
http:
- route: [{destination: {host: %[1]s}}]
  retries: {attempts: 3, retryOn: 5xx, perTryTimeout: 1s}
`, echo.Host)))
	m.Sync()
	tries := func(key string) int {
		n := 0
		for _, e := range w.Backend.Requests() {
			if e.Header.Get(HeaderKey) == key {
				n++
			}
		}
		return n
	}

	r := client.Get(t, echo.URL("/flaky"), HeaderFail, "2", HeaderKey, "flaky")
	if r.Status != 200 || tries("flaky") != 3 {
		t.Errorf("failing twice: %d after %d tries, want 200 after 3", r.Status, tries("flaky"))
	}

	r = client.Get(t, echo.URL("/broken"), HeaderFail, "100", HeaderKey, "broken")
	if r.Status != 503 || tries("broken") != 4 {
		t.Errorf("failing always: %d after %d tries, want 503 after 4 (1 + 3 retries)", r.Status, tries("broken"))
	}
	broken := client.WaitAccessLog(t, "/broken")

	start := time.Now()
	r = client.Get(t, echo.URL("/slow-once"), HeaderDelay, "5s", HeaderSlow, "1", HeaderKey, "slow")
	if r.Status != 200 || tries("slow") != 2 {
		t.Errorf("first try slower than perTryTimeout: %d after %d tries, want 200 after 2", r.Status, tries("slow"))
	}
	if took := time.Since(start); took >= 5*time.Second {
		t.Errorf("the per-try timeout did not cut the first try short (took %s)", took)
	}

	t.Run("URX when retries end on a retriable response", func(t *testing.T) {
		// Envoy's router sets UpstreamRetryLimitExceeded when a retriable
		// upstream response arrives with no retries left (router.cc,
		// RetryStatus::NoRetryLimitExceeded), and passes the response on.
		if flags := broken.Str("response_flags"); flags != "URX" {
			t.Errorf("access log response_flags %q, want URX", flags)
		}
		// The client's istio_requests_total has the flag as its
		// response_flags label too.
		eventually(t, "istio_requests_total{response_code=503,response_flags=URX}", func() error {
			samples := extraParseMetrics(t, client.Metrics(t))
			if n := extraSum(extraFind(samples, "istio_requests_total", map[string]string{"reporter": "source", "response_code": "503", "response_flags": "URX"})); n != 1 {
				return fmt.Errorf("%v requests with response_flags URX, want 1; series:\n%s", n, telemetrySeries(samples, "istio_requests_total"))
			}
			return nil
		})
	})
}

// TestFaultInjection aborts half of the requests of one route with 503
// (binomial bound; aborted requests never reach the backend; flag FI),
// delays every request of another by 400ms (flag DI), and 30% of a third
// (binomial bound on the DI flags).
func TestFaultInjection(t *testing.T) {
	_, echo, client := echoMesh(t, `hosts: [%[1]s]
http:
- match: [{uri: {prefix: /abort}}]
  fault:
    abort: {httpStatus: 503, percentage: {value: 50}}
  route: [{destination: {host: %[1]s, subset: v1}}]
- match: [{uri: {prefix: /delay}}]
  fault:
    delay: {fixedDelay: 400ms, percentage: {value: 100}}
  route: [{destination: {host: %[1]s, subset: v1}}]
- match: [{uri: {prefix: /some-delay/}}]
  fault:
    delay: {fixedDelay: 10ms, percentage: {value: 30}}
  route: [{destination: {host: %[1]s, subset: v1}}]
- route: [{destination: {host: %[1]s, subset: v1}}]
`)
	const n = 200
	aborted := 0
	for i := range n {
		r := client.Get(t, echo.URL(fmt.Sprintf("/abort/%d", i)))
		switch {
		case r.Status == 503 && r.Echo == nil:
			aborted++
		case r.Status == 200 && r.Echo != nil:
		default:
			t.Fatalf("GET /abort/%d: %d %q", i, r.Status, r.Body)
		}
	}
	if sd := math.Sqrt(n * 0.25); math.Abs(float64(aborted)-n/2) > 5*sd {
		t.Errorf("aborted %d of %d at 50%%, want within %d±%.0f", aborted, n, n/2, 5*sd)
	}
	if reached := len(echo.Workloads[0].Backend.Requests()); reached != n-aborted {
		t.Errorf("the backend saw %d requests, want the %d not aborted", reached, n-aborted)
	}
	var fi int
	eventually(t, "access log entries for the aborted requests", func() error {
		fi = 0
		for _, e := range client.AccessLogEntries(t) {
			if strings.HasPrefix(e.RequestPath(), "/abort/") && e.Str("response_flags") == "FI" {
				fi++
			}
		}
		if fi != aborted {
			return fmt.Errorf("%d entries with flag FI, want %d", fi, aborted)
		}
		return nil
	})

	start := time.Now()
	r := client.Get(t, echo.URL("/delay"))
	if took := time.Since(start); r.Status != 200 || took < 400*time.Millisecond {
		t.Errorf("delay fault: %d after %s, want 200 after at least 400ms", r.Status, took)
	}
	if e := client.WaitAccessLog(t, "/delay"); e.Str("response_flags") != "DI" {
		t.Errorf("delay fault: access log response_flags %q, want DI", e.Str("response_flags"))
	}

	// 30% of requests delayed: counted by their DI flag.
	const m, p = 100, 0.3
	for i := range m {
		if r := client.Get(t, echo.URL(fmt.Sprintf("/some-delay/%d", i))); r.Status != 200 {
			t.Fatalf("GET /some-delay/%d: %d %q", i, r.Status, r.Body)
		}
	}
	var di, logged int
	eventually(t, "access log entries for /some-delay/", func() error {
		di, logged = 0, 0
		for _, e := range client.AccessLogEntries(t) {
			if strings.HasPrefix(e.RequestPath(), "/some-delay/") {
				logged++
				if e.Str("response_flags") == "DI" {
					di++
				}
			}
		}
		if logged != m {
			return fmt.Errorf("%d of %d logged", logged, m)
		}
		return nil
	})
	if sd := math.Sqrt(m * p * (1 - p)); math.Abs(float64(di)-m*p) > 5*sd {
		t.Errorf("delayed %d of %d at 30%%, want within %.0f±%.0f", di, m, m*p, 5*sd)
	}
}

// TestMirroring routes to v1 and mirrors to v2: the client gets v1's
// answers only, even when the shadow is slow or fails (fire and forget),
// v2 receives the copies with the authority suffixed "-shadow", and
// mirrorPercentage 50 mirrors about half (binomial bound).
func TestMirroring(t *testing.T) {
	_, echo, client := echoMesh(t, `hosts: [%[1]s]
http:
- match: [{uri: {prefix: /half/}}]
  route: [{destination: {host: %[1]s, subset: v1}}]
  mirror: {host: %[1]s, subset: v2}
  mirrorPercentage: {value: 50}
- route: [{destination: {host: %[1]s, subset: v1}}]
  mirror: {host: %[1]s, subset: v2}
  mirrorPercentage: {value: 100}
`)
	shadow := echo.Workloads[1].Backend
	for i := range 5 {
		start := time.Now()
		r := client.Get(t, echo.URL(fmt.Sprintf("/mirror/%d", i)), HeaderShadowDelay, "3s", HeaderShadowStatus, "500")
		if r.Status != 200 || r.Echo == nil || r.Echo.Instance != "echo-v1" {
			t.Fatalf("request %d: %d %q, want echo-v1's 200", i, r.Status, r.Body)
		}
		if took := time.Since(start); took >= 3*time.Second {
			t.Errorf("request %d waited for the 3s shadow (took %s)", i, took)
		}
	}
	eventually(t, "5 mirrored requests at v2", func() error {
		var got []Echo
		for _, e := range shadow.Requests() {
			if strings.HasPrefix(e.URI, "/mirror/") {
				got = append(got, e)
			}
		}
		if len(got) != 5 {
			return fmt.Errorf("v2 saw %d requests", len(got))
		}
		for _, e := range got {
			if want := fmt.Sprintf("%s-shadow:%d", echo.Host, echo.Port); e.Host != want {
				return fmt.Errorf("v2 saw %s host %q, want host %q", e.URI, e.Host, want)
			}
		}
		return nil
	})
	// The shadows carry the client's peer metadata like the originals
	// (Istio's exchange runs before the router copies the request): v2's
	// sidecar, which sees only shadows, knows their source workload.
	eventually(t, "v2's sidecar reports the shadows' source", func() error {
		samples := extraParseMetrics(t, echo.Workloads[1].Sidecar.Metrics(t))
		known := extraSum(extraFind(samples, "istio_requests_total", map[string]string{"reporter": "destination", "source_workload": "client"}))
		unknown := extraSum(extraFind(samples, "istio_requests_total", map[string]string{"reporter": "destination", "source_workload": "unknown"}))
		if known < 5 || unknown != 0 {
			return fmt.Errorf("shadows with source_workload client: %v, unknown: %v", known, unknown)
		}
		return nil
	})

	const n = 200
	for i := range n {
		if got := instanceOf(t, client, "GET", echo.URL(fmt.Sprintf("/half/%d", i))); got != "echo-v1" {
			t.Fatalf("request /half/%d answered by %s", i, got)
		}
	}
	half := func() int {
		c := 0
		for _, e := range shadow.Requests() {
			if strings.HasPrefix(e.URI, "/half/") {
				c++
			}
		}
		return c
	}
	// Mirrors are asynchronous: wait until the count stops moving.
	mirrored, stableSince := half(), time.Now()
	for time.Since(stableSince) < time.Second {
		time.Sleep(100 * time.Millisecond)
		if c := half(); c != mirrored {
			mirrored, stableSince = c, time.Now()
		}
	}
	if sd := math.Sqrt(n * 0.25); math.Abs(float64(mirrored)-n/2) > 5*sd {
		t.Errorf("mirrored %d of %d at 50%%, want within %d±%.0f", mirrored, n, n/2, 5*sd)
	}
	t.Logf("mirrorPercentage 50: %d of %d mirrored", mirrored, n)
}

// TestCORS answers preflight requests from the VirtualService's
// corsPolicy at the proxy, adds the CORS headers to actual responses of
// allowed origins, and leaves other origins without them.
func TestCORS(t *testing.T) {
	_, echo, client := echoMesh(t, `hosts: [%[1]s]
http:
- route: [{destination: {host: %[1]s, subset: v1}}]
  corsPolicy:
    allowOrigins: [{exact: "https://app.example.com"}, {prefix: "https://dev-"}]
    allowMethods: [GET, POST]
    allowHeaders: [x-custom]
    exposeHeaders: [x-instance]
    maxAge: 1h
    allowCredentials: true
`)
	preflight := func(origin string) *Response {
		req, _ := http.NewRequest(http.MethodOptions, echo.URL("/cors"), nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "x-custom")
		return client.Do(t, req)
	}
	backend := echo.Workloads[0].Backend
	r := preflight("https://app.example.com")
	if r.Status != 200 || r.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(r.Header.Get("Access-Control-Allow-Methods"), "POST") ||
		r.Header.Get("Access-Control-Allow-Headers") != "x-custom" || r.Header.Get("Access-Control-Max-Age") != "3600" ||
		r.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("preflight from an allowed origin: %d %v", r.Status, r.Header)
	}
	for _, e := range backend.Requests() {
		if e.Method == http.MethodOptions {
			t.Errorf("the preflight reached the backend")
		}
	}
	if r := preflight("https://dev-42.example.com"); r.Header.Get("Access-Control-Allow-Origin") != "https://dev-42.example.com" {
		t.Errorf("preflight from a prefix-allowed origin: %d %v", r.Status, r.Header)
	}
	if r := preflight("https://evil.example.com"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin got Access-Control-Allow-Origin %q", r.Header.Get("Access-Control-Allow-Origin"))
	}

	r = client.Get(t, echo.URL("/cors"), "Origin", "https://app.example.com")
	if r.Status != 200 || r.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" || r.Header.Get("Access-Control-Expose-Headers") != "x-instance" {
		t.Errorf("actual request from an allowed origin: %d %v", r.Status, r.Header)
	}
	r = client.Get(t, echo.URL("/cors"), "Origin", "https://evil.example.com")
	if r.Status != 200 || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("actual request from another origin: %d, Access-Control-Allow-Origin %q", r.Status, r.Header.Get("Access-Control-Allow-Origin"))
	}
}
