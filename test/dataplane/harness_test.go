package dataplane

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"gopkg.in/yaml.v3"
)

// Namespace is the namespace of every workload the harness declares.
const Namespace = "default"

// binDir, when set (go test ./test/dataplane -args -weft-bin DIR), names a
// directory holding prebuilt weftd and weft-proxy binaries to use instead
// of building them.
var binDir = flag.String("weft-bin", "", "directory with prebuilt weftd and weft-proxy (default: build them)")

// binaries are weftd and weft-proxy, built once per test binary on first
// use (see requireBinaries) and removed by TestMain.
var binaries struct {
	once sync.Once
	dir  string
	err  error
	skip string
}

// TestMain runs the tests, then removes the binaries built for them and
// the test CA's files.
func TestMain(m *testing.M) {
	code := m.Run()
	if binaries.dir != "" {
		os.RemoveAll(binaries.dir)
	}
	if testCA.ca != nil {
		os.RemoveAll(testCA.ca.dir)
	}
	os.Exit(code)
}

// requireBinaries builds cmd/weftd and cmd/weft-proxy into a temporary
// directory the first time a test needs them and returns that directory.
// Without a go command the test is skipped.
func requireBinaries(t *testing.T) string {
	t.Helper()
	binaries.once.Do(func() {
		if *binDir != "" {
			for _, name := range []string{"weftd", "weft-proxy"} {
				if _, err := os.Stat(filepath.Join(*binDir, name)); err != nil {
					binaries.err = fmt.Errorf("-weft-bin: %w", err)
				}
			}
			return
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			binaries.skip = "go command not found: cannot build weftd and weft-proxy"
			return
		}
		dir, err := os.MkdirTemp("", "weft-dataplane-bin-")
		if err != nil {
			binaries.err = err
			return
		}
		binaries.dir = dir
		cmd := exec.Command(goBin, "build", "-o", dir+string(os.PathSeparator),
			"github.com/weftmesh/weft/cmd/weftd", "github.com/weftmesh/weft/cmd/weft-proxy")
		if out, err := cmd.CombinedOutput(); err != nil {
			binaries.err = fmt.Errorf("go build weftd weft-proxy: %v\n%s", err, out)
		}
	})
	if binaries.skip != "" {
		t.Skip(binaries.skip)
	}
	if binaries.err != nil {
		t.Fatal(binaries.err)
	}
	if *binDir != "" {
		return *binDir
	}
	return binaries.dir
}

// Mesh is one test's mesh: a weftd process serving a temporary config
// directory, and the proxies and backends the test starts. Everything is
// stopped when the test ends; the processes' logs are printed if it failed.
// A Mesh is used from the test's goroutine only.
type Mesh struct {
	t *testing.T
	// ConfigDir is the directory of Istio YAML weftd serves and watches.
	ConfigDir string
	// Admin is weftd's admin address (host:port): /debug/config,
	// /debug/syncz, /api/v1/apply.
	Admin string
	// XDS is weftd's plaintext ADS address.
	XDS string

	bin      string
	prefix   string // "127.X.Y." of this mesh's addresses
	nextHost int
	weftd    *process
	proxies  []*Proxy
	services []*Service
	version  uint64 // model version that includes the last Apply
	admin    *http.Client
}

// NewMesh builds the binaries if needed, starts weftd on free ports with
// an empty config directory and the CA disabled, and waits for /healthz.
// The mesh's addresses are in a random 127.X.Y.0/24 block, so tests in
// other packages (and parallel tests) do not collide.
func NewMesh(t *testing.T) *Mesh {
	t.Helper()
	bin := requireBinaries(t)
	m := &Mesh{
		t:         t,
		ConfigDir: t.TempDir(),
		bin:       bin,
		prefix:    fmt.Sprintf("127.%d.%d.", 64+rand.IntN(60), 1+rand.IntN(250)),
		nextHost:  10,
		admin:     &http.Client{Timeout: 5 * time.Second},
	}
	m.Admin = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t, "127.0.0.1")))
	m.XDS = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t, "127.0.0.1")))
	m.weftd = m.startWeftd()
	return m
}

// startWeftd starts weftd on the mesh's ports and configuration directory
// and waits for /healthz.
func (m *Mesh) startWeftd() *process {
	m.t.Helper()
	_, adminPort, _ := net.SplitHostPort(m.Admin)
	_, xdsPort, _ := net.SplitHostPort(m.XDS)
	p := startProcess(m.t, "weftd", filepath.Join(m.bin, "weftd"),
		"--config-dir", m.ConfigDir, "--listen-address", "127.0.0.1",
		"--admin-port", adminPort, "--xds-port", xdsPort, "--secure-xds-port", "-1",
		"--ca-dir", m.t.TempDir(), "--debounce", "20ms", "--file-debounce", "20ms", "--shutdown-timeout", "2s")
	m.waitHTTP("weftd /healthz", "http://"+m.Admin+"/healthz", p)
	return p
}

// NewAddress returns an unused loopback address of this mesh (127.X.Y.N).
func (m *Mesh) NewAddress() string {
	m.t.Helper()
	if m.nextHost > 254 {
		m.t.Fatal("mesh: out of addresses in " + m.prefix + "0/24")
	}
	a := m.prefix + strconv.Itoa(m.nextHost)
	m.nextHost++
	return a
}

// Service is a mesh service declared by [Mesh.AddService]: a ServiceEntry
// (MESH_INTERNAL, STATIC) selecting its workloads by label app=Name.
type Service struct {
	// Name is the short name and the app label, e.g. "echo".
	Name string
	// Host is the fully qualified host, NAME.default.svc.cluster.local.
	Host string
	// Port is the service port, chosen free on the machine.
	Port int
	// PortName and Protocol are the ServiceEntry port's name and protocol
	// (Protocol "" leaves it unset: Istio sniffs unnamed ports).
	PortName, Protocol string
	// Workloads are the service's instances, in the order added.
	Workloads []*Workload
}

// HostPort is "Host:Port", the authority clients use.
func (s *Service) HostPort() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// URL is "http://Host:Port" + path.
func (s *Service) URL(path string) string { return "http://" + s.HostPort() + path }

// Workload is one instance of a service: a Go backend on the workload's
// address behind its own sidecar, which binds the service port on the same
// address (ADR 0007).
type Workload struct {
	// Name is SERVICE-VERSION; the backend reports it as its instance.
	Name    string
	Version string
	// Address is the workload's mesh address (its WorkloadEntry).
	Address string
	Service *Service
	Backend *Backend
	Sidecar *Proxy
}

// AddService declares a service: name (also its app label), port name and
// protocol ("HTTP", "HTTP2", "GRPC", "TCP", "TLS", or "" for none). Its
// YAML is written when workloads are added.
func (m *Mesh) AddService(name, portName, protocol string) *Service {
	m.t.Helper()
	s := &Service{
		Name: name, Host: name + "." + Namespace + ".svc.cluster.local",
		Port: freePort(m.t, "0.0.0.0"), PortName: portName, Protocol: protocol,
	}
	m.services = append(m.services, s)
	return s
}

// AddWorkload starts a backend of the given kind on a new address, writes
// the service's ServiceEntry, WorkloadEntries and Sidecars, starts the
// workload's sidecar and waits until it is ready and every proxy of the
// mesh has the new configuration.
func (m *Mesh) AddWorkload(s *Service, version string, kind BackendKind) *Workload {
	m.t.Helper()
	w := &Workload{Name: s.Name + "-" + version, Version: version, Address: m.NewAddress(), Service: s}
	w.Backend = StartBackend(m.t, kind, w.Name, w.Address)
	s.Workloads = append(s.Workloads, w)
	m.Apply("service-"+s.Name+".yaml", s.yaml())
	w.Sidecar = m.StartProxy(ProxyOptions{
		Name: w.Name, Address: w.Address, App: s.Name, Version: version, ServiceAccount: s.Name,
	})
	m.Sync()
	return w
}

// writeServiceEntry writes the service's ServiceEntry (MESH_INTERNAL,
// STATIC, selecting workloads labelled app: NAME).
func (s *Service) writeServiceEntry(b *strings.Builder) {
	proto := ""
	if s.Protocol != "" {
		proto = "\n    protocol: " + s.Protocol
	}
	fmt.Fprintf(b, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  hosts: [%[3]s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - number: %[4]d
    name: %[5]s%[6]s
  workloadSelector:
    labels: {app: %[1]s}
`, s.Name, Namespace, s.Host, s.Port, s.PortName, proto)
}

// yaml renders the service's ServiceEntry, its WorkloadEntries and one
// Sidecar per workload (ingress bound on the workload address, captureMode
// NONE, forwarding to the backend's port), as internal/demo does.
func (s *Service) yaml() string {
	var b strings.Builder
	s.writeServiceEntry(&b)
	ingressProto := ""
	if s.Protocol != "" {
		ingressProto = "\n      protocol: " + s.Protocol
	}
	for _, w := range s.Workloads {
		fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  address: %[3]s
  serviceAccount: %[4]s
  labels: {app: %[4]s, version: %[5]s}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  workloadSelector:
    labels: {app: %[4]s, version: %[5]s}
  ingress:
  - port:
      number: %[6]d
      name: %[7]s%[8]s
    bind: %[3]s
    captureMode: NONE
    defaultEndpoint: 0.0.0.0:%[9]d
`, w.Name, Namespace, w.Address, s.Name, w.Version, s.Port, s.PortName, ingressProto, w.Backend.Port)
	}
	return b.String()
}

// ProxyOptions describes a weft-proxy process to start.
type ProxyOptions struct {
	// Name is the workload name (WORKLOAD_NAME); required.
	Name string
	// Address is the instance IP (INSTANCE_IPS) where the proxy's admin,
	// ready, stats and forward-proxy ports listen; default a new one.
	Address string
	// App, Version and ServiceAccount become labels app and version and
	// the SERVICE_ACCOUNT; Labels adds more labels.
	App, Version, ServiceAccount string
	Labels                       map[string]string
	// Router makes it a gateway (node type router, namespace
	// istio-system unless Namespace is set) instead of a sidecar.
	Router    bool
	Namespace string
	// NoForwardProxy turns off the HTTP forward proxy a sidecar serves.
	NoForwardProxy bool
	// Delta selects incremental xDS.
	Delta bool
	// AccessLog writes the proxy's JSON access log to a file
	// (Proxy.AccessLog).
	AccessLog bool
	// Metadata adds node metadata (e.g. LOCALITY) to the harness's.
	Metadata map[string]string
	// Args are extra weft-proxy flags; flags override the bootstrap file.
	Args []string
	// XDSAddress replaces weftd's address (e.g. a gate in front of it).
	XDSAddress string
	// NoWait returns without waiting for /healthz/ready.
	NoWait bool
	// DrainTimeout replaces the harness's 500ms drainTimeout.
	DrainTimeout time.Duration
}

// Proxy is a running weft-proxy process.
type Proxy struct {
	// Name is the workload name; ID the xDS node id.
	Name, ID string
	// Address is the proxy's instance IP.
	Address string
	// AdminAddr, ReadyAddr and StatsAddr serve the admin API,
	// /healthz/ready and /stats/prometheus.
	AdminAddr, ReadyAddr, StatsAddr string
	// ForwardAddr is the HTTP forward proxy (HTTP_PROXY; CONNECT), empty
	// for a gateway.
	ForwardAddr string
	// AccessLog is the JSON access log file, if requested.
	AccessLog string

	proc       *process
	clientOnce sync.Once
	client     *http.Client
}

// StartProxy writes a bootstrap file for o, starts weft-proxy with it and
// waits for /healthz/ready (first complete configuration). Sidecars run
// with INTERCEPTION_MODE NONE, as in local mode.
func (m *Mesh) StartProxy(o ProxyOptions) *Proxy {
	m.t.Helper()
	if o.Address == "" {
		o.Address = m.NewAddress()
	}
	ns := o.Namespace
	if ns == "" {
		ns = Namespace
		if o.Router {
			ns = "istio-system"
		}
	}
	labels := map[string]string{}
	if o.App != "" {
		labels["app"] = o.App
	}
	if o.Version != "" {
		labels["version"] = o.Version
	}
	for k, v := range o.Labels {
		labels[k] = v
	}
	typ, meta := "sidecar", map[string]string{"INTERCEPTION_MODE": "NONE"}
	if o.Router {
		typ, meta = "router", map[string]string{}
	}
	for k, v := range o.Metadata {
		meta[k] = v
	}
	port := func() string { return net.JoinHostPort(o.Address, strconv.Itoa(freePort(m.t, o.Address))) }
	p := &Proxy{
		Name: o.Name, ID: fmt.Sprintf("%s~%s~%s.%s~%s.svc.cluster.local", typ, o.Address, o.Name, ns, ns),
		Address: o.Address, AdminAddr: port(), ReadyAddr: port(), StatsAddr: port(),
	}
	xds, drain := m.XDS, "500ms"
	if o.XDSAddress != "" {
		xds = o.XDSAddress
	}
	if o.DrainTimeout != 0 {
		drain = o.DrainTimeout.String()
	}
	boot := map[string]any{
		"xdsAddress": xds, "delta": o.Delta,
		"adminAddress": p.AdminAddr, "readyAddress": p.ReadyAddr, "statsAddress": p.StatsAddr,
		"drainTimeout": drain, "warmingTimeout": "5s",
		"node": map[string]any{
			"id": p.ID, "cluster": "Kubernetes", "namespace": ns, "workload": o.Name, "labels": labels,
			"serviceAccount": o.ServiceAccount, "instanceIPs": []string{o.Address}, "metadata": meta,
		},
	}
	if !o.Router && !o.NoForwardProxy {
		p.ForwardAddr = port()
		boot["forwardProxyAddress"] = p.ForwardAddr
	}
	dir := m.t.TempDir()
	if o.AccessLog {
		p.AccessLog = filepath.Join(dir, "access.log")
		boot["accessLog"] = p.AccessLog
	}
	b, err := json.MarshalIndent(boot, "", "  ")
	if err != nil {
		m.t.Fatal(err)
	}
	file := filepath.Join(dir, "bootstrap.json")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		m.t.Fatal(err)
	}
	p.proc = startProcess(m.t, "weft-proxy "+o.Name, filepath.Join(m.bin, "weft-proxy"), append([]string{"--bootstrap", file}, o.Args...)...)
	m.t.Cleanup(func() { // before the process stops (cleanups run last first)
		if p.client != nil {
			p.client.CloseIdleConnections()
		}
	})
	m.proxies = append(m.proxies, p)
	if !o.NoWait {
		m.waitHTTP("weft-proxy "+o.Name+" /healthz/ready", "http://"+p.ReadyAddr+"/healthz/ready", p.proc)
	}
	return p
}

// StartClient starts a client-only sidecar (no inbound listener) whose
// forward proxy the test sends traffic through, and waits until it has
// the mesh's current configuration.
func (m *Mesh) StartClient(name string) *Proxy {
	m.t.Helper()
	p := m.StartProxy(ProxyOptions{Name: name, App: name, Version: "v1", ServiceAccount: name})
	m.Sync()
	return p
}

// Apply writes yamlText to the config directory as file name (atomically,
// by rename), waits until weftd's model includes it and fails the test on
// an error reported for the file. It does not wait for proxies: call
// [Mesh.Sync] after the last Apply of a change. Writing unchanged content
// is a no-op.
func (m *Mesh) Apply(name, yamlText string) {
	m.t.Helper()
	path := filepath.Join(m.ConfigDir, name)
	if old, err := os.ReadFile(path); err == nil && string(old) == yamlText {
		return
	}
	objects := yamlObjects(m.t, yamlText)
	before := m.config().Version
	tmp := filepath.Join(m.ConfigDir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(yamlText), 0o644); err != nil {
		m.t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		m.t.Fatal(err)
	}
	m.waitModel("weftd to read "+name, before, name, objects)
}

// Delete removes file name from the config directory and waits until
// weftd's model no longer has its objects.
func (m *Mesh) Delete(name string) {
	m.t.Helper()
	before := m.config().Version
	if err := os.Remove(filepath.Join(m.ConfigDir, name)); err != nil {
		m.t.Fatal(err)
	}
	m.waitModel("weftd to drop "+name, before, name, nil)
}

// waitModel polls /debug/config until its version passes before and the
// objects from file are exactly want (kind/namespace/name).
func (m *Mesh) waitModel(what string, before uint64, file string, want []string) {
	m.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		dc := m.config()
		var errs []string
		for _, d := range dc.Diagnostics {
			if d.Severity != "warning" && sameFile(d.Origin.File, file) {
				errs = append(errs, fmt.Sprintf("%s:%d: %s %s/%s: %s: %s", d.Origin.File, d.Origin.Line, d.Kind, d.Namespace, d.Name, d.Field, d.Message))
			}
		}
		if len(errs) > 0 {
			m.t.Fatalf("weftd rejected %s:\n%s", file, strings.Join(errs, "\n"))
		}
		if dc.Version > before {
			var got []string
			for _, o := range dc.Objects {
				if sameFile(strings.SplitN(o.Origin, ":", 2)[0], file) {
					got = append(got, o.Kind+"/"+o.Namespace+"/"+o.Name)
				}
			}
			if sameSet(got, want) {
				m.version = max(m.version, dc.Version)
				return
			}
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("timed out waiting for %s (model version %d, was %d)", what, dc.Version, before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sameFile(origin, name string) bool {
	return origin == name || strings.HasSuffix(origin, string(os.PathSeparator)+name)
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		seen[x]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

// yamlObjects lists "Kind/namespace/name" of every document.
func yamlObjects(t *testing.T, text string) []string {
	t.Helper()
	var out []string
	dec := yaml.NewDecoder(strings.NewReader(text))
	for {
		var head struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Name      string `yaml:"name"`
				Namespace string `yaml:"namespace"`
			} `yaml:"metadata"`
		}
		err := dec.Decode(&head)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("test YAML: %v\n%s", err, text)
		}
		if head.Kind == "" {
			continue
		}
		ns := head.Metadata.Namespace
		if ns == "" {
			ns = Namespace
		}
		out = append(out, head.Kind+"/"+ns+"/"+head.Metadata.Name)
	}
}

// debugConfig is the part of weftd's /debug/config the harness reads.
type debugConfig struct {
	Version uint64 `json:"version"`
	Objects []struct {
		Kind, Namespace, Name, Origin string
	} `json:"objects"`
	Diagnostics []struct {
		Severity                     string
		Kind, Namespace, Name, Field string
		Message                      string
		Origin                       struct {
			File string
			Line int
		}
	} `json:"diagnostics"`
}

func (m *Mesh) config() debugConfig {
	m.t.Helper()
	var dc debugConfig
	m.getJSON("/debug/config", &dc)
	return dc
}

func (m *Mesh) getJSON(path string, v any) {
	m.t.Helper()
	resp, err := m.admin.Get("http://" + m.Admin + path)
	if err != nil {
		m.t.Fatalf("weftd GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		m.t.Fatalf("weftd GET %s: %s %s", path, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		m.t.Fatalf("weftd GET %s: %v", path, err)
	}
}

// syncStatus is the part of weftd's /debug/syncz the harness reads (see
// internal/xds ProxyStatus).
type syncStatus struct {
	Proxy        struct{ ID string } `json:"proxy"`
	ModelVersion uint64              `json:"modelVersion"`
	Types        []struct {
		Type     string `json:"type"`
		State    string `json:"state"`
		LastNACK *struct {
			Message string `json:"message"`
		} `json:"lastNack"`
	} `json:"types"`
}

// Sync waits until every running proxy of the mesh has acknowledged the
// configuration generated from the model version of the last Apply
// (weftd's /debug/syncz, as `weft proxy-status` reads it: model version
// reached, every type SYNCED). A NACK fails the test with its reason.
func (m *Mesh) Sync() {
	m.t.Helper()
	m.SyncProxies(m.proxies...)
}

// SyncProxies is Sync for some proxies only.
func (m *Mesh) SyncProxies(proxies ...*Proxy) {
	m.t.Helper()
	if err := m.TrySync(15*time.Second, proxies...); err != nil {
		m.t.Fatal(err)
	}
}

// TrySync is SyncProxies returning an error instead of failing the test
// when the proxies are not synced after timeout (a NACK still fails it).
func (m *Mesh) TrySync(timeout time.Duration, proxies ...*Proxy) error {
	m.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var status []syncStatus
		m.getJSON("/debug/syncz", &status)
		byID := map[string]syncStatus{}
		for _, s := range status {
			byID[s.Proxy.ID] = s
		}
		var waiting []string
		for _, p := range proxies {
			if p.proc.exited() {
				continue
			}
			s, ok := byID[p.ID]
			switch {
			case !ok:
				waiting = append(waiting, p.Name+": not connected")
				continue
			case s.ModelVersion < m.version:
				waiting = append(waiting, fmt.Sprintf("%s: model version %d < %d", p.Name, s.ModelVersion, m.version))
				continue
			}
			for _, ty := range s.Types {
				switch ty.State {
				case "SYNCED", "NOT SENT":
				case "NACKED":
					msg := ""
					if ty.LastNACK != nil {
						msg = ty.LastNACK.Message
					}
					m.t.Fatalf("proxy %s NACKed %s: %s", p.Name, ty.Type, msg)
				default:
					waiting = append(waiting, p.Name+": "+ty.Type+" "+ty.State)
				}
			}
		}
		if len(waiting) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			var raw json.RawMessage
			m.getJSON("/debug/syncz", &raw)
			return fmt.Errorf("proxies not synced with model version %d after %s: %s\n/debug/syncz: %s", m.version, timeout, strings.Join(waiting, "; "), raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitHTTP polls url until it answers 200, failing early if proc exits.
func (m *Mesh) waitHTTP(what, url string, proc *process) {
	m.t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if proc.exited() {
			m.t.Fatalf("%s: process exited: %v", what, proc.err)
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("timed out waiting for %s (%v)", what, describe(resp, err))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func describe(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return resp.Status
}

// HTTPClient returns the proxy's HTTP/1.1 client that sends every request
// through its forward proxy (HTTP_PROXY), keeping connections alive, with
// no redirects followed and a 10 s timeout. It is created once and safe
// for concurrent use.
func (p *Proxy) HTTPClient() *http.Client {
	p.clientOnce.Do(func() {
		u := &url.URL{Scheme: "http", Host: p.ForwardAddr}
		p.client = &http.Client{
			Timeout:       10 * time.Second,
			Transport:     &http.Transport{Proxy: http.ProxyURL(u), DisableCompression: true, MaxIdleConnsPerHost: 16},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	})
	return p.client
}

// Response is a response read in full.
type Response struct {
	Status  int
	Header  http.Header
	Trailer http.Header
	Body    string
	// Echo is the backend's echo, decoded when the body is one.
	Echo *Echo
}

// Do sends req through the proxy's forward proxy and reads the response
// in full; a transport error fails the test.
func (p *Proxy) Do(t *testing.T, req *http.Request) *Response {
	t.Helper()
	resp, err := p.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s via %s: %v", req.Method, req.URL, p.Name, err)
	}
	return readResponse(t, resp)
}

// Get sends GET url with the headers given as "name", "value" pairs
// through the proxy's forward proxy.
func (p *Proxy) Get(t *testing.T, rawURL string, headerPairs ...string) *Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headerPairs); i += 2 {
		req.Header.Add(headerPairs[i], headerPairs[i+1])
	}
	return p.Do(t, req)
}

func readResponse(t *testing.T, resp *http.Response) *Response {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading response body: %v", err)
	}
	r := &Response{Status: resp.StatusCode, Header: resp.Header, Trailer: resp.Trailer, Body: string(b)}
	var e Echo
	if json.Unmarshal(b, &e) == nil && e.Instance != "" {
		r.Echo = &e
	}
	return r
}

// Dial opens a CONNECT tunnel to target (host:port) through the proxy's
// forward proxy: the proxy handles the tunnel like an intercepted
// connection to target (its outbound listener for the port), so any
// protocol can be spoken over the returned connection.
func (p *Proxy) Dial(target string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", p.ForwardAddr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("CONNECT %s: %w", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		c.Close()
		return nil, fmt.Errorf("CONNECT %s: %s", target, resp.Status)
	}
	c.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		b, _ := br.Peek(br.Buffered())
		return &prefixConn{Conn: c, r: io.MultiReader(bytes.NewReader(append([]byte(nil), b...)), c)}, nil
	}
	return c, nil
}

// prefixConn replays bytes read past a CONNECT response.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// CloseWrite half-closes the underlying TCP connection.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("connection cannot half-close")
}

// H2CClient returns an HTTP/2 prior-knowledge (h2c) client whose
// connections are CONNECT tunnels through the proxy to the request's
// host:port.
func (p *Proxy) H2CClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(_ context.Context, _, addr string, _ *tls.Config) (net.Conn, error) {
			return p.Dial(addr)
		},
	}}
}

// Metrics returns the proxy's /stats/prometheus text.
func (p *Proxy) Metrics(t *testing.T) string {
	t.Helper()
	return httpGetBody(t, "http://"+p.StatsAddr+"/stats/prometheus")
}

// AdminGet returns the body of the proxy's admin path (e.g. "/clusters").
func (p *Proxy) AdminGet(t *testing.T, path string) string {
	t.Helper()
	return httpGetBody(t, "http://"+p.AdminAddr+path)
}

func httpGetBody(t *testing.T, u string) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// process is a child process in its own process group, its output kept
// in memory; it is stopped (SIGTERM, then SIGKILL after 5 s) when the test
// ends, and its output logged if the test failed.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error
}

func startProcess(t *testing.T, name, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: name, cmd: exec.Command(bin, args...), out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("---- %s (%s) output ----\n%s", p.name, strings.Join(args, " "), p.out.tail(32<<10))
		}
	})
	return p
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) stop() {
	if p.exited() {
		return
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// lockedBuffer is a bytes.Buffer safe for the process's two output
// copiers and the test's reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// tail returns at most the last n bytes written.
func (l *lockedBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.b.Bytes()
	if len(b) > n {
		return "...\n" + string(b[len(b)-n:])
	}
	return string(b)
}

// eventually retries f every 50 ms until it returns nil or 10 s pass.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after 10s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SubsetsYAML is a DestinationRule for s with one subset per version
// (label version), named after the service, plus trafficPolicy (YAML
// indented under "trafficPolicy:", or "" for none).
func SubsetsYAML(s *Service, trafficPolicy string, versions ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  host: %s\n", s.Name, Namespace, s.Host)
	if trafficPolicy != "" {
		fmt.Fprintf(&b, "  trafficPolicy:\n%s", indent(trafficPolicy, "    "))
	}
	b.WriteString("  subsets:\n")
	for _, v := range versions {
		fmt.Fprintf(&b, "  - name: %s\n    labels: {version: %s}\n", v, v)
	}
	return b.String()
}

// indent prefixes every non-empty line of text with pre.
func indent(text, pre string) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != "" {
			lines[i] = pre + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// AccessLogEntry is one line of the proxy's JSON access log (Envoy's
// default fields; see internal/proxy/accesslog).
type AccessLogEntry map[string]any

// Str returns field k as a string ("" when absent or null).
func (e AccessLogEntry) Str(k string) string {
	v, _ := e[k].(string)
	return v
}

// AccessLogEntries returns the entries written so far to the proxy's
// access log (the proxy must be started with AccessLog set).
func (p *Proxy) AccessLogEntries(t *testing.T) []AccessLogEntry {
	t.Helper()
	if p.AccessLog == "" {
		t.Fatalf("proxy %s was started without an access log", p.Name)
	}
	b, err := os.ReadFile(p.AccessLog)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []AccessLogEntry
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var e AccessLogEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			continue // a line being written
		}
		out = append(out, e)
	}
	return out
}

// RequestPath is the entry's path with any absolute-form scheme and
// authority removed (requests through the forward proxy are logged with
// their absolute-form target).
func (e AccessLogEntry) RequestPath() string {
	p := e.Str("path")
	if u, err := url.Parse(p); err == nil && u.IsAbs() {
		return u.RequestURI()
	}
	return p
}

// WaitAccessLog waits (up to 10 s; the log is written asynchronously)
// for an entry whose RequestPath is path and returns it.
func (p *Proxy) WaitAccessLog(t *testing.T, path string) AccessLogEntry {
	t.Helper()
	var found AccessLogEntry
	eventually(t, "access log entry for "+path+" of "+p.Name, func() error {
		for _, e := range p.AccessLogEntries(t) {
			if e.RequestPath() == path {
				found = e
				return nil
			}
		}
		return fmt.Errorf("no entry with path %s", path)
	})
	return found
}

// StartClientWithAccessLog is StartClient with the proxy's JSON access log
// on (Proxy.AccessLogEntries).
func (m *Mesh) StartClientWithAccessLog(name string) *Proxy {
	m.t.Helper()
	p := m.StartProxy(ProxyOptions{Name: name, App: name, Version: "v1", ServiceAccount: name, AccessLog: true})
	m.Sync()
	return p
}

// StartGateway starts an ingress gateway: a weft-proxy of node type
// router in namespace istio-system with labels istio=ingressgateway and
// app=NAME, and waits until it has the mesh's configuration. Its Gateway
// servers should bind its Address (server "bind") on a port from
// [Proxy.FreePort], so no other process's ports are taken.
func (m *Mesh) StartGateway(name string) *Proxy {
	m.t.Helper()
	p := m.StartProxy(ProxyOptions{Name: name, App: name, Router: true, ServiceAccount: name + "-service-account",
		Labels: map[string]string{"istio": "ingressgateway"}, AccessLog: true})
	m.Sync()
	return p
}

// FreePort returns a TCP port free on the proxy's address.
func (p *Proxy) FreePort(t *testing.T) int {
	t.Helper()
	return freePort(t, p.Address)
}
