package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

// TestBinary builds weft-proxy, runs it against a go-control-plane
// server, proxies a request, and stops it with /quitquitquit.
func TestBinary(t *testing.T) {
	bin := proxyBinary(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello from app") }))
	defer app.Close()
	const node = "sidecar~127.0.0.1~client.default~default.svc.cluster.local"
	cp := xdstest.NewServer(t, "127.0.0.1:0")
	lis := xdstest.FreeAddr(t)
	cp.Set(t, node, "v1", xdstest.Resources{
		Clusters:  []*clusterv3.Cluster{xdstest.StaticCluster("outbound|80||app", strings.TrimPrefix(app.URL, "http://"))},
		Listeners: []*listenerv3.Listener{xdstest.HTTPListener("0.0.0.0_80", lis, xdstest.HCM("80", "80"))},
		Routes:    []*routev3.RouteConfiguration{xdstest.RouteConfig("80", "outbound|80||app")},
	})

	cmd := exec.Command(bin, "--xds-address", cp.Addr, "--node-id", node, "--namespace", "default", "--workload", "client",
		"--labels", "app=client,version=v1", "--admin-port", "0", "--ready-port", "-1", "--stats-port", "-1", "--delta")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
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
	defer cmd.Process.Kill()
	var adminAddr string
	select {
	case adminAddr = <-admin:
	case <-time.After(10 * time.Second):
		t.Fatal("no admin address logged")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + adminAddr + "/ready")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) == "LIVE\n" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Get("http://" + lis + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello from app" {
		t.Fatalf("proxied body %q", b)
	}
	q, err := http.Post("http://"+adminAddr+"/quitquitquit", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	q.Body.Close()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not exit after /quitquitquit")
	}
}

func TestFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--xds-address", "nope"}, "xdsAddress"},
		{[]string{"--node-id", "n", "--labels", "novalue"}, "--labels"},
		{[]string{"--node-id", "n", "--bootstrap", "/nonexistent.yaml"}, "bootstrap"},
		{[]string{"--xds-address", "127.0.0.1:1"}, "node.id: required"},
	} {
		err := run(c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want error containing %q", c.args, err, c.want)
		}
	}
}
