package iptables

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary re-runs itself inside the pod namespaces as a small
// server or client; helperEnv selects the role.
const helperEnv = "WEFT_IPTABLES_HELPER"

func TestMain(m *testing.M) {
	switch role := os.Getenv(helperEnv); {
	case strings.HasPrefix(role, "serve:"):
		serve(strings.Split(strings.TrimPrefix(role, "serve:"), ","))
	case strings.HasPrefix(role, "dial:"):
		dial(strings.TrimPrefix(role, "dial:"))
	default:
		os.Exit(m.Run())
	}
}

// serve listens on name=addr pairs and answers every connection with
// "name original-destination", then exits when stdin closes.
func serve(pairs []string) {
	for _, pair := range pairs {
		name, addr, _ := strings.Cut(pair, "=")
		l, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "%s %s", name, originalDst(c))
				c.Close()
			}
		}()
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

func dial(addr string) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		fmt.Print("error: ", err)
		os.Exit(0)
	}
	b, _ := io.ReadAll(c)
	fmt.Print(string(b))
	os.Exit(0)
}

// originalDst reads SO_ORIGINAL_DST (IPv4 only: the test uses IPv4).
func originalDst(c net.Conn) string {
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return "?"
	}
	var out string
	raw.Control(func(fd uintptr) {
		m, err := unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, 80)
		if err != nil {
			out = "none"
			return
		}
		a := m.Multiaddr
		out = netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[4:8])), uint16(a[2])<<8|uint16(a[3])).String()
	})
	return out
}

type topo struct {
	t      *testing.T
	prefix string
	bin    string
}

func (tp *topo) run(args ...string) {
	tp.t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		tp.t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

func (tp *topo) ns(name string) string { return tp.prefix + name }

// exec runs argv inside namespace name.
func (tp *topo) exec(name string, args ...string) {
	tp.t.Helper()
	tp.run(append([]string{"ip", "netns", "exec", tp.ns(name)}, args...)...)
}

// startServer runs the serve helper in namespace name until the test ends.
func (tp *topo) startServer(name string, pairs ...string) {
	tp.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", tp.ns(name), tp.bin)
	cmd.Env = append(os.Environ(), helperEnv+"=serve:"+strings.Join(pairs, ","))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		tp.t.Fatal(err)
	}
	tp.t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		tp.t.Fatalf("server in %s: %q", name, line)
	}
}

// dial connects from namespace name, optionally as uid, and returns the answer.
func (tp *topo) dial(name string, uid int, addr string) string {
	tp.t.Helper()
	args := []string{"ip", "netns", "exec", tp.ns(name)}
	if uid != 0 {
		args = append(args, "setpriv", fmt.Sprintf("--reuid=%d", uid), fmt.Sprintf("--regid=%d", uid), "--clear-groups")
	}
	cmd := exec.Command(args[0], append(args[1:], tp.bin)...)
	cmd.Env = append(os.Environ(), helperEnv+"=dial:"+addr)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tp.t.Fatalf("dial %s from %s as %d: %v\n%s", addr, name, uid, err, out)
	}
	return string(out)
}

func newTopo(t *testing.T) *topo {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces and iptables")
	}
	for _, bin := range []string{"ip", "iptables-restore", "setpriv"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s missing in CI", bin)
			}
			t.Skipf("%s not installed", bin)
		}
	}
	// The helper runs as uid 1337 too: copy the test binary out of go's 0700 build dir.
	dir, err := os.MkdirTemp("", "weft-ipt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	self, _ := os.Executable()
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "helper")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	tp := &topo{t: t, prefix: fmt.Sprintf("weft-ipt%d-", os.Getpid()%100000), bin: bin}
	for _, n := range []string{"pod", "peer"} {
		exec.Command("ip", "netns", "del", tp.ns(n)).Run()
		tp.run("ip", "netns", "add", tp.ns(n))
		t.Cleanup(func() { exec.Command("ip", "netns", "del", tp.ns(n)).Run() })
		tp.exec(n, "ip", "link", "set", "lo", "up")
	}
	// One veth pair between the two namespaces: pod 10.201.0.1, peer 10.201.0.2.
	tp.exec("pod", "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", tp.ns("peer"))
	tp.exec("pod", "ip", "addr", "add", "10.201.0.1/24", "dev", "eth0")
	tp.exec("peer", "ip", "addr", "add", "10.201.0.2/24", "dev", "eth0")
	tp.exec("pod", "ip", "addr", "add", "fd00:201::1/64", "dev", "eth0", "nodad")
	tp.exec("peer", "ip", "addr", "add", "fd00:201::2/64", "dev", "eth0", "nodad")
	tp.exec("pod", "ip", "link", "set", "eth0", "up")
	tp.exec("peer", "ip", "link", "set", "eth0", "up")
	return tp
}

// TestApplyInNamespace applies the rules in a pod namespace and checks
// where real connections land: the app's outbound traffic on 15001 with its
// original destination, the proxy's (uid 1337) traffic directly at its
// destination, inbound traffic on 15006 except excluded ports, and
// loopback traffic as Istio treats it.
func TestApplyInNamespace(t *testing.T) {
	tp := newTopo(t)
	c := Default()
	c.ExcludeOutboundCIDRs = []netip.Prefix{netip.MustParsePrefix("10.201.0.3/32")}
	cmd := exec.Command("ip", "netns", "exec", tp.ns("pod"), os.Args[0], "-test.run=^TestApplyHelper$")
	cmd.Env = append(os.Environ(), "WEFT_IPTABLES_APPLY=1")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("apply in namespace: %v\n%s", err, out)
	}
	// Applying twice fails clearly (the chains exist) instead of duplicating rules.
	cmd = exec.Command("ip", "netns", "exec", tp.ns("pod"), os.Args[0], "-test.run=^TestApplyHelper$", "-test.v")
	cmd.Env = append(os.Environ(), "WEFT_IPTABLES_APPLY=1")
	if out, _ := cmd.CombinedOutput(); !strings.Contains(string(out), "iptables-restore") {
		t.Errorf("second apply: want an iptables-restore error, got\n%s", out)
	}

	tp.startServer("pod", "outbound=0.0.0.0:15001", "inbound=0.0.0.0:15006", "ready=0.0.0.0:15021", "app=127.0.0.1:9080")
	tp.startServer("peer", "peer=0.0.0.0:9080")

	cases := []struct {
		from string
		uid  int
		addr string
		want string
	}{
		{"pod", 0, "10.201.0.2:9080", "outbound 10.201.0.2:9080"},    // app → peer: captured
		{"pod", 1000, "10.201.0.2:9080", "outbound 10.201.0.2:9080"}, // any app uid
		{"pod", 1337, "10.201.0.2:9080", "peer "},                    // the proxy leaves directly
		{"pod", 0, "127.0.0.1:9080", "app "},                         // localhost is never captured
		{"pod", 1337, "127.0.0.1:9080", "app "},                      // proxy → app (inbound cluster)
		{"pod", 1337, "10.201.0.1:9080", "inbound 10.201.0.1:9080"},  // proxy → own pod IP: inbound, as Istio
		{"peer", 0, "10.201.0.1:9080", "inbound 10.201.0.1:9080"},    // inbound: captured
		{"peer", 0, "10.201.0.1:15021", "ready "},                    // excluded inbound port
		{"pod", 0, "[fd00:201::2]:9080", "outbound "},                // IPv6 app → peer: captured
		{"pod", 1337, "[fd00:201::2]:9080", "peer "},                 // IPv6 proxy: direct
		{"peer", 0, "[fd00:201::1]:9080", "inbound "},                // IPv6 inbound: captured
	}
	for _, tc := range cases {
		got := tp.dial(tc.from, tc.uid, tc.addr)
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("from %s as uid %d to %s: got %q, want %q", tc.from, tc.uid, tc.addr, got, tc.want)
		}
	}
}

// TestApplyHelper applies Default rules in the namespace it is started in;
// it only runs under TestApplyInNamespace.
func TestApplyHelper(t *testing.T) {
	if os.Getenv("WEFT_IPTABLES_APPLY") == "" {
		t.Skip("run by TestApplyInNamespace inside a namespace")
	}
	c := Default()
	c.ExcludeOutboundCIDRs = []netip.Prefix{netip.MustParsePrefix("10.201.0.3/32")}
	has6, err := HasIPv6()
	if err != nil || !has6 {
		t.Fatalf("HasIPv6() = %v, %v in a namespace with fd00:201::1", has6, err)
	}
	if err := Apply(context.Background(), c, IPv4, IPv6); err != nil {
		t.Fatal(err)
	}
	fmt.Println("ok")
}
