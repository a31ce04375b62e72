package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBookinfoDemoLifecycle checks how `weft demo` ends: Ctrl-C (SIGINT to
// its process group, as a terminal sends it) stops every child and exits
// 0; and if weft itself is killed with SIGKILL, its children die with it
// (the kernel's parent-death signal) instead of holding the ports.
func TestBookinfoDemoLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole mesh twice; skipped with -short")
	}
	bin := buildDemoBinaries(t)

	t.Run("Ctrl-C", func(t *testing.T) {
		d := startDemo(t, bin)
		if p := d.productPage(""); p.status != 200 || !strings.Contains(p.body, "Book Reviews") {
			t.Fatalf("product page: %d", p.status)
		}
		if err := syscall.Kill(-d.cmd.Process.Pid, syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		select {
		case <-d.exited:
		case <-time.After(30 * time.Second):
			t.Fatal("weft demo still running 30s after Ctrl-C")
		}
		if d.exitErr != nil || !strings.Contains(d.out.String(), "stopped; logs are in ") {
			t.Fatalf("exit %v, output:\n%s", d.exitErr, d.out.String())
		}
		if pids := childPIDs(bin); len(pids) > 0 {
			t.Fatalf("processes left behind: %v", pids)
		}
		assertFree(t, d.gateway, d.weftd, meshAddr(10)+":9080", meshAddr(31)+":19080")
	})

	t.Run("unprivileged", func(t *testing.T) {
		if os.Getuid() != 0 {
			t.Skip("already running unprivileged: the other demo tests show it works")
		}
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skip("running as root without setpriv: cannot drop privileges to check")
		}
		// The binaries must be reachable by another user.
		for dir := bin; dir != "/" && dir != os.TempDir(); dir = filepath.Dir(dir) {
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		d := startDemo(t, bin, setpriv, "--reuid=65534", "--regid=65534", "--clear-groups")
		if p := d.productPage(""); p.status != 200 || !strings.Contains(p.body, "Book Reviews") {
			t.Fatalf("product page as uid 65534: %d", p.status)
		}
		if err := syscall.Kill(-d.cmd.Process.Pid, syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		<-d.exited
		if d.exitErr != nil {
			t.Fatalf("exit %v:\n%s", d.exitErr, d.out.String())
		}
		if pids := childPIDs(bin); len(pids) > 0 {
			t.Fatalf("processes left behind: %v", pids)
		}
	})

	t.Run("weft killed", func(t *testing.T) {
		d := startDemo(t, bin)
		if err := d.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-d.exited
		waitFor(t, 10*time.Second, "the children to die with weft", func() bool { return len(childPIDs(bin)) == 0 })
		waitFor(t, 10*time.Second, "the ports to be free", func() bool {
			for _, a := range []string{d.gateway, d.weftd, meshAddr(10) + ":9080", meshAddr(31) + ":19080"} {
				l, err := net.Listen("tcp", a)
				if err != nil {
					return false
				}
				l.Close()
			}
			return true
		})
	})
}

func assertFree(t *testing.T, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Errorf("%s still in use: %v", a, err)
			continue
		}
		l.Close()
	}
}
