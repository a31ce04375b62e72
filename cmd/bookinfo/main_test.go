package main_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildBinary compiles cmd/bookinfo into a temporary directory, skipping the
// test when no Go toolchain is at hand.
func buildBinary(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("skipping: needs the go tool to build cmd/bookinfo:", err)
	}
	bin := filepath.Join(t.TempDir(), "bookinfo")
	out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// process is a running bookinfo service and the JSON lines it logged.
type process struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}

	mu    sync.Mutex
	lines []map[string]any
}

// startService runs bin with args and env additions and waits for its
// "listening" line.
func startService(t *testing.T, bin string, env []string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Env = append(cleanEnv(), env...)
	p.cmd.Stderr = os.Stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan string, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				m = map[string]any{"unparsed": sc.Text()}
			}
			p.mu.Lock()
			p.lines = append(p.lines, m)
			p.mu.Unlock()
			if m["msg"] == "listening" {
				addr, _ := m["addr"].(string)
				listening <- addr
			}
		}
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	select {
	case p.addr = <-listening:
	case <-p.done:
		t.Fatalf("%v exited before listening", args)
	case <-time.After(30 * time.Second):
		t.Fatalf("%v did not start listening", args)
	}
	return p
}

// logged returns the lines logged so far.
func (p *process) logged() []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]map[string]any(nil), p.lines...)
}

// stop sends SIGTERM and checks that the service exits cleanly.
func (p *process) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not exit on SIGTERM", p.cmd.Args[1])
	}
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("%s exited with %v", p.cmd.Args[1], err)
	}
}

// cleanEnv is the test's environment without proxy settings.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(name) {
		case "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "REQUEST_METHOD":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// forwardProxy is the stand-in for Weft's local-mode outbound proxy: an HTTP
// proxy that routes Istio service names to the processes' addresses.
type forwardProxy struct {
	url    string
	mu     sync.Mutex
	routes map[string]string
	seen   map[string]int // requests by Host header
}

func newForwardProxy(t *testing.T) *forwardProxy {
	f := &forwardProxy{routes: map[string]string{}, seen: map[string]int{}}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.seen[pr.In.Host]++
		pr.Out.URL.Host = f.routes[pr.In.URL.Host]
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		_, ok := f.routes[r.URL.Host]
		f.mu.Unlock()
		if !ok {
			http.Error(w, "no route to "+r.URL.Host, http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

func (f *forwardProxy) route(host, addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[host] = addr
}

func (f *forwardProxy) count(host string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen[host]
}

// TestBookinfoThroughHTTPProxy runs the four services as processes that call
// each other by Istio service name through the proxy named in HTTP_PROXY.
func TestBookinfoThroughHTTPProxy(t *testing.T) {
	bin := buildBinary(t)
	mesh := newForwardProxy(t)
	proxyEnv := []string{"HTTP_PROXY=" + mesh.url}

	details := startService(t, bin, nil, "details", "--listen", "127.0.0.1:0")
	ratings := startService(t, bin, nil, "ratings", "--listen", "127.0.0.1:0")
	reviews := startService(t, bin, proxyEnv, "reviews", "--listen", "127.0.0.1:0", "--version", "v2", "--podname", "reviews-v2-test")
	productpage := startService(t, bin, proxyEnv, "productpage", "--listen", "127.0.0.1:0")
	mesh.route("details:9080", details.addr)
	mesh.route("ratings:9080", ratings.addr)
	mesh.route("reviews:9080", reviews.addr)

	req, _ := http.NewRequest("GET", "http://"+productpage.addr+"/productpage", nil)
	req.Header.Set("Cookie", "user=jason")
	req.Header.Set("X-Request-Id", "e2e-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("productpage: %d\n%s", resp.StatusCode, page)
	}
	for _, want := range []string{"Book Details", "PublisherA", "Book Reviews", `<font color="black">`, "reviews-v2-test", "jason"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	if n := strings.Count(string(page), `class="glyphicon glyphicon-star"`); n != 9 {
		t.Errorf("page has %d full stars, want 9", n)
	}
	for _, host := range []string{"details:9080", "reviews:9080", "ratings:9080"} {
		if n := mesh.count(host); n != 1 {
			t.Errorf("proxy saw %d requests for %s, want 1", n, host)
		}
	}

	for _, p := range []*process{productpage, reviews, ratings, details} {
		p.stop(t)
	}
	// Each service logged its request, with the propagated identity.
	for _, tc := range []struct {
		p       *process
		service string
		path    string
	}{
		{productpage, "productpage", "/productpage"},
		{reviews, "reviews", "/reviews/0"},
		{ratings, "ratings", "/ratings/0"},
		{details, "details", "/details/0"},
	} {
		var found bool
		for _, l := range tc.p.logged() {
			if l["msg"] == "request" && l["path"] == tc.path && l["service"] == tc.service && l["x_request_id"] == "e2e-1" && l["status"] == float64(200) {
				found = true
				if tc.service != "productpage" && l["end_user"] != "jason" {
					t.Errorf("%s logged end_user %v, want jason", tc.service, l["end_user"])
				}
			}
		}
		if !found {
			t.Errorf("%s logged no request line for %s: %v", tc.service, tc.path, tc.p.logged())
		}
		if last := tc.p.logged(); len(last) == 0 || last[len(last)-1]["msg"] != "stopped" {
			t.Errorf("%s did not log its shutdown", tc.service)
		}
	}
}

func TestBadArguments(t *testing.T) {
	bin := buildBinary(t)
	for _, args := range [][]string{
		{},
		{"catalog"},
		{"reviews", "--version", "v7"},
		{"productpage", "--reviews", "reviews:9080"},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("bookinfo %q: %v, want exit status 2; output %s", args, err, out)
		}
		if !strings.HasPrefix(string(out), "bookinfo: ") && !strings.Contains(string(out), "bookinfo: ") {
			t.Errorf("bookinfo %q printed %q", args, out)
		}
	}
}
