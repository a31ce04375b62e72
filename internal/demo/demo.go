// Package demo runs the local Weft mesh of `weft demo`: weftd, an ingress
// gateway and Istio's bookinfo and httpbin samples, each workload with its
// own sidecar, as child processes on loopback without root (ADR 0007).
//
// [Run] starts everything, reports progress as each component becomes
// ready, prints where to look and what to try, and stops every child when
// its context ends. [Start] and [Demo.Stop] are the same lifecycle in two
// steps, for callers (tests) that drive the mesh in between.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configures a demo run. The zero value of every field means its
// default.
type Options struct {
	// BinDir is where weftd, weft-proxy, bookinfo and httpbin are looked
	// for first; then next to the running executable, then on PATH.
	BinDir string
	// StateDir receives the generated configuration (StateDir/config) and
	// the children's logs (StateDir/logs); default: a new temporary
	// directory.
	StateDir string
	// GatewayPort is the bookinfo Gateway's server port, bound by the
	// ingress gateway on all interfaces (default 8080).
	GatewayPort int
	// XDSPort, SecureXDSPort and AdminPort are weftd's plaintext xDS,
	// certificate (TLS) and admin ports on 127.0.0.1 (default 15010, 15012
	// and 15014).
	XDSPort, SecureXDSPort, AdminPort int
	// ProxyAdminPort, ProxyReadyPort and ProxyStatsPort are each proxy's
	// admin, /healthz/ready and /stats/prometheus ports, on the proxy's
	// own loopback address (default 15000, 15021, 15090).
	ProxyAdminPort, ProxyReadyPort, ProxyStatsPort int
	// AddressBlock places the workloads on 127.0.BLOCK.X and their
	// forward proxies on 127.0.BLOCK+1.X (default 0: 127.0.0.10, ...), so
	// that two demos (or a demo and a test) can run side by side.
	AddressBlock uint8
	// ReadyTimeout bounds the wait for everything to be ready (default 60s).
	ReadyTimeout time.Duration
	// StopGrace is how long a child may take to exit after SIGTERM before
	// it is killed (default 10s; proxies drain for at most 2s, weftd 5s).
	StopGrace time.Duration
	// Out receives progress and the summary (default: discarded).
	Out io.Writer
	// Transparent runs every workload in a network namespace of its own
	// with iptables interception instead of on loopback (root only; see
	// transparent.go).
	Transparent bool
}

func (o *Options) setDefaults() {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&o.GatewayPort, 8080)
	def(&o.XDSPort, 15010)
	def(&o.SecureXDSPort, 15012)
	def(&o.AdminPort, 15014)
	def(&o.ProxyAdminPort, 15000)
	def(&o.ProxyReadyPort, 15021)
	def(&o.ProxyStatsPort, 15090)
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 60 * time.Second
	}
	if o.StopGrace == 0 {
		o.StopGrace = 10 * time.Second
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
}

// validate checks the ports, naming the option at fault.
func (o *Options) validate() error {
	var errs []error
	ports := []struct {
		name string
		v    int
	}{
		{"gateway port", o.GatewayPort}, {"xDS port", o.XDSPort}, {"secure xDS port", o.SecureXDSPort}, {"weftd admin port", o.AdminPort},
		{"proxy admin port", o.ProxyAdminPort}, {"proxy ready port", o.ProxyReadyPort}, {"proxy stats port", o.ProxyStatsPort},
	}
	seen := map[int]string{}
	for _, p := range ports {
		if p.v < 1 || p.v > 65535 {
			errs = append(errs, fmt.Errorf("%s: %d is not a port number (1-65535)", p.name, p.v))
			continue
		}
		if other, dup := seen[p.v]; dup {
			errs = append(errs, fmt.Errorf("%s: %d is also the %s", p.name, p.v, other))
		}
		seen[p.v] = p.name
	}
	if o.AddressBlock > MaxBlock {
		errs = append(errs, fmt.Errorf("address block: %d is above %d (forward proxies use the next block)", o.AddressBlock, MaxBlock))
	}
	for _, w := range Workloads(0) {
		for _, p := range []uint32{w.Port, w.AppPort} {
			if p == 0 {
				continue
			}
			if other, dup := seen[int(p)]; dup {
				errs = append(errs, fmt.Errorf("%s: %d is also the port of %s %s", other, p, w.Name, "service/application"))
			}
		}
	}
	return errors.Join(errs...)
}

// Proxy describes one running weft-proxy.
type Proxy struct {
	// Name is the workload name ("reviews-v2") or "istio-ingressgateway".
	Name string `json:"name"`
	// Admin, Ready and Stats are the proxy's admin API, readiness and
	// Prometheus addresses (host:port).
	Admin string `json:"admin"`
	Ready string `json:"ready"`
	Stats string `json:"stats"`
	// Egress is the forward proxy its application uses (HTTP_PROXY);
	// empty for the gateway.
	Egress string `json:"egress,omitempty"`
	// Log is the proxy's log file.
	Log string `json:"log"`
}

// Info says where the running demo's pieces are.
type Info struct {
	// ProductPage is the bookinfo product page through the gateway.
	ProductPage string `json:"productPage"`
	// Gateway is the gateway's HTTP address (host:port).
	Gateway string `json:"gateway"`
	// XDS and WeftdAdmin are weftd's addresses; the admin serves
	// /debug/config, /debug/registry, /metrics and the apply API.
	XDS        string `json:"xds"`
	WeftdAdmin string `json:"weftdAdmin"`
	// ConfigDir is the generated configuration weftd serves and watches.
	ConfigDir string `json:"configDir"`
	// LogDir holds one log file per child process.
	LogDir string `json:"logDir"`
	// Proxies are the gateway (first) and the sidecars.
	Proxies []Proxy `json:"proxies"`
	// Apps maps each workload with an application to its log file.
	Apps map[string]string `json:"apps"`
	// Namespaces maps each workload to its network namespace (transparent
	// mode only; "istio-ingressgateway" and weftd share the infra one).
	Namespaces map[string]string `json:"namespaces,omitempty"`
}

// Demo is a running demo mesh.
type Demo struct {
	opts     Options
	info     Info
	children []*child // in start order; stopped in reverse
	out      *syncWriter
	stopOnce sync.Once
	// failed is closed when a child exits on its own; failure says which.
	failed   chan struct{}
	failOnce sync.Once
	failure  error
	// teardown runs after the children have stopped (transparent mode:
	// relays, namespaces, copies).
	teardown []func()
}

// Info returns where the demo's pieces are.
func (d *Demo) Info() Info { return d.info }

// Failed is closed when a child process exits on its own; [Demo.Err] then
// says which one.
func (d *Demo) Failed() <-chan struct{} { return d.failed }

// Err returns the first unexpected child exit, or nil.
func (d *Demo) Err() error {
	select {
	case <-d.failed:
		return d.failure
	default:
		return nil
	}
}

// Run starts the demo, prints its summary, and keeps it running until ctx
// ends (Ctrl-C) or a child process fails; then it stops everything. It
// returns nil after a requested stop.
func Run(ctx context.Context, opts Options) error {
	opts.setDefaults()
	d, err := Start(ctx, opts)
	if err != nil {
		if ctx.Err() != nil { // interrupted while starting: a requested stop
			fmt.Fprintf(opts.Out, "\nstopped while starting\n")
			return nil
		}
		return err
	}
	d.PrintSummary()
	select {
	case <-ctx.Done():
		d.out.printf("\nstopping the demo...\n")
		d.Stop()
		d.out.printf("stopped; logs are in %s\n", d.info.LogDir)
		return nil
	case <-d.failed:
		d.Stop()
		return d.failure
	}
}

// Start launches weftd, the applications and their sidecars, and the
// ingress gateway, and returns once the product page answers through the
// gateway. On error everything started is stopped again.
func Start(ctx context.Context, opts Options) (_ *Demo, err error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	bins := map[string]string{}
	for _, name := range []string{"weftd", "weft-proxy", "bookinfo", "httpbin"} {
		p, err := findBinary(name, opts.BinDir)
		if err != nil {
			return nil, err
		}
		bins[name] = p
	}
	if opts.StateDir == "" {
		if opts.StateDir, err = os.MkdirTemp("", "weft-demo-"); err != nil {
			return nil, err
		}
	}
	if opts.StateDir, err = filepath.Abs(opts.StateDir); err != nil {
		return nil, err
	}
	d := &Demo{opts: opts, out: &syncWriter{w: opts.Out}, failed: make(chan struct{})}
	d.info = Info{
		Gateway:    hostPort("127.0.0.1", uint32(opts.GatewayPort)),
		XDS:        hostPort("127.0.0.1", uint32(opts.XDSPort)),
		WeftdAdmin: hostPort("127.0.0.1", uint32(opts.AdminPort)),
		ConfigDir:  filepath.Join(opts.StateDir, "config"),
		LogDir:     filepath.Join(opts.StateDir, "logs"),
		Apps:       map[string]string{},
	}
	d.info.ProductPage = "http://" + d.info.Gateway + "/productpage"
	if err := os.MkdirAll(d.info.LogDir, 0o755); err != nil {
		return nil, err
	}
	bootDir := filepath.Join(opts.StateDir, "bootstrap")
	if err := os.MkdirAll(bootDir, 0o755); err != nil {
		return nil, err
	}
	if opts.Transparent {
		defer func() {
			if err != nil {
				d.Stop()
			}
		}()
		if err := startTransparent(ctx, d, bins); err != nil {
			return nil, err
		}
		for _, c := range d.children {
			go d.watch(c)
		}
		return d, nil
	}
	if err := WriteConfig(d.info.ConfigDir, opts.GatewayPort, opts.AddressBlock); err != nil {
		return nil, err
	}
	if err := d.checkPortsFree(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			d.Stop()
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, opts.ReadyTimeout)
	defer cancel()
	begin := time.Now()
	d.out.printf("weft demo: starting the local mesh (logs in %s)\n", d.info.LogDir)

	// weftd first: proxies retry, but starting it first keeps logs quiet.
	if err := d.start("weftd", bins["weftd"], []string{
		"--config-dir", d.info.ConfigDir, "--listen-address", "127.0.0.1",
		"--xds-port", strconv.Itoa(opts.XDSPort), "--admin-port", strconv.Itoa(opts.AdminPort),
		"--secure-xds-port", strconv.Itoa(opts.SecureXDSPort), "--ca-dir", filepath.Join(opts.StateDir, "ca"),
	}, nil); err != nil {
		return nil, err
	}
	if err := d.waitReady(ctx, "weftd", "http://"+d.info.WeftdAdmin+"/healthz", begin,
		fmt.Sprintf("xDS %s, admin http://%s", d.info.XDS, d.info.WeftdAdmin)); err != nil {
		return nil, err
	}

	// Applications, their sidecars and the gateway, all at once.
	type readiness struct{ name, url, detail string }
	var waits []readiness
	for _, w := range Workloads(opts.AddressBlock) {
		if w.Binary != "" {
			env := appEnv(w.EgressAddress)
			if err := d.start(w.Name, bins[w.Binary], w.Args, env); err != nil {
				return nil, err
			}
			d.info.Apps[w.Name] = filepath.Join(d.info.LogDir, w.Name+".log")
		}
		p, err := d.startProxy(bins["weft-proxy"], bootDir, proxyNode{
			id:        fmt.Sprintf("sidecar~%s~%s.%s~%s.svc.cluster.local", w.Address, w.Name, Namespace, Namespace),
			name:      w.Name + "-sidecar",
			workload:  w.Name,
			namespace: Namespace,
			labels:    w.Labels(),
			sa:        w.ServiceAccount,
			address:   w.Address,
			egress:    w.EgressAddress,
			metadata:  map[string]string{"INTERCEPTION_MODE": "NONE"},
		})
		if err != nil {
			return nil, err
		}
		p.Name = w.Name
		d.info.Proxies = append(d.info.Proxies, p)
		detail := "sidecar of " + w.Name
		if w.Port != 0 {
			detail += fmt.Sprintf(", serves %s -> app %s", w.ServiceAddress(), w.AppAddress())
		}
		detail += ", egress proxy " + w.EgressAddress
		waits = append(waits, readiness{w.Name + " sidecar", "http://" + p.Ready + "/healthz/ready", detail})
	}
	gw, err := d.startProxy(bins["weft-proxy"], bootDir, proxyNode{
		id:        fmt.Sprintf("router~%s~istio-ingressgateway.%s~%s.svc.cluster.local", GatewayAddress(opts.AddressBlock), GatewayNamespace, GatewayNamespace),
		name:      "istio-ingressgateway",
		workload:  "istio-ingressgateway",
		namespace: GatewayNamespace,
		labels:    map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"},
		sa:        "istio-ingressgateway-service-account",
		address:   GatewayAddress(opts.AddressBlock),
	})
	if err != nil {
		return nil, err
	}
	gw.Name = "istio-ingressgateway"
	d.info.Proxies = append([]Proxy{gw}, d.info.Proxies...)
	waits = append(waits, readiness{"ingress gateway", "http://" + gw.Ready + "/healthz/ready", "serves " + d.info.Gateway})

	errs := make(chan error, len(waits))
	for _, r := range waits {
		go func() { errs <- d.waitReady(ctx, r.name, r.url, begin, r.detail) }()
	}
	var firstErr error
	for range waits {
		if err := <-errs; err != nil && firstErr == nil {
			firstErr = err
			cancel()
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	if err := d.waitProductPage(ctx, begin); err != nil {
		return nil, err
	}
	for _, c := range d.children {
		go d.watch(c)
	}
	return d, nil
}

// appEnv is the application's environment: weft's, with its outbound
// calls sent to its sidecar's forward proxy.
func appEnv(egress string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HTTP_PROXY=http://"+egress)
}

// start launches one child and records it for Stop.
func (d *Demo) start(name, binary string, args, env []string) error {
	if env == nil {
		env = os.Environ()
	}
	c, err := startChild(name, binary, args, env, d.info.LogDir)
	if err != nil {
		return err
	}
	d.children = append(d.children, c)
	return nil
}

// proxyNode is what a proxy's bootstrap says about it.
type proxyNode struct {
	id, name, workload, namespace, sa, address, egress string
	labels, metadata                                   map[string]string
}

// startProxy writes a bootstrap file for n and starts weft-proxy with it.
func (d *Demo) startProxy(binary, bootDir string, n proxyNode) (Proxy, error) {
	p := Proxy{
		Admin:  hostPort(n.address, uint32(d.opts.ProxyAdminPort)),
		Ready:  hostPort(n.address, uint32(d.opts.ProxyReadyPort)),
		Stats:  hostPort(n.address, uint32(d.opts.ProxyStatsPort)),
		Egress: n.egress,
		Log:    filepath.Join(d.info.LogDir, n.name+".log"),
	}
	boot := map[string]any{
		"xdsAddress":   d.info.XDS,
		"adminAddress": p.Admin,
		"readyAddress": p.Ready,
		"statsAddress": p.Stats,
		// Keep Ctrl-C quick: idle keep-alive clients would otherwise hold
		// a draining proxy for its default 5s.
		"drainTimeout": "2s",
		"node": map[string]any{
			"id": n.id, "cluster": "Kubernetes", "namespace": n.namespace, "workload": n.workload,
			"labels": n.labels, "serviceAccount": n.sa, "instanceIPs": []string{n.address}, "metadata": n.metadata,
		},
	}
	if n.egress != "" {
		boot["forwardProxyAddress"] = n.egress
	}
	ca, err := d.workloadIdentity(bootDir, n) // identity.go
	if err != nil {
		return p, err
	}
	if ca != nil {
		boot["ca"] = ca
	}
	b, err := json.MarshalIndent(boot, "", "  ")
	if err != nil {
		return p, err
	}
	file := filepath.Join(bootDir, n.name+".json")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		return p, err
	}
	return p, d.start(n.name, binary, []string{"--bootstrap", file}, nil)
}

// waitReady polls url until it answers 200, printing a progress line.
func (d *Demo) waitReady(ctx context.Context, name, url string, begin time.Time, detail string) error {
	return d.pollReady(ctx, &http.Client{Timeout: time.Second}, name, url, "", begin, detail)
}

// pollReady polls url with client until it answers 200, printing a
// progress line; where says where url lives, for the error message.
func (d *Demo) pollReady(ctx context.Context, client *http.Client, name, url, where string, begin time.Time, detail string) error {
	for {
		resp, err := client.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				d.out.printf("  ready  %-22s %5.1fs  %s\n", name, time.Since(begin).Seconds(), detail)
				return nil
			}
		}
		if err := d.deadChild(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s (GET %s%s: %v); see the logs in %s", name, d.opts.ReadyTimeout, url, where, describe(resp, err), d.info.LogDir)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitProductPage polls the product page through the gateway until it
// renders with reviews.
func (d *Demo) waitProductPage(ctx context.Context, begin time.Time) error {
	client := &http.Client{Timeout: 10 * time.Second}
	for {
		resp, err := client.Get(d.info.ProductPage)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(body), "Book Reviews") {
				d.out.printf("  ready  %-22s %5.1fs  %s\n", "product page", time.Since(begin).Seconds(), d.info.ProductPage)
				return nil
			}
		}
		if err := d.deadChild(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the product page %s does not answer after %s (%v); see the logs in %s", d.info.ProductPage, d.opts.ReadyTimeout, describe(resp, err), d.info.LogDir)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func describe(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return resp.Status
}

// deadChild returns an error for the first child that has exited.
func (d *Demo) deadChild() error {
	for _, c := range d.children {
		if c.exited() {
			return c.exitError()
		}
	}
	return nil
}

// watch reports a child that exits before Stop.
func (d *Demo) watch(c *child) {
	<-c.done
	d.failOnce.Do(func() {
		d.failure = c.exitError()
		close(d.failed)
	})
}

// Stop stops every child, last started first (weftd last): SIGTERM to its
// process group, SIGKILL after the grace period. It is safe to call more
// than once.
func (d *Demo) Stop() {
	d.stopOnce.Do(func() {
		// Mark the exits as requested so watch does not report them.
		d.failOnce.Do(func() {})
		// Proxies and apps in parallel (they do not depend on each other
		// for shutdown), then weftd.
		var wg sync.WaitGroup
		for i := len(d.children) - 1; i >= 1; i-- {
			wg.Add(1)
			go func(c *child) {
				defer wg.Done()
				c.stop(d.opts.StopGrace)
			}(d.children[i])
		}
		wg.Wait()
		if len(d.children) > 0 {
			d.children[0].stop(d.opts.StopGrace)
		}
		for _, f := range d.teardown {
			f()
		}
	})
}

// checkPortsFree fails early, naming the address, when a port the demo
// needs is taken (another demo still running, say).
func (d *Demo) checkPortsFree() error {
	addrs := []string{d.info.XDS, d.info.WeftdAdmin, hostPort("127.0.0.1", uint32(d.opts.SecureXDSPort)), hostPort("0.0.0.0", uint32(d.opts.GatewayPort))}
	for _, w := range Workloads(d.opts.AddressBlock) {
		for _, p := range []int{d.opts.ProxyAdminPort, d.opts.ProxyReadyPort, d.opts.ProxyStatsPort} {
			addrs = append(addrs, hostPort(w.Address, uint32(p)))
		}
		if w.Port != 0 {
			addrs = append(addrs, w.ServiceAddress(), w.AppAddress())
		}
		addrs = append(addrs, w.EgressAddress)
	}
	for _, p := range []int{d.opts.ProxyAdminPort, d.opts.ProxyReadyPort, d.opts.ProxyStatsPort} {
		addrs = append(addrs, hostPort(GatewayAddress(d.opts.AddressBlock), uint32(p)))
	}
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("address %s is not available (%v); is another weft demo running? Choose other ports with the port flags", a, unwrapOpError(err))
		}
		l.Close()
	}
	return nil
}

func unwrapOpError(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// syncWriter serialises progress lines written from several goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) printf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.w, format, args...)
}

// PrintSummary prints where the demo's pieces are and how to try Istio's
// traffic tasks.
func (d *Demo) PrintSummary() {
	i := d.info
	var b strings.Builder
	fmt.Fprintf(&b, "\nThe mesh is ready.\n\n")
	fmt.Fprintf(&b, "  Product page   %s   (log in as jason for the per-user tasks)\n", i.ProductPage)
	fmt.Fprintf(&b, "  weftd          http://%s/debug/config  /debug/registry  /metrics   (xDS %s)\n", i.WeftdAdmin, i.XDS)
	fmt.Fprintf(&b, "  configuration  %s   (Istio YAML; weftd applies edits live)\n", i.ConfigDir)
	fmt.Fprintf(&b, "  logs           %s   (one file per process)\n\n", i.LogDir)
	fmt.Fprintf(&b, "  Proxies (Prometheus at http://STATS/stats/prometheus, admin at http://ADMIN/config_dump):\n")
	fmt.Fprintf(&b, "    %-22s %-18s %-18s %s\n", "NAME", "STATS", "ADMIN", "EGRESS (app's HTTP_PROXY)")
	for _, p := range i.Proxies {
		eg := p.Egress
		if eg == "" {
			eg = "-"
		}
		fmt.Fprintf(&b, "    %-22s %-18s %-18s %s\n", p.Name, p.Stats, p.Admin, eg)
	}
	weftdFlag := ""
	if d.opts.AdminPort != 15014 {
		weftdFlag = " --weftd " + i.WeftdAdmin
	}
	fmt.Fprintf(&b, "\n  Inspect: weft get vs%s   weft proxy-status%s\n", weftdFlag, weftdFlag)
	fmt.Fprintf(&b, "\n  Try Istio's traffic tasks (undo one with weft delete -f FILE):\n")
	for _, t := range []struct{ what, file string }{
		{"all traffic to v1", "virtual-service-all-v1.yaml"},
		{"jason to reviews v2", "virtual-service-reviews-test-v2.yaml"},
		{"7s ratings delay for jason", "virtual-service-ratings-test-delay.yaml"},
		{"ratings abort for jason", "virtual-service-ratings-test-abort.yaml"},
		{"50/50 reviews v1/v3", "virtual-service-reviews-50-v3.yaml"},
		{"all reviews to v3", "virtual-service-reviews-v3.yaml"},
		{"0.5s reviews timeout", "request-timeouts.yaml"},
		{"httpbin circuit breaker", "httpbin-circuit-breaker.yaml"},
		{"httpbin mirroring to v2", "httpbin-mirror.yaml"},
	} {
		fmt.Fprintf(&b, "    %-28s weft apply%s -f examples/bookinfo/tasks/%s\n", t.what, weftdFlag, t.file)
	}
	if d.opts.Transparent {
		d.transparentHints(&b) // transparent.go
		d.out.printf("%s", b.String())
		return
	}
	var fortio Proxy
	for _, p := range i.Proxies {
		if p.Name == "fortio" {
			fortio = p
		}
	}
	fmt.Fprintf(&b, "\n  Call httpbin from the fortio client's sidecar:\n")
	fmt.Fprintf(&b, "    curl -x http://%s http://httpbin:8000/get\n", fortio.Egress)
	// fortio resolves the target itself; -resolve sends its connections
	// to the forward proxy's address instead (the port is the proxy's).
	host, _, _ := net.SplitHostPort(fortio.Egress)
	fmt.Fprintf(&b, "    HTTP_PROXY=http://%s fortio load -stdclient -resolve %s -c 3 -qps 0 -n 30 http://httpbin:8000/get\n", fortio.Egress, host)
	fmt.Fprintf(&b, "\nPress Ctrl-C to stop.\n")
	d.out.printf("%s", b.String())
}
