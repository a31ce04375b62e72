package dataplane

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// xdsGate is a TCP forwarder in front of weftd's xDS port that holds
// every connection, without a byte passed either way, until it is
// opened: a proxy behind it is connected but has no configuration.
type xdsGate struct {
	Addr string

	ln     net.Listener
	open   chan struct{}
	once   sync.Once
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

func startXDSGate(t *testing.T, target string) *xdsGate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &xdsGate{Addr: ln.Addr().String(), ln: ln, open: make(chan struct{})}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !g.track(c) {
				return
			}
			go func() {
				<-g.open
				up, err := net.Dial("tcp", target)
				if err != nil {
					c.Close()
					return
				}
				if !g.track(up) {
					return
				}
				go func() { io.Copy(up, c); up.Close() }()
				io.Copy(c, up)
				c.Close()
			}()
		}
	}()
	t.Cleanup(g.close)
	return g
}

func (g *xdsGate) track(c net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		c.Close()
		return false
	}
	g.conns = append(g.conns, c)
	return true
}

// Open lets held and later connections through to the target.
func (g *xdsGate) Open() { g.once.Do(func() { close(g.open) }) }

func (g *xdsGate) close() {
	g.ln.Close()
	g.Open()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	for _, c := range g.conns {
		c.Close()
	}
}

// xdsReady returns the status code and body of a readiness URL.
func xdsReady(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// TestXDSReadiness starts a proxy whose xDS stream is held by a gate:
// /healthz/ready (and the admin /ready) say 503 PRE_INITIALIZING while it
// has no configuration, and 200 LIVE once the gate lets weftd's answer
// through.
func TestXDSReadiness(t *testing.T) {
	m := NewMesh(t)
	echo := m.AddService("echo", "http", "HTTP")
	m.AddWorkload(echo, "v1", BackendHTTP)
	gate := startXDSGate(t, m.XDS)
	p := m.StartProxy(ProxyOptions{Name: "late", App: "late", Version: "v1", ServiceAccount: "late",
		XDSAddress: gate.Addr, NoWait: true})
	// The proxy is running (its admin port answers) but has no config.
	var code int
	var body string
	eventually(t, "the proxy's admin port", func() error {
		resp, err := http.Get("http://" + p.AdminAddr + "/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	for _, u := range []string{"http://" + p.ReadyAddr + "/healthz/ready", "http://" + p.AdminAddr + "/ready"} {
		if code, body = xdsReady(t, u); code != http.StatusServiceUnavailable || body != "PRE_INITIALIZING" {
			t.Errorf("GET %s before any config: %d %q, want 503 PRE_INITIALIZING", u, code, body)
		}
	}
	if c := p.AdminGet(t, "/config_dump"); strings.Contains(c, echo.Host) {
		t.Errorf("config_dump before any config already holds %s", echo.Host)
	}
	gate.Open()
	eventually(t, "readiness after the first config", func() error {
		if code, body = xdsReady(t, "http://"+p.ReadyAddr+"/healthz/ready"); code != 200 || body != "LIVE" {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})
	m.Sync()
	if r := p.Get(t, echo.URL("/ready")); r.Status != 200 || r.Echo == nil {
		t.Errorf("request once ready: %d %q", r.Status, r.Body)
	}
}

// TestXDSWeftdRestart kills weftd: the proxies keep serving their last
// configuration; weftd restarted on the same port, they reconnect and a
// change made after the restart reaches them.
func TestXDSWeftdRestart(t *testing.T) {
	m := NewMesh(t)
	echo := m.AddService("echo", "http", "HTTP")
	m.AddWorkload(echo, "v1", BackendHTTP)
	client := m.StartClient("client")
	if r := client.Get(t, echo.URL("/before")); r.Status != 200 {
		t.Fatalf("before: %d %q", r.Status, r.Body)
	}

	m.weftd.stop()
	eventually(t, "the proxy to notice weftd is gone", func() error {
		if n := extraStat(t, client, "xds.connected"); n != 0 {
			return fmt.Errorf("xds.connected = %d", n)
		}
		return nil
	})
	for i := range 10 {
		if r := client.Get(t, echo.URL(fmt.Sprintf("/without-weftd/%d", i))); r.Status != 200 || r.Echo == nil {
			t.Fatalf("request %d without weftd: %d %q", i, r.Status, r.Body)
		}
	}
	if code, body := xdsReady(t, "http://"+client.ReadyAddr+"/healthz/ready"); code != 200 {
		t.Errorf("readiness without weftd: %d %q, want still ready", code, body)
	}

	extraRestartWeftd(m)
	m.Apply("echo-vs.yaml", VirtualServiceYAML("echo", fmt.Sprintf(`hosts: [%[1]s]
http:
- headers: {request: {set: {x-after-restart: "yes"}}}
  route: [{destination: {host: %[1]s}}]
`, echo.Host)))
	m.Sync()
	if n := extraStat(t, client, "xds.connected"); n != 1 {
		t.Errorf("xds.connected = %d after weftd restarted, want 1", n)
	}
	r := client.Get(t, echo.URL("/after"))
	if r.Echo == nil || r.Echo.Header.Get("X-After-Restart") != "yes" {
		t.Errorf("after the restart: %d %q, want the new VirtualService's header", r.Status, r.Body)
	}
}

// xdsSyncz is weftd's /debug/syncz for one proxy.
func xdsSyncz(t *testing.T, m *Mesh, id string) (syncStatus, bool) {
	t.Helper()
	var status []syncStatus
	m.getJSON("/debug/syncz", &status)
	for _, s := range status {
		if s.Proxy.ID == id {
			return s, true
		}
	}
	return syncStatus{}, false
}

// TestXDSNack gives a running sidecar a Sidecar resource whose ingress
// binds a port another process holds: the proxy rejects the listeners,
// weftd shows LDS NACKED with the proxy's reason in /debug/syncz, the
// proxy keeps serving its previous configuration, and once the Sidecar
// is removed the proxy ACKs again.
func TestXDSNack(t *testing.T) {
	m := NewMesh(t)
	echo := m.AddService("echo", "http", "HTTP")
	m.AddWorkload(echo, "v1", BackendHTTP)
	client := m.StartClient("client")
	busy, err := net.Listen("tcp", net.JoinHostPort(client.Address, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port
	m.Apply("client-sidecar.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client, namespace: %s}
spec:
  workloadSelector: {labels: {app: client}}
  ingress:
  - port: {number: %d, name: http, protocol: HTTP}
    bind: %s
    captureMode: NONE
    defaultEndpoint: 127.0.0.1:9
`, Namespace, port, client.Address))
	var nack string
	eventually(t, "weftd to show the proxy's NACK", func() error {
		s, ok := xdsSyncz(t, m, client.ID)
		if !ok {
			return fmt.Errorf("proxy %s not in /debug/syncz", client.ID)
		}
		for _, ty := range s.Types {
			if ty.State == "NACKED" {
				if ty.Type != "lds" && !strings.HasSuffix(ty.Type, "Listener") {
					return fmt.Errorf("%s NACKED, want the listeners", ty.Type)
				}
				if ty.LastNACK != nil {
					nack = ty.LastNACK.Message
				}
				return nil
			}
		}
		return fmt.Errorf("no type NACKED: %+v", s.Types)
	})
	if !strings.Contains(nack, fmt.Sprint(port)) {
		t.Errorf("NACK message %q does not name the port %d it could not bind", nack, port)
	}
	if n := extraStat(t, client, "xds.Listener.update_rejected"); n < 1 {
		t.Errorf("proxy stat xds.Listener.update_rejected = %d, want ≥ 1", n)
	}
	if r := client.Get(t, echo.URL("/after-nack")); r.Status != 200 || r.Echo == nil {
		t.Errorf("request after the NACK: %d %q, want the previous configuration serving", r.Status, r.Body)
	}
	m.Delete("client-sidecar.yaml")
	m.Sync() // fails the test if the proxy still NACKs
}

// xdsTrySync is [Mesh.Sync] that returns what is still not synced
// after timeout ("" when every proxy has ACKed the model version of the
// last Apply) instead of failing the test.
func xdsTrySync(t *testing.T, m *Mesh, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var status []syncStatus
		m.getJSON("/debug/syncz", &status)
		var waiting []string
		for _, s := range status {
			if s.ModelVersion < m.version {
				waiting = append(waiting, fmt.Sprintf("%s: model version %d", s.Proxy.ID, s.ModelVersion))
			}
			for _, ty := range s.Types {
				if ty.State != "SYNCED" && ty.State != "NOT SENT" {
					waiting = append(waiting, s.Proxy.ID+": "+ty.Type+" "+ty.State)
				}
			}
		}
		if len(waiting) == 0 || len(status) == 0 {
			return strings.Join(waiting, "; ")
		}
		if time.Now().After(deadline) {
			return strings.Join(waiting, "; ")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// xdsDump is a proxy's /config_dump reduced to comparable content: every
// listener, cluster, route configuration and load assignment by name, as
// JSON without versions and timestamps.
func xdsDump(t *testing.T, p *Proxy) map[string]string {
	t.Helper()
	var dump struct {
		Configs []map[string]json.RawMessage `json:"configs"`
	}
	if err := json.Unmarshal([]byte(p.AdminGet(t, "/config_dump")), &dump); err != nil {
		t.Fatalf("config_dump of %s: %v", p.Name, err)
	}
	out := map[string]string{}
	add := func(kind string, resource json.RawMessage) {
		var named struct {
			Name        string `json:"name"`
			ClusterName string `json:"clusterName"`
		}
		json.Unmarshal(resource, &named)
		name := named.Name
		if name == "" {
			name = named.ClusterName
		}
		out[kind+" "+name] = string(resource)
	}
	for _, c := range dump.Configs {
		var typ string
		json.Unmarshal(c["@type"], &typ)
		switch {
		case strings.HasSuffix(typ, "ClustersConfigDump"):
			var d struct {
				Clusters []struct {
					Cluster json.RawMessage `json:"cluster"`
				} `json:"dynamicActiveClusters"`
			}
			json.Unmarshal(xdsMustMarshal(c), &d)
			for _, x := range d.Clusters {
				add("cluster", x.Cluster)
			}
		case strings.HasSuffix(typ, "ListenersConfigDump"):
			var d struct {
				Listeners []struct {
					ActiveState struct {
						Listener json.RawMessage `json:"listener"`
					} `json:"activeState"`
				} `json:"dynamicListeners"`
			}
			json.Unmarshal(xdsMustMarshal(c), &d)
			for _, x := range d.Listeners {
				add("listener", x.ActiveState.Listener)
			}
		case strings.HasSuffix(typ, "RoutesConfigDump"):
			var d struct {
				Routes []struct {
					RouteConfig json.RawMessage `json:"routeConfig"`
				} `json:"dynamicRouteConfigs"`
			}
			json.Unmarshal(xdsMustMarshal(c), &d)
			for _, x := range d.Routes {
				add("route", x.RouteConfig)
			}
		case strings.HasSuffix(typ, "EndpointsConfigDump"):
			var d struct {
				Endpoints []struct {
					EndpointConfig json.RawMessage `json:"endpointConfig"`
				} `json:"dynamicEndpointConfigs"`
			}
			json.Unmarshal(xdsMustMarshal(c), &d)
			for _, x := range d.Endpoints {
				add("endpoints", x.EndpointConfig)
			}
		}
	}
	return out
}

func xdsMustMarshal(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// xdsDiff lists the keys whose content differs between two dumps.
func xdsDiff(a, b map[string]string) []string {
	var diff []string
	for k, v := range a {
		if b[k] != v {
			diff = append(diff, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			diff = append(diff, k)
		}
	}
	sort.Strings(diff)
	return diff
}

// TestXDSDeltaSameConfig runs two client sidecars of the same workload
// identity, one on state-of-the-world and one on delta xDS: their
// /config_dump content is the same, before and after a change.
func TestXDSDeltaSameConfig(t *testing.T) {
	m := NewMesh(t)
	echo := m.AddService("echo", "http", "HTTP")
	m.AddWorkload(echo, "v1", BackendHTTP)
	m.AddWorkload(echo, "v2", BackendHTTP)
	tcp := m.AddService("tcpecho", "tcp", "TCP")
	m.AddWorkload(tcp, "v1", BackendTCP)
	sotw := m.StartProxy(ProxyOptions{Name: "client", App: "client", Version: "v1", ServiceAccount: "client"})
	delta := m.StartProxy(ProxyOptions{Name: "client", App: "client", Version: "v1", ServiceAccount: "client", Delta: true})
	m.Sync()
	compare := func(stage string) {
		t.Helper()
		a, b := xdsDump(t, sotw), xdsDump(t, delta)
		if len(a) == 0 {
			t.Fatalf("%s: empty config_dump", stage)
		}
		if d := xdsDiff(a, b); len(d) > 0 {
			t.Errorf("%s: SotW and delta proxies differ in %v", stage, d)
			for _, k := range d {
				t.Logf("%s\n  sotw:  %s\n  delta: %s", k, a[k], b[k])
			}
		}
		if !reflect.DeepEqual(len(a), len(b)) {
			t.Errorf("%s: %d resources over SotW, %d over delta", stage, len(a), len(b))
		}
	}
	compare("initial")

	m.Apply("echo-dr.yaml", SubsetsYAML(echo, "loadBalancer: {simple: RANDOM}\n", "v1", "v2"))
	m.Apply("echo-vs.yaml", VirtualServiceYAML("echo", fmt.Sprintf("hosts: [%[1]s]\nhttp:\n- route: [{destination: {host: %[1]s, subset: v2}}]\n", echo.Host)))
	m.Delete("service-tcpecho.yaml")
	stale := xdsTrySync(t, m, 5*time.Second)
	subsetCluster := fmt.Sprintf("cluster outbound|%d|v2|%s", echo.Port, echo.Host)
	eventually(t, "both proxies to hold the change", func() error {
		for _, p := range []*Proxy{sotw, delta} {
			if _, ok := xdsDump(t, p)[subsetCluster]; !ok {
				return fmt.Errorf("%s has no %s", p.ID, subsetCluster)
			}
		}
		return nil
	})
	compare("after a change")
	for _, p := range []*Proxy{sotw, delta} {
		if r := p.Get(t, echo.URL("/delta")); r.Echo == nil || r.Echo.Instance != "echo-v2" {
			t.Errorf("%s: %d %q, want echo-v2 (the new route)", p.ID, r.Status, r.Body)
		}
	}
	t.Run("weftd shows every proxy SYNCED", func(t *testing.T) {
		// SotW stream N and delta stream N are different streams
		// (go-control-plane numbers each kind from 1).
		if stale != "" {
			t.Errorf("not synced: %s", stale)
		}
	})
}
