package dataplane

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// adminPost POSTs to the proxy's admin path and returns status and body.
func adminPost(t *testing.T, p *Proxy, path string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Post("http://"+p.AdminAddr+path, "text/plain", nil)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAdmin reads a client sidecar's admin API on its own port (15000
// in a pod): /config_dump holds the listener, route, cluster and
// endpoints weftd generated for the echo service, /clusters its healthy
// endpoint, /stats the counters of the requests sent, /ready LIVE;
// /logging changes the log level; POST /quitquitquit stops the process.
func TestAdmin(t *testing.T) {
	m := NewMesh(t)
	echo := m.AddService("echo", "http", "HTTP")
	w := m.AddWorkload(echo, "v1", BackendHTTP)
	client := m.StartClient("client")
	for range 3 {
		if r := client.Get(t, echo.URL("/admin")); r.Status != 200 {
			t.Fatalf("GET: %d %q", r.Status, r.Body)
		}
	}
	cluster := fmt.Sprintf("outbound|%d||%s", echo.Port, echo.Host)

	t.Run("config_dump", func(t *testing.T) {
		dump := xdsDump(t, client)
		for _, key := range []string{
			"cluster " + cluster, "cluster PassthroughCluster", "cluster BlackHoleCluster",
			fmt.Sprintf("listener 0.0.0.0_%d", echo.Port), fmt.Sprintf("route %d", echo.Port), "endpoints " + cluster,
		} {
			if _, ok := dump[key]; !ok {
				t.Errorf("config_dump lacks %s", key)
			}
		}
		if eps := dump["endpoints "+cluster]; !strings.Contains(eps, w.Address) {
			t.Errorf("endpoints of %s do not hold the workload address %s: %s", cluster, w.Address, eps)
		}
	})
	t.Run("clusters", func(t *testing.T) {
		host := fmt.Sprintf("%s::%s:%d::", cluster, w.Address, echo.Port)
		c := client.AdminGet(t, "/clusters")
		for _, want := range []string{host + "health_flags::healthy", host + "weight::1", host + "rq_active::0"} {
			if !strings.Contains(c, want+"\n") {
				t.Errorf("/clusters lacks %q:\n%s", want, c)
			}
		}
	})
	t.Run("stats", func(t *testing.T) {
		if n := extraStat(t, client, "cluster."+cluster+".upstream_rq_total"); n != 3 {
			t.Errorf("upstream_rq_total = %d, want 3", n)
		}
		if n := extraStat(t, client, "cluster."+cluster+".upstream_rq_2xx"); n != 3 {
			t.Errorf("upstream_rq_2xx = %d, want 3", n)
		}
		if n := extraStat(t, client, "cluster."+cluster+".upstream_cx_total"); n < 1 {
			t.Errorf("upstream_cx_total = %d, want ≥ 1", n)
		}
		if n := extraStat(t, client, "server.state"); n != 0 {
			t.Errorf("server.state = %d, want 0 (live)", n)
		}
	})
	t.Run("ready", func(t *testing.T) {
		if got := strings.TrimSpace(client.AdminGet(t, "/ready")); got != "LIVE" {
			t.Errorf("/ready = %q, want LIVE", got)
		}
	})
	t.Run("logging", func(t *testing.T) {
		if got := client.AdminGet(t, "/logging"); !strings.Contains(got, "weft: info") {
			t.Errorf("GET /logging = %q, want level info", got)
		}
		if code, got := adminPost(t, client, "/logging?level=debug"); code != 200 || !strings.Contains(got, "weft: debug") {
			t.Errorf("POST /logging?level=debug: %d %q", code, got)
		}
		if got := client.AdminGet(t, "/logging"); !strings.Contains(got, "weft: debug") {
			t.Errorf("GET /logging after setting debug = %q", got)
		}
		if code, _ := adminPost(t, client, "/logging?level=loud"); code != http.StatusBadRequest {
			t.Errorf("POST /logging?level=loud: %d, want 400", code)
		}
		// Debug logging shows in the process's output: a new service's
		// cluster waits for its endpoints (warming, logged at debug).
		before := len(client.proc.out.tail(1 << 20))
		more := m.AddService("more", "http", "HTTP")
		b := extraStartBackend(t, "more", m.NewAddress())
		m.Apply("more.yaml", extraServiceYAML(more, extraEndpoint{Name: "more", Addr: b.Addr}))
		m.Sync()
		eventually(t, "a debug line in the proxy's output", func() error {
			out := client.proc.out.tail(1 << 20)
			if len(out) > before && strings.Contains(out[before:], "level=DEBUG") {
				return nil
			}
			return fmt.Errorf("no level=DEBUG line after the level change")
		})
	})
	t.Run("quitquitquit", func(t *testing.T) {
		if code, _ := (func() (int, string) {
			resp, err := http.Get("http://" + client.AdminAddr + "/quitquitquit")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode, ""
		})(); code != http.StatusMethodNotAllowed {
			t.Errorf("GET /quitquitquit: %d, want 405 (POST only)", code)
		}
		if code, body := adminPost(t, client, "/quitquitquit"); code != 200 || strings.TrimSpace(body) != "OK" {
			t.Errorf("POST /quitquitquit: %d %q", code, body)
		}
		select {
		case <-client.proc.done:
			if client.proc.err != nil {
				t.Errorf("proxy exited with %v after /quitquitquit, want status 0", client.proc.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the proxy still runs 10 s after POST /quitquitquit")
		}
	})
}
