package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// demoBlock is the address block the tests' demos use (workloads on
// 127.0.20.X, forward proxies on 127.0.21.X), away from a developer's
// `make demo` on the default 127.0.0.X.
const demoBlock = 20

// meshAddr is the address of the workload whose default address is
// 127.0.0.last; egressAddr is its forward proxy's.
func meshAddr(last int) string { return "127.0." + strconv.Itoa(demoBlock) + "." + strconv.Itoa(last) }
func egressAddr(last int) string {
	return "127.0." + strconv.Itoa(demoBlock+1) + "." + strconv.Itoa(last) + ":15001"
}

// demoBinaries are the commands `weft demo` runs, built side by side as
// `make build` does.
var demoBinaries = []string{"weft", "weftd", "weft-proxy", "bookinfo", "httpbin"}

// buildDemoBinaries compiles the demo's commands into one directory.
func buildDemoBinaries(t testing.TB) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found: cannot build the demo's binaries")
	}
	dir := t.TempDir()
	args := []string{"build", "-o", dir + "/"}
	for _, b := range demoBinaries {
		args = append(args, "github.com/weftmesh/weft/cmd/"+b)
	}
	if out, err := exec.Command(goBin, args...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// runningDemo is a `weft demo` process started by a test.
type runningDemo struct {
	t        testing.TB
	bin      string // directory of the binaries
	cmd      *exec.Cmd
	out      *lockedBuffer
	stateDir string
	weftd    string // admin address
	gateway  string // host:port
	ports    map[string]int
	exited   chan struct{}
	exitErr  error
}

// demoPorts picks free ports for everything the demo binds.
func demoPorts(t testing.TB) map[string]int {
	ports := map[string]int{}
	seen := map[int]bool{}
	for _, name := range []string{"gateway-port", "xds-port", "secure-xds-port", "weftd-port", "proxy-admin-port", "proxy-ready-port", "proxy-stats-port"} {
		for {
			p := freeLoopbackPort(t)
			// Keep clear of the workloads' own ports (9080, 8000, +10000).
			if !seen[p] && p != 9080 && p != 8000 && p != 19080 && p != 18000 {
				seen[p] = true
				ports[name] = p
				break
			}
		}
	}
	return ports
}

// startDemo runs `weft demo` on free ports and waits for its summary.
// The optional wrapper runs it (e.g. setpriv to drop privileges).
func startDemo(t testing.TB, bin string, wrapper ...string) *runningDemo {
	t.Helper()
	d := &runningDemo{t: t, bin: bin, out: &lockedBuffer{}, stateDir: t.TempDir(), ports: demoPorts(t), exited: make(chan struct{})}
	if len(wrapper) > 0 { // another user must be able to write there
		if err := os.Chmod(filepath.Dir(d.stateDir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d.stateDir, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	args := append(wrapper, filepath.Join(bin, "weft"), "demo", "--state-dir", d.stateDir, "--ready-timeout", "90s", "--address-block", strconv.Itoa(demoBlock))
	for name, p := range d.ports {
		args = append(args, "--"+name, strconv.Itoa(p))
	}
	d.launch(args)
	return d
}

// launch starts the weft demo command line args in its own process group
// (as a shell job: a terminal's Ctrl-C is SIGINT to the group), stops it
// at the end of the test, and waits until it reports the mesh ready.
func (d *runningDemo) launch(args []string) {
	t := d.t
	t.Helper()
	d.cmd = exec.Command(args[0], args[1:]...)
	d.cmd.Stdout = d.out
	d.cmd.Stderr = d.out
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.exitErr = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			d.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.exited:
			case <-time.After(30 * time.Second):
				d.cmd.Process.Kill()
			}
		}
		if t.Failed() {
			t.Logf("weft demo output:\n%s", d.out.String())
			dumpLogTails(t, filepath.Join(d.stateDir, "logs"))
		}
	})
	d.weftd = net.JoinHostPort("127.0.0.1", strconv.Itoa(d.ports["weftd-port"]))
	d.gateway = net.JoinHostPort("127.0.0.1", strconv.Itoa(d.ports["gateway-port"]))
	deadline := time.After(120 * time.Second)
	for !strings.Contains(d.out.String(), "The mesh is ready.") {
		select {
		case <-d.exited:
			t.Fatalf("%s exited early (%v):\n%s", strings.Join(args, " "), d.exitErr, d.out.String())
		case <-deadline:
			t.Fatalf("%s not ready after 120s:\n%s", strings.Join(args, " "), d.out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// weft runs the weft CLI against the demo's weftd.
func (d *runningDemo) weft(args ...string) (int, string) {
	d.t.Helper()
	if len(args) > 0 && (args[0] == "apply" || args[0] == "delete" || args[0] == "get") {
		args = append(args, "--weftd", d.weftd)
	}
	cmd := exec.Command(filepath.Join(d.bin, "weft"), args...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatalf("weft %v: %v", args, err)
	}
	return code, string(out)
}

// apply applies task files and waits until every proxy has the result.
func (d *runningDemo) apply(files ...string) {
	d.t.Helper()
	args := []string{"apply"}
	for _, f := range files {
		args = append(args, "-f", filepath.Join("../../examples/bookinfo/tasks", f))
	}
	if code, out := d.weft(args...); code != 0 {
		d.t.Fatalf("weft apply %v: exit %d\n%s", files, code, out)
	}
	d.waitSynced()
}

// waitSynced waits until every proxy has acknowledged the configuration of
// weftd's current model version.
func (d *runningDemo) waitSynced() {
	d.t.Helper()
	var version uint64
	getJSON(d.t, "http://"+d.weftd+"/debug/config", &struct {
		Version *uint64 `json:"version"`
	}{&version})
	waitUntil(d.t, 20*time.Second, fmt.Sprintf("all proxies synced to model version %d", version), func() bool {
		var status []struct {
			Proxy struct {
				ID string `json:"id"`
			} `json:"proxy"`
			ModelVersion uint64 `json:"modelVersion"`
			Types        []struct {
				State string `json:"state"`
			} `json:"types"`
		}
		getJSON(d.t, "http://"+d.weftd+"/debug/syncz", &status)
		if len(status) < 10 { // the gateway and nine sidecars
			return false
		}
		for _, s := range status {
			if s.ModelVersion < version {
				return false
			}
			for _, ty := range s.Types {
				if ty.State != "SYNCED" {
					return false
				}
			}
		}
		return true
	})
}

func getJSON(t testing.TB, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: decode: %v", url, err)
	}
}

// page is one product page view.
type page struct {
	status  int
	body    string
	elapsed time.Duration
}

// stars says which reviews version rendered the page: "none" (v1),
// "black" (v2) or "red" (v3).
func (p page) stars() string {
	switch {
	case strings.Contains(p.body, `color="black"`):
		return "black"
	case strings.Contains(p.body, `color="red"`):
		return "red"
	default:
		return "none"
	}
}

var pageClient = &http.Client{Timeout: 30 * time.Second}

// productPage fetches the product page through the gateway, signed in as
// user when set.
func (d *runningDemo) productPage(user string) page {
	d.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+d.gateway+"/productpage", nil)
	if user != "" {
		req.AddCookie(&http.Cookie{Name: "user", Value: user})
	}
	start := time.Now()
	resp, err := pageClient.Do(req)
	if err != nil {
		d.t.Fatalf("GET /productpage: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, body: string(body), elapsed: time.Since(start)}
}

// countStars fetches the page n times and counts each rendering.
func (d *runningDemo) countStars(user string, n int) map[string]int {
	d.t.Helper()
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		p := d.productPage(user)
		if p.status != http.StatusOK {
			d.t.Fatalf("request %d: status %d", i, p.status)
		}
		counts[p.stars()]++
	}
	return counts
}

// proxyStats returns the sum of istio_requests_total series of a proxy
// (by its workload address) whose labels include every one of want
// (`key="value"` strings).
func (d *runningDemo) requestsTotal(address string, want ...string) int {
	d.t.Helper()
	url := "http://" + net.JoinHostPort(address, strconv.Itoa(d.ports["proxy-stats-port"])) + "/stats/prometheus"
	resp, err := http.Get(url)
	if err != nil {
		d.t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	total := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "istio_requests_total{") {
			continue
		}
		for _, w := range want {
			if !strings.Contains(line, w) {
				continue next
			}
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			d.t.Fatalf("bad sample %q", line)
		}
		total += int(v)
	}
	return total
}

// logLines counts the lines of a child's log containing every one of want.
func (d *runningDemo) logLines(name string, want ...string) int {
	d.t.Helper()
	data, err := os.ReadFile(filepath.Join(d.stateDir, "logs", name+".log"))
	if err != nil {
		d.t.Fatal(err)
	}
	n := 0
next:
	for _, line := range strings.Split(string(data), "\n") {
		for _, w := range want {
			if !strings.Contains(line, w) {
				continue next
			}
		}
		n++
	}
	return n
}

// childPIDs lists running processes whose executable is in the demo's
// binary directory, other than weft itself.
func childPIDs(bin string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		argv0, _, _ := bytes.Cut(cmdline, []byte{0})
		if filepath.Dir(string(argv0)) == bin && filepath.Base(string(argv0)) != "weft" {
			pids = append(pids, pid)
		}
	}
	return pids
}

func dumpLogTails(t testing.TB, dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		data, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 8 {
			lines = lines[len(lines)-8:]
		}
		t.Logf("--- %s (tail)\n%s", e.Name(), strings.Join(lines, "\n"))
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
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

// waitUntil polls cond every 20 ms until it holds, failing after limit (a
// failure bound, not a measurement).
func waitUntil(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
