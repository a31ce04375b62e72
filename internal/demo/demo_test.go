package demo

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/validate"
)

// The generated configuration is valid Istio configuration: no errors and
// no warnings from the same checks `weft validate` runs.
func TestConfigFilesValidate(t *testing.T) {
	files, err := ConfigFiles(18080, 0)
	if err != nil {
		t.Fatal(err)
	}
	var inputs []validate.Input
	for name, data := range files {
		inputs = append(inputs, validate.Input{Name: name, Data: data})
	}
	rep := validate.Check(inputs)
	if len(rep.Diagnostics) > 0 {
		for _, d := range rep.Diagnostics {
			t.Error(d.String())
		}
	}
	// 5 ServiceEntries, 8 WorkloadEntries, 8 Sidecars, 4 DestinationRules,
	// the Gateway and its VirtualService.
	if rep.Objects != 27 {
		t.Errorf("objects: %d, want 27", rep.Objects)
	}
	if !strings.Contains(string(files["gateway.yaml"]), "number: 18080") {
		t.Errorf("gateway.yaml does not use the gateway port:\n%s", files["gateway.yaml"])
	}
	sc := string(files["sidecars.yaml"])
	for _, w := range Workloads(0) {
		if w.Port == 0 {
			continue
		}
		if !strings.Contains(sc, "bind: "+w.Address+"\n") || !strings.Contains(sc, "defaultEndpoint: 0.0.0.0:"+strconv.Itoa(int(w.AppPort))) {
			t.Errorf("sidecars.yaml: no ingress for %s", w.Name)
		}
	}
}

func TestWorkloadAddressesAreDistinct(t *testing.T) {
	seen := map[string]string{}
	for _, w := range Workloads(7) {
		if !strings.HasPrefix(w.Address, "127.0.7.") || !strings.HasPrefix(w.EgressAddress, "127.0.8.") {
			t.Errorf("%s: addresses %s, %s not in block 7", w.Name, w.Address, w.EgressAddress)
		}
		for _, a := range []string{w.Address, w.EgressAddress} {
			if other, dup := seen[a]; dup {
				t.Errorf("%s: address %s also used by %s", w.Name, a, other)
			}
			seen[a] = w.Name
		}
		if w.Address == GatewayAddress(7) {
			t.Errorf("%s uses the gateway's address", w.Name)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	o := Options{XDSPort: 15014}
	o.setDefaults()
	err := o.validate()
	if err == nil || !strings.Contains(err.Error(), "weftd admin port: 15014 is also the xDS port") {
		t.Errorf("duplicate port: %v", err)
	}
	o = Options{GatewayPort: 70000, ProxyStatsPort: 9080}
	o.setDefaults()
	err = o.validate()
	if err == nil || !strings.Contains(err.Error(), "gateway port: 70000 is not a port number") || !strings.Contains(err.Error(), "proxy stats port: 9080 is also the port of productpage-v1") {
		t.Errorf("bad ports: %v", err)
	}
	o = Options{AddressBlock: 255}
	o.setDefaults()
	if err := o.validate(); err == nil || !strings.Contains(err.Error(), "address block: 255 is above 254") {
		t.Errorf("address block 255: %v", err)
	}
	o = Options{}
	o.setDefaults()
	if err := o.validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

// A missing binary is named, with where it was looked for.
func TestStartNamesMissingBinary(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"weftd", "bookinfo", "httpbin"} {
		writeScript(t, filepath.Join(dir, name), "exit 0")
	}
	t.Setenv("PATH", dir) // no weft-proxy anywhere on PATH either
	_, err := Start(context.Background(), Options{BinDir: dir, StateDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "cannot find the weft-proxy binary") || !strings.Contains(err.Error(), filepath.Join(dir, "weft-proxy")) {
		t.Fatalf("err = %v", err)
	}
}

// A port in use is reported before anything starts.
func TestStartReportsPortInUse(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"weftd", "weft-proxy", "bookinfo", "httpbin"} {
		writeScript(t, filepath.Join(dir, name), "exit 0")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	state := t.TempDir()
	ports := freePorts(t, 6)
	_, err = Start(context.Background(), Options{
		BinDir: dir, StateDir: state, AddressBlock: 200, GatewayPort: ports[0], XDSPort: ports[1], SecureXDSPort: ports[2], AdminPort: port,
		ProxyAdminPort: ports[3], ProxyReadyPort: ports[4], ProxyStatsPort: ports[5],
	})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:"+strconv.Itoa(port)+" is not available") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(state, "logs", "weftd.log")); err == nil {
		t.Error("weftd was started although a port was taken")
	}
}

// A child that exits during startup fails Start with its name and log.
func TestStartReportsChildExit(t *testing.T) {
	dir := t.TempDir()
	writeScript(t, filepath.Join(dir, "weftd"), "echo 'weftd: configDir: broken' >&2; exit 3")
	for _, name := range []string{"weft-proxy", "bookinfo", "httpbin"} {
		writeScript(t, filepath.Join(dir, name), "exit 0")
	}
	ports := freePorts(t, 7)
	state := t.TempDir()
	_, err := Start(context.Background(), Options{
		BinDir: dir, StateDir: state, AddressBlock: 200, GatewayPort: ports[0], XDSPort: ports[1], SecureXDSPort: ports[2], AdminPort: ports[3],
		ProxyAdminPort: ports[4], ProxyReadyPort: ports[5], ProxyStatsPort: ports[6], ReadyTimeout: 10 * time.Second,
	})
	log := filepath.Join(state, "logs", "weftd.log")
	if err == nil || !strings.Contains(err.Error(), "weftd stopped unexpectedly (exit status 3); see "+log) {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(log); !strings.Contains(string(b), "configDir: broken") {
		t.Errorf("log %s: %q", log, b)
	}
}

// stop ends the whole process group, including a grandchild, and kills
// a child that ignores SIGTERM after the grace period.
func TestChildStopKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "grandchild.pid")
	script := filepath.Join(dir, "stubborn")
	writeScript(t, script, "trap '' TERM\nsleep 300 &\necho $! > "+pidFile+"\nwait")
	c, err := startChild("stubborn", script, nil, os.Environ(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var grandchild int
	deadline := time.Now().Add(10 * time.Second)
	for grandchild == 0 && time.Now().Before(deadline) {
		b, _ := os.ReadFile(pidFile)
		grandchild, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		time.Sleep(10 * time.Millisecond)
	}
	if grandchild == 0 {
		t.Fatal("grandchild did not start")
	}
	c.stop(200 * time.Millisecond)
	if !c.exited() {
		t.Fatal("child not reaped after stop")
	}
	// The grandchild was killed with the group (it may linger as a zombie
	// of init for a moment: signal 0 fails once it is reaped).
	deadline = time.Now().Add(10 * time.Second)
	for syscall.Kill(grandchild, 0) == nil {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(grandchild), "stat"))
			if strings.Contains(string(b), ") Z ") {
				break // a zombie: dead, waiting for its new parent to reap it
			}
			t.Fatalf("grandchild %d still running after stop", grandchild)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func writeScript(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}
