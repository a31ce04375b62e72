// Package e2e holds end-to-end tests that run Weft's binaries as real
// processes on loopback.
package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildBinary compiles ./cmd/NAME into a temporary directory.
func buildBinary(t *testing.T, name string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found: cannot build " + name)
	}
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command(goBin, "build", "-o", out, "github.com/weftmesh/weft/cmd/"+name)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, b)
	}
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	return freeLoopbackPort(t)
}

type debugConfig struct {
	Version uint64 `json:"version"`
	Objects []struct {
		Kind        string          `json:"kind"`
		Namespace   string          `json:"namespace"`
		Name        string          `json:"name"`
		Origin      string          `json:"origin"`
		Spec        json.RawMessage `json:"spec"`
		Diagnostics []string        `json:"diagnostics"`
	} `json:"objects"`
	Diagnostics []struct {
		Message string `json:"message"`
		Field   string `json:"field"`
		Origin  struct {
			File string `json:"file"`
			Line int    `json:"line"`
		} `json:"origin"`
	} `json:"diagnostics"`
}

func getConfig(t *testing.T, admin string) debugConfig {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/debug/config")
	if err != nil {
		t.Fatalf("GET /debug/config: %v", err)
	}
	defer resp.Body.Close()
	var dc debugConfig
	if err := json.NewDecoder(resp.Body).Decode(&dc); err != nil {
		t.Fatalf("decode /debug/config: %v", err)
	}
	return dc
}

// waitFor polls cond every 20 ms until it holds or limit passes; it returns
// how long that took. The limit is a failure bound, not a measurement.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

const reviewsVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: %s}
`

// TestWeftdServesAndWatchesConfigDir runs the weftd binary on a copy of
// examples/, then edits, breaks and repairs a file, and stops it with
// SIGTERM.
func TestWeftdServesAndWatchesConfigDir(t *testing.T) {
	bin := buildBinary(t, "weftd")
	dir := t.TempDir()
	examples, err := filepath.Abs("../../examples")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(dir, os.DirFS(examples)); err != nil {
		t.Fatal(err)
	}
	vsFile := filepath.Join(dir, "reviews-vs.yaml")
	if err := os.WriteFile(vsFile, []byte(fmt.Sprintf(reviewsVS, "v1")), 0o644); err != nil {
		t.Fatal(err)
	}

	adminPort, xdsPort := freePort(t), freePort(t)
	admin := fmt.Sprintf("127.0.0.1:%d", adminPort)
	cmd := exec.Command(bin, "--config-dir", dir, "--listen-address", "127.0.0.1",
		"--admin-port", fmt.Sprint(adminPort), "--xds-port", fmt.Sprint(xdsPort),
		"--secure-xds-port", "0", "--ca-dir", t.TempDir())
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("weftd logs:\n%s", logs.String())
		}
	}()

	waitFor(t, 10*time.Second, "weftd /healthz", func() bool {
		resp, err := http.Get("http://" + admin + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	find := func(dc debugConfig, kind, name string) (int, bool) {
		for i, o := range dc.Objects {
			if o.Kind == kind && o.Name == name {
				return i, true
			}
		}
		return -1, false
	}
	dc := getConfig(t, admin)
	for _, want := range [][2]string{{"ServiceEntry", "reviews"}, {"WorkloadEntry", "reviews-v3"}, {"Gateway", "bookinfo-gateway"}, {"VirtualService", "bookinfo"}, {"DestinationRule", "reviews"}, {"VirtualService", "reviews"}} {
		if _, ok := find(dc, want[0], want[1]); !ok {
			t.Errorf("/debug/config lacks %s %s", want[0], want[1])
		}
	}

	// An edit shows up.
	subset := func(dc debugConfig) string {
		i, ok := find(dc, "VirtualService", "reviews")
		if !ok {
			return ""
		}
		var spec struct {
			HTTP []struct {
				Route []struct {
					Destination struct{ Subset string } `json:"destination"`
				} `json:"route"`
			} `json:"http"`
		}
		json.Unmarshal(dc.Objects[i].Spec, &spec)
		if len(spec.HTTP) == 0 || len(spec.HTTP[0].Route) == 0 {
			return ""
		}
		return spec.HTTP[0].Route[0].Destination.Subset
	}
	if err := os.WriteFile(vsFile, []byte(fmt.Sprintf(reviewsVS, "v2")), 0o644); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, 10*time.Second, "the edit to reach /debug/config", func() bool { return subset(getConfig(t, admin)) == "v2" })
	t.Logf("edit visible in /debug/config after %s", took)

	// A broken edit is reported, and the last good version stays served.
	broken := strings.Replace(fmt.Sprintf(reviewsVS, "v3"), "hosts:", "hostz:", 1)
	if err := os.WriteFile(vsFile, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the broken edit to be reported", func() bool {
		dc := getConfig(t, admin)
		for _, d := range dc.Diagnostics {
			if strings.HasSuffix(d.Origin.File, "reviews-vs.yaml") && strings.Contains(d.Message+d.Field, "hostz") {
				return true
			}
		}
		return false
	})
	dc = getConfig(t, admin)
	if got := subset(dc); got != "v2" {
		t.Errorf("after a broken edit, served subset = %q, want the last good v2", got)
	}
	if i, ok := find(dc, "VirtualService", "reviews"); !ok || len(dc.Objects[i].Diagnostics) == 0 {
		t.Errorf("the served VirtualService reviews does not carry the broken edit's error")
	}

	// SIGTERM stops it cleanly.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("weftd exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("weftd still running 10 s after SIGTERM")
	}
}
