package proxy

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/weftmesh/weft/internal/proxy/bootstrap"
	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

// newHarnessWith is newHarness with a bootstrap adjusted by edit.
func newHarnessWith(t *testing.T, res xdstest.Resources, edit func(*bootstrap.Config)) *harness {
	t.Helper()
	return newHarnessEdit(t, res, edit)
}

// logLines returns the parsed lines of an access log file.
func logLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("access log line is not JSON: %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// waitLine polls the log for a line for which match is true.
func waitLine(t *testing.T, path, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	var found map[string]any
	waitFor(t, what, func() bool {
		for _, l := range logLines(t, path) {
			if match(l) {
				found = l
				return true
			}
		}
		return false
	})
	return found
}

func pathIs(p string) func(map[string]any) bool {
	return func(l map[string]any) bool { return l["path"] == p }
}

func TestJSONAccessLog(t *testing.T) {
	b := backends(t)
	lis := xdstest.FreeAddr(t)
	res := bookinfo(lis, b, deadAddr(t))
	echoAddr, _ := echoServer(t)
	tcpLis := xdstest.FreeAddr(t)
	res.Clusters = append(res.Clusters, xdstest.StaticCluster("outbound|7000||echo.default.svc.cluster.local", echoAddr))
	res.Listeners = append(res.Listeners, xdstest.TCPListener("0.0.0.0_7000", tcpLis, "outbound|7000||echo.default.svc.cluster.local"))
	logPath := filepath.Join(t.TempDir(), "access.log")
	h := newHarnessWith(t, res, func(c *bootstrap.Config) { c.AccessLog = logPath })
	base := "http://" + lis

	get(t, base+"/ok?x=1", "Host", "reviews:9080", "User-Agent", "weft-test", "X-Forwarded-For", "10.9.9.9", "X-Request-Id", "req-1")
	get(t, base+"/nr", "Host", "ratings:9080")
	get(t, base+"/dead", "Host", "reviews:9080")
	get(t, base+"/abort", "Host", "reviews:9080")
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() { defer wg.Done(); get(t, base+"/cb", "Host", "reviews:9080") }()
	}
	wg.Wait()

	ok := waitLine(t, logPath, "the 200 line", pathIs("/ok?x=1"))
	want := map[string]any{
		"method": "GET", "protocol": "HTTP/1.1", "response_code": 200.0, "response_flags": "-",
		"response_code_details": "via_upstream", "user_agent": "weft-test", "x_forwarded_for": "10.9.9.9",
		"request_id": "req-1", "authority": "reviews:9080", "upstream_host": b["v1"].addr(),
		"upstream_cluster": "outbound|9080|v1|reviews.default.svc.cluster.local", "route_name": "default",
		"downstream_local_address": lis, "requested_server_name": nil, "connection_termination_details": nil,
	}
	for k, v := range want {
		if ok[k] != v {
			t.Errorf("200 line: %s = %#v, want %#v (line %v)", k, ok[k], v, ok)
		}
	}
	for _, k := range []string{"start_time", "bytes_received", "bytes_sent", "duration", "upstream_service_time", "downstream_remote_address", "upstream_local_address", "upstream_transport_failure_reason"} {
		if _, present := ok[k]; !present {
			t.Errorf("200 line lacks %s: %v", k, ok)
		}
	}
	if ok["upstream_service_time"] == nil {
		t.Errorf("upstream_service_time is null: %v", ok)
	}
	if n, _ := ok["bytes_sent"].(float64); n <= 0 {
		t.Errorf("bytes_sent %v", ok["bytes_sent"])
	}
	if _, err := time.Parse(time.RFC3339Nano, ok["start_time"].(string)); err != nil {
		t.Errorf("start_time %q: %v", ok["start_time"], err)
	}

	flagCases := []struct {
		path, flags, details string
		code                 float64
	}{
		{"/nr", "NR", "route_not_found", 404},
		{"/dead", "UF", "upstream_reset_before_response_started{connection_failure}", 503},
		{"/abort", "FI", "fault_filter_abort", 418},
	}
	for _, c := range flagCases {
		l := waitLine(t, logPath, c.path, pathIs(c.path))
		if l["response_flags"] != c.flags || l["response_code"] != c.code || l["response_code_details"] != c.details {
			t.Errorf("%s: got flags %v code %v details %v, want %s %v %s", c.path, l["response_flags"], l["response_code"], l["response_code_details"], c.flags, c.code, c.details)
		}
	}
	if l := waitLine(t, logPath, "/dead", pathIs("/dead")); l["upstream_transport_failure_reason"] == nil {
		t.Errorf("/dead: no upstream_transport_failure_reason: %v", l)
	}
	waitLine(t, logPath, "a UO line", func(l map[string]any) bool { return l["path"] == "/cb" && l["response_flags"] == "UO" })

	// TCP: one line per connection, with bytes both ways.
	c, err := net.Dial("tcp", tcpLis)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "ping\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("tcp echo %q %v", line, err)
	}
	c.Close()
	tl := waitLine(t, logPath, "the TCP line", func(l map[string]any) bool {
		return l["upstream_cluster"] == "outbound|7000||echo.default.svc.cluster.local"
	})
	if tl["bytes_sent"] != 5.0 || tl["bytes_received"] != 5.0 || tl["response_flags"] != "-" || tl["upstream_host"] != echoAddr || tl["method"] != nil || tl["downstream_local_address"] != tcpLis {
		t.Errorf("TCP line: %v", tl)
	}

	if s := adminGet(t, h.p.Addr("admin"), "/stats"); !strings.Contains(s, "access_log_dropped: 0\n") {
		t.Errorf("/stats lacks access_log_dropped: %s", grep(s, "access_log"))
	}
}

// slowBackend holds each request until release is closed; arrived gets
// one value per request received.
type slowBackend struct {
	*backend
	arrived chan struct{}
	release chan struct{}
}

func newSlowBackend(t *testing.T) *slowBackend {
	s := &slowBackend{arrived: make(chan struct{}, 16), release: make(chan struct{})}
	s.backend = newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		s.arrived <- struct{}{}
		<-s.release
		fmt.Fprint(w, "finished")
	})
	return s
}

func (s *slowBackend) waitArrived(t *testing.T) {
	t.Helper()
	select {
	case <-s.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("request never reached the backend")
	}
}

// TLS passthrough: the SNI seen by tls_inspector is requested_server_name.
func TestAccessLogSNI(t *testing.T) {
	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	go func() {
		for {
			c, err := sink.Accept()
			if err != nil {
				return
			}
			go func() { c.Read(make([]byte, 4096)); c.Close() }() // read the ClientHello, hang up
		}
	}()
	lis := xdstest.FreeAddr(t)
	l := xdstest.TCPListener("0.0.0.0_443", lis, "outbound|443||secure.example.com")
	l.ListenerFilters = []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.tls_inspector"}}
	res := xdstest.Resources{
		Clusters:  []*clusterT{xdstest.StaticCluster("outbound|443||secure.example.com", sink.Addr().String())},
		Listeners: []*listenerv3.Listener{l},
	}
	logPath := filepath.Join(t.TempDir(), "access.log")
	newHarnessWith(t, res, func(c *bootstrap.Config) { c.AccessLog = logPath })
	c, err := net.Dial("tcp", lis)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	tls.Client(c, &tls.Config{ServerName: "secure.example.com", InsecureSkipVerify: true}).Handshake() // fails: the sink hangs up
	c.Close()
	line := waitLine(t, logPath, "the TLS passthrough line", func(l map[string]any) bool {
		return l["upstream_cluster"] == "outbound|443||secure.example.com"
	})
	if line["requested_server_name"] != "secure.example.com" {
		t.Errorf("requested_server_name %v in %v", line["requested_server_name"], line)
	}
}
