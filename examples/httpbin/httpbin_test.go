package httpbin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/examples/httpbin"
	"github.com/weftmesh/weft/examples/sampleserver"
)

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs httpbin on loopback with its request log in the returned buffer.
func start(t *testing.T, cfg httpbin.Config) (string, *lockedBuffer) {
	t.Helper()
	h, err := httpbin.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var log lockedBuffer
	srv := httptest.NewServer(sampleserver.LogRequests("httpbin-v2", slog.New(slog.NewJSONHandler(&log, nil)), h))
	t.Cleanup(srv.Close)
	return srv.URL, &log
}

var client = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       30 * time.Second,
}

func call(t *testing.T, method, url, contentType, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// document is the union of httpbin's JSON answers.
type document struct {
	Args       map[string][]string `json:"args"`
	Headers    map[string][]string `json:"headers"`
	Method     string              `json:"method"`
	Origin     string              `json:"origin"`
	URL        string              `json:"url"`
	Data       string              `json:"data"`
	Form       map[string][]string `json:"form"`
	JSON       any                 `json:"json"`
	UserAgent  string              `json:"user-agent"`
	Hostname   string              `json:"hostname"`
	StatusCode int                 `json:"status_code"`
	Error      string              `json:"error"`
	Detail     string              `json:"detail"`
}

func decode(t *testing.T, what string, resp *http.Response, body []byte, status int) document {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s: status %d, want %d; body %s", what, resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("%s: content type %q", what, ct)
	}
	var d document
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatalf("%s: %s: %v", what, body, err)
	}
	return d
}

func TestGetHeadersIPUserAgent(t *testing.T) {
	base, _ := start(t, httpbin.Config{Hostname: "httpbin-v1-abc"})
	host := strings.TrimPrefix(base, "http://")

	resp, body := call(t, "GET", base+"/get?a=1&a=2&b=x", "", "", map[string]string{"User-Agent": "weft-test/1", "X-B3-Sampled": "1"})
	d := decode(t, "/get", resp, body, 200)
	if strings.Join(d.Args["a"], ",") != "1,2" || d.Args["b"][0] != "x" {
		t.Errorf("/get args %v", d.Args)
	}
	if d.Method != "GET" || d.Origin != "127.0.0.1" || d.URL != base+"/get?a=1&a=2&b=x" {
		t.Errorf("/get method %q origin %q url %q", d.Method, d.Origin, d.URL)
	}
	if d.Headers["User-Agent"][0] != "weft-test/1" || d.Headers["X-B3-Sampled"][0] != "1" || d.Headers["Host"][0] != host {
		t.Errorf("/get headers %v", d.Headers)
	}
	resp, body = call(t, "POST", base+"/get", "", "", nil)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /get: %d %s", resp.StatusCode, body)
	}

	resp, body = call(t, "GET", base+"/headers", "", "", map[string]string{"End-User": "jason"})
	d = decode(t, "/headers", resp, body, 200)
	if d.Headers["End-User"][0] != "jason" || d.Headers["Host"][0] != host {
		t.Errorf("/headers %v", d.Headers)
	}

	resp, body = call(t, "GET", base+"/ip", "", "", nil)
	if d = decode(t, "/ip", resp, body, 200); d.Origin != "127.0.0.1" {
		t.Errorf("/ip origin %q", d.Origin)
	}
	resp, body = call(t, "GET", base+"/ip", "", "", map[string]string{"X-Forwarded-For": "10.1.2.3, 127.0.0.6"})
	if d = decode(t, "/ip behind a proxy", resp, body, 200); d.Origin != "10.1.2.3" {
		t.Errorf("/ip origin %q, want the X-Forwarded-For client", d.Origin)
	}
	for _, path := range []string{"/user-agent", "/ua"} {
		resp, body = call(t, "GET", base+path, "", "", map[string]string{"User-Agent": "fortio.org/fortio-1.69"})
		if d = decode(t, path, resp, body, 200); d.UserAgent != "fortio.org/fortio-1.69" {
			t.Errorf("%s = %s", path, body)
		}
	}
	resp, body = call(t, "GET", base+"/hostname", "", "", nil)
	if d = decode(t, "/hostname", resp, body, 200); d.Hostname != "httpbin-v1-abc" {
		t.Errorf("/hostname = %s", body)
	}
	resp, body = call(t, "GET", base+"/", "", "", nil)
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("/status/<code>")) {
		t.Errorf("/: %d %s", resp.StatusCode, body)
	}
}

func TestAnything(t *testing.T) {
	base, _ := start(t, httpbin.Config{})
	for _, tc := range []struct {
		method, path, ct, body string
		check                  func(document) bool
	}{
		{"GET", "/anything", "", "", func(d document) bool { return d.Method == "GET" && d.Data == "" }},
		{"POST", "/anything/a/b?x=1", "application/json", `{"k":[1,2]}`, func(d document) bool {
			m, ok := d.JSON.(map[string]any)
			return ok && len(m["k"].([]any)) == 2 && d.Data == `{"k":[1,2]}` && d.Args["x"][0] == "1" && strings.HasSuffix(d.URL, "/anything/a/b?x=1")
		}},
		{"PUT", "/anything", "application/x-www-form-urlencoded", "u=jason&p=1", func(d document) bool {
			return d.Method == "PUT" && d.Form["u"][0] == "jason"
		}},
		{"DELETE", "/anything", "text/plain", "hello", func(d document) bool { return d.Data == "hello" }},
		{"PATCH", "/anything", "application/octet-stream", "\x00\x01", func(d document) bool {
			return d.Data == "data:application/octet-stream;base64,AAE="
		}},
		{"POST", "/post", "text/plain", "posted", func(d document) bool { return d.Method == "POST" && d.Data == "posted" }},
		{"PUT", "/put", "text/plain", "put", func(d document) bool { return d.Data == "put" }},
	} {
		resp, body := call(t, tc.method, base+tc.path, tc.ct, tc.body, nil)
		d := decode(t, tc.method+" "+tc.path, resp, body, 200)
		if !tc.check(d) {
			t.Errorf("%s %s: %s", tc.method, tc.path, body)
		}
	}
	resp, body := call(t, "POST", base+"/anything", "application/json", `{"broken`, nil)
	if d := decode(t, "bad json", resp, body, 400); !strings.Contains(d.Detail, "error parsing request body") {
		t.Errorf("bad json: %s", body)
	}
}

func TestStatus(t *testing.T) {
	base, _ := start(t, httpbin.Config{})
	for _, code := range []int{200, 201, 204, 400, 404, 500, 503, 504} {
		resp, body := call(t, "GET", base+"/status/"+strconv.Itoa(code), "", "", nil)
		if resp.StatusCode != code || len(body) != 0 {
			t.Errorf("/status/%d: %d %q", code, resp.StatusCode, body)
		}
	}
	resp, body := call(t, "POST", base+"/status/418", "", "", nil)
	if resp.StatusCode != 418 || string(body) != "I'm a teapot!" {
		t.Errorf("/status/418: %d %q", resp.StatusCode, body)
	}
	resp, _ = call(t, "GET", base+"/status/302", "", "", nil)
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "/redirect/1" {
		t.Errorf("/status/302: %d location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Weighted choices: a zero weight is never chosen.
	for range 20 {
		resp, _ = call(t, "GET", base+"/status/503:1,200:0", "", "", nil)
		if resp.StatusCode != 503 {
			t.Fatalf("/status/503:1,200:0 answered %d", resp.StatusCode)
		}
	}
	seen := map[int]bool{}
	for range 200 {
		resp, _ = call(t, "GET", base+"/status/200,503", "", "", nil)
		seen[resp.StatusCode] = true
	}
	if len(seen) != 2 || !seen[200] || !seen[503] {
		t.Errorf("/status/200,503 answered %v, want both", seen)
	}
	for _, bad := range []string{"abc", "99", "600", "200:x", "200:0"} {
		resp, body = call(t, "GET", base+"/status/"+bad, "", "", nil)
		if d := decode(t, "/status/"+bad, resp, body, 400); d.StatusCode != 400 || d.Detail == "" {
			t.Errorf("/status/%s: %s", bad, body)
		}
	}
}

func TestDelay(t *testing.T) {
	base, _ := start(t, httpbin.Config{MaxDelay: 2 * time.Second})
	for _, d := range []string{"0.2", "200ms"} {
		start := time.Now()
		resp, body := call(t, "GET", base+"/delay/"+d, "", "", nil)
		elapsed := time.Since(start)
		doc := decode(t, "/delay/"+d, resp, body, 200)
		if doc.Method != "GET" || !strings.HasSuffix(doc.URL, "/delay/"+d) {
			t.Errorf("/delay/%s: %s", d, body)
		}
		if elapsed < 200*time.Millisecond {
			t.Errorf("/delay/%s answered after %v", d, elapsed)
		}
		if !strings.HasPrefix(resp.Header.Get("Server-Timing"), "initial_delay;dur=200.00") {
			t.Errorf("/delay/%s server timing %q", d, resp.Header.Get("Server-Timing"))
		}
	}
	for _, bad := range []string{"3", "-1", "soon"} {
		resp, body := call(t, "GET", base+"/delay/"+bad, "", "", nil)
		if d := decode(t, "/delay/"+bad, resp, body, 400); !strings.Contains(d.Detail, "invalid duration") {
			t.Errorf("/delay/%s: %s", bad, body)
		}
	}
	// A client that gives up does not keep the server busy.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/delay/2", nil)
	if _, err := client.Do(req); err == nil {
		t.Error("/delay/2 answered before the client's 50ms deadline")
	}
}

func TestRequestLog(t *testing.T) {
	base, log := start(t, httpbin.Config{})
	for range 3 {
		call(t, "GET", base+"/headers", "", "", map[string]string{"X-Request-Id": "mirror-1"})
	}
	call(t, "GET", base+"/status/503", "", "", nil)
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("log has %d lines, want 4:\n%s", len(lines), log.String())
	}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		wantPath, wantStatus, wantID := "/headers", 200.0, "mirror-1"
		if i == 3 {
			wantPath, wantStatus, wantID = "/status/503", 503, ""
		}
		if m["msg"] != "request" || m["service"] != "httpbin-v2" || m["path"] != wantPath || m["status"] != wantStatus || m["x_request_id"] != wantID {
			t.Errorf("line %d: %s", i, l)
		}
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	h, err := httpbin.New(httpbin.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sampleserver.Run(ctx, ln, h) }()
	resp, body := call(t, "GET", "http://"+ln.Addr().String()+"/ip", "", "", nil)
	decode(t, "/ip", resp, body, 200)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if _, err := httpbin.New(httpbin.Config{MaxDelay: -1}); err == nil {
		t.Error("New accepted a negative max delay")
	}
}
