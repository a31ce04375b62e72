package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/examples/bookinfo/app"
	"github.com/weftmesh/weft/examples/sampleserver"
)

func TestParseCommand(t *testing.T) {
	c, err := app.ParseCommand([]string{"productpage"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":9080" || c.Productpage.DetailsURL != "http://details:9080" || c.Productpage.ReviewsURL != "http://reviews:9080" ||
		c.Productpage.RatingsURL != "http://ratings:9080" || c.Productpage.Timeout != 3*time.Second {
		t.Errorf("productpage defaults: %+v", c)
	}
	c, err = app.ParseCommand([]string{"reviews", "--listen", "127.0.0.31:9080", "--version", "v2", "--ratings", "http://127.0.0.40:9080", "--ratings-timeout", "2s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.31:9080" || c.Reviews.Version != "v2" || c.Reviews.RatingsURL != "http://127.0.0.40:9080" || c.Reviews.RatingsTimeout != 2*time.Second {
		t.Errorf("reviews flags: %+v", c)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "missing service"},
		{[]string{"--listen", ":1"}, "missing service"},
		{[]string{"catalog"}, `unknown service "catalog"`},
		{[]string{"reviews", "--version", "v9"}, `version "v9"`},
		{[]string{"productpage", "--details", "ftp://details"}, "details URL"},
		{[]string{"details", "--listen", "nowhere"}, `--listen "nowhere"`},
		{[]string{"ratings", "extra"}, `unexpected argument "extra"`},
		{[]string{"details", "--version", "v1"}, "flag provided but not defined"},
	} {
		_, err := app.ParseCommand(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseCommand(%q) = %v, want error containing %q", tc.args, err, tc.want)
		}
	}
	var help bytes.Buffer
	if _, err := app.ParseCommand([]string{"--help"}, &help); !errors.Is(err, flag.ErrHelp) || !strings.Contains(help.String(), "usage: bookinfo") {
		t.Errorf("--help: %v, printed %q", err, help.String())
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logLines decodes the JSON lines written so far.
func logLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}

func TestCommandRunServesAndLogsUntilCancelled(t *testing.T) {
	c, err := app.ParseCommand([]string{"ratings", "--listen", "127.0.0.1:0"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, &log) }()

	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, l := range logLines(t, log.String()) {
			if l["msg"] == "listening" {
				addr, _ = l["addr"].(string)
			}
		}
	}
	if addr == "" {
		cancel()
		t.Fatalf("no listening line in log %q", log.String())
	}
	resp, body := get(t, "http://"+addr+"/ratings/1", map[string][]string{"X-Request-Id": {"r-42"}})
	expect(t, "ratings", resp, body, 200, `"Reviewer1":5`)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("still listening after Run returned")
	}
	var found bool
	for _, l := range logLines(t, log.String()) {
		if l["msg"] == "request" {
			found = true
			if l["service"] != "ratings" || l["path"] != "/ratings/1" || l["status"] != float64(200) || l["x_request_id"] != "r-42" || l["method"] != "GET" {
				t.Errorf("request log line %v", l)
			}
		}
	}
	if !found {
		t.Errorf("no request line in log %q", log.String())
	}
}

func TestCommandListensOnUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "details.sock")
	c, err := app.ParseCommand([]string{"details", "--listen", "unix://" + sock}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, io.Discard) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	var resp *http.Response
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if resp, err = client.Get("http://details/details/0"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	expect(t, "details over unix socket", resp, string(body), 200, `"ISBN-10":"1234567890"`)

	if _, err := sampleserver.Listen("unix://"); err == nil {
		t.Error("Listen accepted unix:// without a path")
	}
}
