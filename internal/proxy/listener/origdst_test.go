package listener

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/router"
	"github.com/weftmesh/weft/internal/proxy/upstream"
	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

// netns is a throwaway network namespace with iptables REDIRECT rules.
type netns struct{ name string }

func newNetns(t *testing.T) *netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces and iptables")
	}
	for _, bin := range []string{"ip", "iptables", "ip6tables"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s missing in CI", bin)
			}
			t.Skipf("%s not installed", bin)
		}
	}
	n := &netns{name: fmt.Sprintf("weft-od-%d", os.Getpid())}
	exec.Command("ip", "netns", "del", n.name).Run()
	n.run(t, "ip", "netns", "add", n.name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.name).Run() })
	n.exec(t, "ip", "link", "set", "lo", "up")
	n.exec(t, "ip", "addr", "add", "10.1.2.3/32", "dev", "lo")
	n.exec(t, "ip", "addr", "add", "fd00::3/128", "dev", "lo", "nodad")
	return n
}

func (n *netns) run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

func (n *netns) exec(t *testing.T, args ...string) {
	n.run(t, append([]string{"ip", "netns", "exec", n.name}, args...)...)
}

// do runs f on an OS thread switched into the namespace; sockets created
// there stay in it.
func (n *netns) do(f func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := os.Open("/run/netns/" + n.name)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := f()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err == nil {
		runtime.UnlockOSThread() // otherwise the thread is discarded
	}
	return ferr
}

func (n *netns) listen(network, addr string) (ln net.Listener, err error) {
	err2 := n.do(func() error { ln, err = net.Listen(network, addr); return err })
	if err == nil {
		err = err2
	}
	return ln, err
}

func (n *netns) dial(addr string) (c net.Conn, err error) {
	n.do(func() error { c, err = net.DialTimeout("tcp", addr, 5*time.Second); return err })
	return c, err
}

// staticResolver serves fixed route tables and clusters.
type staticResolver struct {
	routes   map[string]*router.Table
	clusters *upstream.Set
}

func (r *staticResolver) RouteTable(name string) *router.Table  { return r.routes[name] }
func (r *staticResolver) Cluster(name string) *upstream.Cluster { return r.clusters.Get(name) }

// TestOriginalDstDispatch intercepts connections with iptables REDIRECT
// inside a network namespace, like an Istio sidecar: the outbound
// listener on 15001 (use_original_dst) hands an HTTP connection for
// 10.1.2.3:9080 (IPv4) and [fd00::3]:9080 (IPv6) to the unbound 0.0.0.0_9080
// listener, other ports fall through to PassthroughCluster, and the
// inbound listener on 15006 picks its filter chain by original
// destination port.
func TestOriginalDstDispatch(t *testing.T) {
	ns := newNetns(t)
	for _, ipt := range []string{"iptables", "ip6tables"} {
		ns.exec(t, ipt, "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "--dport", "9080", "-j", "REDIRECT", "--to-ports", "15001")
		ns.exec(t, ipt, "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "--dport", "7777", "-j", "REDIRECT", "--to-ports", "15001")
		ns.exec(t, ipt, "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "--dport", "9081", "-j", "REDIRECT", "--to-ports", "15006")
	}
	// The upstream app lives in the root namespace (the proxy dials from there).
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app %s %s", r.Host, r.URL.Path)
	}))
	defer app.Close()
	appAddr := strings.TrimPrefix(app.URL, "http://")
	clusters, commit, err := upstream.Build(map[string]*clusterv3.Cluster{
		"outbound|9080||reviews": xdstest.StaticCluster("outbound|9080||reviews", appAddr),
		"inbound|9081||":         xdstest.StaticCluster("inbound|9081||", appAddr),
		"PassthroughCluster": {Name: "PassthroughCluster", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
			LbPolicy: clusterv3.Cluster_CLUSTER_PROVIDED, ConnectTimeout: durationpb.New(time.Second)},
	}, map[string]*endpointv3.ClusterLoadAssignment{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	commit()
	rt, _ := router.Compile(xdstest.RouteConfig("9080", "outbound|9080||reviews"))
	rtIn, _ := router.Compile(xdstest.RouteConfig("inbound|9081", "inbound|9081||"))
	res := &staticResolver{routes: map[string]*router.Table{"9080": rt, "inbound|9081": rtIn}, clusters: clusters}

	virtualOutbound := xdstest.TCPListener("virtualOutbound", "0.0.0.0:15001", "PassthroughCluster")
	virtualOutbound.UseOriginalDst = wrapperspb.Bool(true)
	http9080 := xdstest.HTTPListener("0.0.0.0_9080", "0.0.0.0:9080", xdstest.HCM("outbound_0.0.0.0_9080", "9080"))
	http9080.BindToPort = wrapperspb.Bool(false)
	inbound := xdstest.TCPListener("virtualInbound", "0.0.0.0:15006", "PassthroughCluster")
	inbound.ListenerFilters = []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.original_dst"}, {Name: "envoy.filters.listener.http_inspector"}}
	inHTTP := xdstest.HTTPListener("x", "0.0.0.0:1", xdstest.HCM("inbound_0.0.0.0_9081", "inbound|9081")).FilterChains[0]
	inHTTP.Name = "0.0.0.0_9081"
	inHTTP.FilterChainMatch = &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(9081), ApplicationProtocols: []string{"http/1.1", "h2c"}}
	inbound.FilterChains = append([]*listenerv3.FilterChain{inHTTP}, inbound.FilterChains...)
	var compiled []*Listener
	for _, l := range []*listenerv3.Listener{virtualOutbound, http9080, inbound} {
		c, err := Compile(l, Deps{Resolver: res})
		if err != nil {
			t.Fatal(err)
		}
		compiled = append(compiled, c)
	}
	m := NewManager(res, slog.New(slog.DiscardHandler))
	m.Listen = func(network, addr string) (net.Listener, error) {
		// Bind dual-stack inside the namespace so IPv6 is intercepted too.
		if strings.HasPrefix(addr, "0.0.0.0:") {
			addr = "[::]:" + strings.TrimPrefix(addr, "0.0.0.0:")
		}
		return ns.listen(network, addr)
	}
	if err := m.Apply(compiled); err != nil {
		t.Fatal(err)
	}
	defer m.Stop(t.Context())

	httpVia := func(target string) string {
		t.Helper()
		c, err := ns.dial(target)
		if err != nil {
			t.Fatalf("dial %s: %v", target, err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET /p HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		b, _ := io.ReadAll(resp.Body)
		return fmt.Sprint(resp.StatusCode, " ", string(b))
	}
	if got := httpVia("10.1.2.3:9080"); got != "200 app reviews:9080 /p" {
		t.Errorf("IPv4 outbound via 15001: %q", got)
	}
	if got := httpVia("[fd00::3]:9080"); got != "200 app reviews:9080 /p" {
		t.Errorf("IPv6 outbound via 15001: %q", got)
	}
	if got := httpVia("10.1.2.3:9081"); got != "200 app reviews:9080 /p" {
		t.Errorf("inbound via 15006, chain by destination port: %q", got)
	}
	if m.TCP.CxTotal.Load() != 0 {
		t.Errorf("HTTP traffic went through tcp_proxy (%d connections)", m.TCP.CxTotal.Load())
	}
	// A port without its own listener falls through to virtualOutbound's
	// tcp_proxy to PassthroughCluster, which dials the original
	// destination (absent from the proxy's namespace).
	c, err := ns.dial("10.1.2.3:7777")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for m.TCP.CxTotal.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if m.TCP.CxTotal.Load() != 1 {
		t.Errorf("passthrough: %d tcp_proxy connections, want 1", m.TCP.CxTotal.Load())
	}
}
