package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

// TestBinarySIGTERMDrains runs weft-proxy with --access-log - and a long
// --drain-duration, sends SIGTERM with a request in flight, and checks
// that the request completes with Connection: close, new connections are
// refused, the process exits once the connection is gone (long before
// the drain duration) and the request was logged as JSON on stdout.
func TestBinarySIGTERMDrains(t *testing.T) {
	bin := proxyBinary(t)
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		fmt.Fprint(w, "finished")
	}))
	defer app.Close()
	const node = "sidecar~127.0.0.1~client.default~default.svc.cluster.local"
	cp := xdstest.NewServer(t, "127.0.0.1:0")
	lis := xdstest.FreeAddr(t)
	cp.Set(t, node, "v1", xdstest.Resources{
		Clusters:  []*clusterv3.Cluster{xdstest.StaticCluster("outbound|80||app", strings.TrimPrefix(app.URL, "http://"))},
		Listeners: []*listenerv3.Listener{xdstest.HTTPListener("0.0.0.0_80", lis, xdstest.HCM("80", "80"))},
		Routes:    []*routev3.RouteConfiguration{xdstest.RouteConfig("80", "outbound|80||app")},
	})
	cmd := exec.Command(bin, "--xds-address", cp.Addr, "--node-id", node, "--admin-port", "0", "--ready-port", "-1", "--stats-port", "-1",
		"--access-log", "-", "--drain-duration", "2m")
	stderr, _ := cmd.StderrPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	logLines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			logLines <- sc.Text()
		}
		close(logLines)
	}()
	exited := make(chan error, 1)
	admin := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`admin=(\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				admin <- m[1]
			}
		}
		exited <- cmd.Wait()
	}()
	select {
	case <-admin:
	case <-time.After(10 * time.Second):
		t.Fatal("no admin address logged")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", lis)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("listener never bound")
		}
		time.Sleep(20 * time.Millisecond)
	}

	type result struct {
		resp *http.Response
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + lis + "/slow?x=1")
		if err != nil {
			done <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{resp: resp, body: string(b)}
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("request never reached the app")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", lis, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-exited:
		t.Fatalf("exited with a request in flight: %v", err)
	default:
	}
	close(release)
	var r result
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("in-flight request did not complete")
	}
	if r.err != nil || r.resp.StatusCode != 200 || r.body != "finished" || !r.resp.Close {
		t.Fatalf("in-flight request: %v %v %q (want 200 finished with Connection: close)", r.err, r.resp, r.body)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("did not exit after the last connection closed")
	}
	var logged map[string]any
	for line := range logLines {
		m := map[string]any{}
		if json.Unmarshal([]byte(line), &m) == nil && m["path"] == "/slow?x=1" {
			logged = m
		}
	}
	if logged == nil || logged["response_code"] != 200.0 || logged["upstream_cluster"] != "outbound|80||app" {
		t.Fatalf("access log line for /slow: %v", logged)
	}
}
