package accesslog

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/httpproxy"
	"github.com/weftmesh/weft/internal/proxy/upstream"
)

// A full queue drops and counts instead of blocking the caller.
func TestFullQueueDrops(t *testing.T) {
	var out bytes.Buffer
	l := New(&out, 2)
	for range 5 {
		l.Observe(&httpproxy.Info{Method: "GET", Path: "/", Status: 200})
	}
	if got := l.Dropped(); got != 3 {
		t.Fatalf("dropped %d, want 3", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l.Run(ctx) // writes what is queued, then returns
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), out.String())
	}
}

func TestEntries(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	e := HTTPEntry(&httpproxy.Info{Start: start, Method: "GET", Path: "/a", Protocol: "HTTP/2.0", Status: 503,
		Flags: "UF,URX", Cluster: "outbound|80||a", Upstream: &upstream.Host{Addr: "10.0.0.1:80"}, Duration: 1500 * time.Millisecond})
	b, _ := json.Marshal(e)
	for _, want := range []string{`"start_time":"2026-01-02T03:04:05.006Z"`, `"protocol":"HTTP/2"`, `"response_flags":"UF,URX"`,
		`"response_code_details":"upstream_reset_before_response_started{connection_failure}"`, `"upstream_transport_failure_reason":"connection_failure"`,
		`"duration":1500`, `"upstream_host":"10.0.0.1:80"`, `"user_agent":null`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("missing %s in %s", want, b)
		}
	}
	tcp, _ := json.Marshal(TCPEntry(start, time.Second, "c", nil, nil, "UH", 0, 0))
	if !strings.Contains(string(tcp), `"response_flags":"UH"`) || !strings.Contains(string(tcp), `"method":null`) {
		t.Errorf("tcp entry %s", tcp)
	}
}

// Header values reach the log verbatim but always as valid JSON.
func TestEscaping(t *testing.T) {
	for _, v := range []string{`a"b\c`, "tab\there\nnl\x01\x7f", "caf\u00e9 \U0001F600", "bad\xffutf8", "</script>&"} {
		b := (&Entry{UserAgent: v}).AppendJSON(nil)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%q: invalid JSON %s: %v", v, b, err)
		}
		want := strings.ToValidUTF8(v, "\uFFFD")
		if m["user_agent"] != want {
			t.Errorf("%q: got %q", v, m["user_agent"])
		}
	}
}
