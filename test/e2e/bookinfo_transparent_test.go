package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireTransparent skips unless the test can create network namespaces
// and iptables rules (root with ip, iptables-restore and setpriv); in CI
// (CI=true, as root) a missing tool is a failure.
func requireTransparent(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a whole mesh in network namespaces; skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces and iptables (weft demo --transparent)")
	}
	for _, tool := range []string{"ip", "iptables-restore", "iptables-save", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s missing in CI", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
}

// startTransparentDemo runs `weft demo --transparent` on free host ports
// (weftd's admin API and the gateway are relayed to 127.0.0.1).
func startTransparentDemo(t *testing.T, bin string) *runningDemo {
	t.Helper()
	d := &runningDemo{t: t, bin: bin, out: &lockedBuffer{}, stateDir: t.TempDir(), ports: demoPorts(t), exited: make(chan struct{})}
	args := []string{filepath.Join(bin, "weft"), "demo", "--transparent", "--state-dir", d.stateDir, "--ready-timeout", "90s", "--stop-grace", "5s"}
	for name, p := range d.ports {
		args = append(args, "--"+name, strconv.Itoa(p))
	}
	d.launch(args)
	return d
}

// namespaces lists the network namespaces whose name starts with prefix.
func namespaces(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			names = append(names, f[0])
		}
	}
	return names
}

// natCounter returns the packet counter of a nat rule in namespace ns.
func natCounter(t *testing.T, ns, rule string) int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "iptables-save", "-c", "-t", "nat").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save in %s: %v\n%s", ns, err, out)
	}
	m := regexp.MustCompile(`(?m)^\[(\d+):\d+\] ` + regexp.QuoteMeta(rule) + `$`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("rule %q not in %s:\n%s", rule, ns, out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestBookinfoTransparent runs bookinfo with iptables interception: each
// workload in its own network namespace, apps calling http://reviews:9080
// without HTTP_PROXY, and checks the traffic tasks and the teardown.
func TestBookinfoTransparent(t *testing.T) {
	requireTransparent(t)
	bin := buildDemoBinaries(t)
	d := startTransparentDemo(t, bin)
	prefix := "weft" + strconv.Itoa(d.cmd.Process.Pid) + "-"
	if ns := namespaces(t, prefix); len(ns) != 10 { // infra and nine pods
		t.Fatalf("namespaces %s*: %v, want 10", prefix, ns)
	}

	t.Run("product page shows reviews of every version", func(t *testing.T) {
		p := d.productPage("")
		if p.status != http.StatusOK || !strings.Contains(p.body, "Book Reviews") || !strings.Contains(p.body, "Book Details") || strings.Contains(p.body, "unavailable") {
			t.Fatalf("status %d, body:\n%.2000s", p.status, p.body)
		}
		counts := d.countStars("", 45) // missing a version: p < 1e-7
		if counts["none"] == 0 || counts["black"] == 0 || counts["red"] == 0 {
			t.Fatalf("reviews versions seen: %v, want v1, v2 and v3", counts)
		}
		// The traffic went through iptables: productpage's outbound calls
		// were redirected to 15001, reviews' inbound requests to 15006.
		if n := natCounter(t, prefix+"productpage-v1", "-A ISTIO_OUTPUT -j ISTIO_REDIRECT"); n == 0 {
			t.Error("productpage: no outbound connection was redirected to the sidecar")
		}
		for _, v := range []string{"v1", "v2", "v3"} {
			if n := natCounter(t, prefix+"reviews-"+v, "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT"); n == 0 {
				t.Errorf("reviews-%s: no inbound connection was redirected to the sidecar", v)
			}
		}
	})

	t.Run("all traffic to v1", func(t *testing.T) {
		taskAllV1(t, d)
	})

	t.Run("jason to reviews v2", func(t *testing.T) {
		taskJasonV2(t, d)
	})

	t.Run("7s ratings delay for jason hits productpage's timeout", func(t *testing.T) {
		taskRatingsDelay(t, d)
	})

	t.Run("ratings abort for jason", func(t *testing.T) {
		taskRatingsAbort(t, d)
	})

	t.Run("shift 50/50 v1/v3 then all to v3", func(t *testing.T) {
		taskShift(t, d)
	})

	t.Run("0.5s reviews timeout with 2s ratings delay", func(t *testing.T) {
		taskRequestTimeout(t, d)
	})

	// The fortio workload's namespace: a client application with no
	// HTTP_PROXY whose connections iptables hands to its sidecar.
	fortioNS := prefix + "fortio"
	client := func(t *testing.T, url string, n, c int, match string) clientResult {
		return clientInNamespace(t, fortioNS, url, n, c, match)
	}

	t.Run("circuit breaker on httpbin", func(t *testing.T) {
		taskCircuitBreaker(t, d, client)
	})

	t.Run("mirror httpbin v1 to v2", func(t *testing.T) {
		taskMirror(t, d, client)
	})

	t.Run("stop leaves nothing behind", func(t *testing.T) {
		if err := syscall.Kill(-d.cmd.Process.Pid, syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		select {
		case <-d.exited:
		case <-time.After(60 * time.Second):
			t.Fatal("weft demo --transparent still running 60s after Ctrl-C")
		}
		if d.exitErr != nil || !strings.Contains(d.out.String(), "stopped; logs are in ") {
			t.Fatalf("exit %v, output:\n%s", d.exitErr, d.out.String())
		}
		if ns := namespaces(t, prefix); len(ns) > 0 {
			t.Errorf("namespaces left behind: %v", ns)
		}
		if dirs, _ := filepath.Glob("/etc/netns/" + prefix + "*"); len(dirs) > 0 {
			t.Errorf("/etc/netns directories left behind: %v", dirs)
		}
		assertFree(t, d.gateway, d.weftd)
	})
}

// TestTransparentDemoKilled checks that what a SIGKILLed transparent demo
// could not remove (namespaces, the processes in them, which dropped
// privileges and so lost their parent-death signal, and the binary copies)
// is swept by the next one.
func TestTransparentDemoKilled(t *testing.T) {
	requireTransparent(t)
	bin := buildDemoBinaries(t)
	d := startTransparentDemo(t, bin)
	pid := strconv.Itoa(d.cmd.Process.Pid)
	prefix := "weft" + pid + "-"
	var pids []string
	for _, ns := range namespaces(t, prefix) {
		out, _ := exec.Command("ip", "netns", "pids", ns).Output()
		pids = append(pids, strings.Fields(string(out))...)
	}
	if len(pids) < 18 { // weftd, gateway, 9 sidecars, 8 apps
		t.Fatalf("processes in the demo's namespaces: %v, want at least 18", pids)
	}
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d.exited
	if ns := namespaces(t, prefix); len(ns) != 10 {
		t.Fatalf("after SIGKILL: namespaces %v, want the 10 left behind", ns)
	}
	d2 := startTransparentDemo(t, bin)
	if !strings.Contains(d2.out.String(), "removed namespaces of a demo that did not stop") {
		t.Errorf("second demo did not report the sweep:\n%s", d2.out.String())
	}
	if ns := namespaces(t, prefix); len(ns) > 0 {
		t.Errorf("namespaces of the killed demo still there: %v", ns)
	}
	for _, p := range pids {
		// Killed processes stay as zombies until reaped by init; count only live ones.
		if st, err := os.ReadFile("/proc/" + p + "/stat"); err == nil && !strings.Contains(string(st), ") Z ") {
			t.Errorf("process %s of the killed demo still runs: %s", p, st)
		}
	}
	if dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "weft-demo-run-"+pid+"-*")); len(dirs) > 0 {
		t.Errorf("binary copies of the killed demo left behind: %v", dirs)
	}
	if p := d2.productPage(""); p.status != http.StatusOK {
		t.Errorf("second demo's product page: %d", p.status)
	}
}

// clientResult is what the helper client process reports.
type clientResult struct {
	Codes   map[string]int `json:"codes"`
	Matched int            `json:"matched"`
}

// clientInNamespace runs this test binary's TestHelperNamespaceClient
// inside network namespace ns (with its hosts file, as `ip netns exec`
// mounts it): n GETs of url over c connections, as an application with no
// proxy settings whose traffic iptables intercepts. It returns the status
// codes and how many bodies contained match.
func clientInNamespace(t *testing.T, ns, url string, n, c int, match string) clientResult {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestHelperNamespaceClient$", "-test.count=1")
	cmd.Env = append(os.Environ(), "WEFT_E2E_CLIENT_URL="+url, "WEFT_E2E_CLIENT_N="+strconv.Itoa(n),
		"WEFT_E2E_CLIENT_C="+strconv.Itoa(c), "WEFT_E2E_CLIENT_MATCH="+match)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client in %s: %v\n%s", ns, err, out)
	}
	i := strings.Index(string(out), "RESULT ")
	if i < 0 {
		t.Fatalf("client in %s printed no result:\n%s", ns, out)
	}
	var r clientResult
	line := strings.SplitN(string(out[i+len("RESULT "):]), "\n", 2)[0]
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("client in %s: %v in %q", ns, err, line)
	}
	return r
}

// TestHelperNamespaceClient is not a test on its own: clientInNamespace
// runs it inside a pod's network namespace.
func TestHelperNamespaceClient(t *testing.T) {
	url := os.Getenv("WEFT_E2E_CLIENT_URL")
	if url == "" {
		t.Skip("helper process of the transparent-mode tests")
	}
	n, _ := strconv.Atoi(os.Getenv("WEFT_E2E_CLIENT_N"))
	c, _ := strconv.Atoi(os.Getenv("WEFT_E2E_CLIENT_C"))
	match := os.Getenv("WEFT_E2E_CLIENT_MATCH")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, MaxConnsPerHost: c, MaxIdleConnsPerHost: c}}
	r := sendRequests(client, url, n, c, match)
	b, _ := json.Marshal(r)
	fmt.Printf("RESULT %s\n", b)
}
