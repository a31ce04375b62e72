package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/weftmesh/weft/bench/peers"
	"github.com/weftmesh/weft/bench/procstat"
	"github.com/weftmesh/weft/bench/report"
	"github.com/weftmesh/weft/bench/xdsconf"
)

// scenarioDef is one data-plane scenario.
type scenarioDef struct {
	group   string // the scenario number selected by -scenarios
	id      string
	title   string
	desc    string
	columns []string
	mode    peers.Mode
	load    load // URL is filled per target
	targets []string
}

var latencyCols = []string{"p50", "p90", "p99", "max", "added_p50", "added_p90", "added_p99", "cpu_per_1k", "peak_rss_mb", "rps"}

func scenarios(e *env) []scenarioDef {
	d := e.cfg.duration
	all := []string{"direct", "weft-proxy", "nginx", "haproxy", "caddy"}
	return []scenarioDef{
		{group: "1", id: "1", title: "One hop, HTTP/1.1, 1 KB responses, 1000 rps over 4 connections",
			desc:    "fortio → proxy → Go backend over loopback, HTTP/1.1 keep-alive on both sides. Added latency is over the direct run (fortio → backend). Proxy CPU from /proc/<pid>/stat (utime+stime) during the measured run; peak RSS is VmHWM; idle RSS is VmRSS after readiness, before any request.",
			columns: append(append([]string{}, latencyCols...), "idle_rss_mb"), mode: peers.HTTP1,
			load: load{QPS: 1000, Conns: 4, Duration: d}, targets: all},
		{group: "2", id: "2", title: "Maximum throughput, HTTP/1.1, 64 connections",
			desc:    "fortio at full speed (-qps 0) over 64 connections. On 2 cores fortio and the backend share CPU 1, so the load side can be the bottleneck: compare requests per proxy CPU-second, which does not depend on it.",
			columns: []string{"rps", "rps_per_cpu_s", "cpu_per_1k", "p50", "p99", "peak_rss_mb"}, mode: peers.HTTP1,
			load: load{QPS: 0, Conns: 64, Duration: d}, targets: all},
		{group: "3", id: "3a", title: "HTTP/2 (h2c), 1000 rps over 4 connections",
			desc:    "fortio -h2 with prior knowledge to the proxy; the proxies speak HTTP/1.1 to the backend (weft-proxy: an HTTP/1.1 cluster; nginx: proxy_pass; haproxy: proto h2 on the bind only; Caddy: h2c server protocol). Direct is fortio -h2 to the backend's h2c.",
			columns: latencyCols, mode: peers.H2C,
			load: load{QPS: 1000, Conns: 4, Duration: d, H2: true}, targets: all},
		{group: "3", id: "3b", title: "gRPC unary, 1000 rps over 4 connections",
			desc:    "fortio -grpc (grpc.health.v1 Check; the responses are a few bytes, not 1 KB) through the proxy to the backend's gRPC server, h2c on both sides (weft-proxy: an HTTP/2 cluster; nginx: grpc_pass; haproxy: proto h2 on both sides; Caddy: h2c transport).",
			columns: latencyCols, mode: peers.GRPC,
			load: load{QPS: 1000, Conns: 4, Duration: d, GRPC: true}, targets: all},
		{group: "4", id: "4", title: "Mesh path: client sidecar → server sidecar, 1000 rps over 4 connections",
			desc:    "fortio → client weft-proxy (outbound listener, cluster outbound|PORT||backend) → server weft-proxy (inbound listener, cluster inbound|PORT||) → backend, against direct. Both sidecars on the proxy CPU; CPU and RSS are the sum of the two. weft-mesh-mtls: Istio mutual TLS between the sidecars as weftd emits it for STRICT PeerAuthentication (client cluster with Istio's UpstreamTlsContext, ALPN istio-peer-exchange/istio, the server's SPIFFE ID as SAN; server chain requiring a client certificate), each sidecar with a workload certificate from the harness's CA (internal/ca's IstioCertificateService, as weftd serves it on 15012); connections between the sidecars are pooled, so handshakes are not in the figures. weft-mesh: the same path in plain text.",
			columns: []string{"p50", "p90", "p99", "max", "added_p50", "added_p90", "added_p99", "cpu_per_1k", "peak_rss_mb", "idle_rss_mb", "rps"}, mode: peers.HTTP1,
			load: load{QPS: 1000, Conns: 4, Duration: d}, targets: []string{"direct", "weft-mesh-mtls", "weft-mesh"}},
		{group: "5", id: "5", title: "TCP throughput",
			desc:    "benchnet tcpload (one connection writing 64 KB buffers as fast as possible) → proxy → backend sink, against direct loopback. MB is 10^6 bytes.",
			columns: []string{"mb_per_s", "cpu_per_gb", "peak_rss_mb"}, mode: peers.TCP,
			load: load{Conns: 1, Duration: d}, targets: all},
	}
}

// isMesh reports whether a target is a mesh-path variant (weft-proxy as
// the two sidecars).
func isMesh(name string) bool { return strings.HasPrefix(name, "weft-mesh") }

// selected reports whether -proxies selects target name of sc. Empty
// selects all; weft-proxy and weft-mesh select both mesh-path rows, and
// direct runs when a mesh row does (scenario 4's baseline).
func (c config) selected(sc scenarioDef, name string) bool {
	if len(c.only) == 0 || c.only[name] {
		return true
	}
	if isMesh(name) {
		return c.only["weft-mesh"] || c.only["weft-proxy"]
	}
	if name == "direct" {
		for _, t := range sc.targets {
			if isMesh(t) && c.selected(sc, t) {
				return true
			}
		}
	}
	return false
}

// running is a started target: where to send load and what to measure.
type running struct {
	addr  string
	procs []*process
	label string
}

func (r *running) pids() []int {
	var ps []int
	for _, p := range r.procs {
		ps = append(ps, p.pid())
	}
	return ps
}

func (r *running) stop() {
	for _, p := range r.procs {
		p.stop()
	}
}

// upstream is the backend address for a mode.
func (e *env) upstream(m peers.Mode) string {
	switch m {
	case peers.GRPC:
		return e.backend["grpc"]
	case peers.TCP:
		return e.backend["tcp-sink"]
	}
	return e.backend["http"]
}

// startTarget starts one proxy configured for mode in front of the backend.
func (e *env) startTarget(name string, m peers.Mode) (*running, error) {
	up := e.upstream(m)
	if name == "direct" {
		return &running{addr: up}, nil
	}
	e.seq++
	dir := filepath.Join(e.dir, fmt.Sprintf("%s-%d", name, e.seq))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	listen, err := freePort()
	if err != nil {
		return nil, err
	}
	spec := peers.Spec{Mode: m, Listen: listen, Upstream: up, Dir: dir}
	cpu := e.cfg.proxyCPU
	switch name {
	case "weft-proxy":
		res := xdsconf.Router(listen, up, xdsconf.HTTP1)
		if m == peers.GRPC {
			res = xdsconf.Router(listen, up, xdsconf.HTTP2)
		} else if m == peers.TCP {
			res = xdsconf.TCP(listen, up)
		}
		p, err := e.startWeft(name, "router", dir, listen, res)
		if err != nil {
			return nil, err
		}
		return &running{addr: listen, procs: []*process{p}}, nil
	case "weft-mesh", "weft-mesh-mtls":
		server, err := freePort()
		if err != nil {
			return nil, err
		}
		mtls := name == "weft-mesh-mtls"
		cres, sres, err := xdsconf.Mesh(listen, server, up, mtls)
		if err != nil {
			return nil, err
		}
		var sflags, cflags []string
		if mtls {
			ca, err := e.meshCA()
			if err != nil {
				return nil, err
			}
			if sflags, err = ca.Flags(xdsconf.ServerServiceAccount); err != nil {
				return nil, err
			}
			if cflags, err = ca.Flags(xdsconf.ClientServiceAccount); err != nil {
				return nil, err
			}
		}
		sp, err := e.startWeftArgs("server-sidecar", "sidecar", dir, server, sres, sflags)
		if err != nil {
			return nil, err
		}
		cp, err := e.startWeftArgs("client-sidecar", "sidecar", dir, listen, cres, cflags)
		if err != nil {
			sp.stop()
			return nil, err
		}
		label := "plaintext"
		if mtls {
			label = "mTLS"
			// The hop is really mTLS: the server sidecar refuses plain text.
			if err := refusesPlainText(server); err != nil {
				cp.stop()
				sp.stop()
				return nil, err
			}
		}
		return &running{addr: listen, procs: []*process{cp, sp}, label: label}, nil
	}
	bin, ok := e.bins[name]
	if !ok {
		return nil, fmt.Errorf("%s", e.missing[name])
	}
	var cmd peers.Command
	switch name {
	case "nginx":
		if m == peers.TCP {
			if _, err := os.Stat(peers.StreamModule); err != nil {
				return nil, fmt.Errorf("nginx stream module not installed (libnginx-mod-stream)")
			}
		}
		cmd, err = peers.Nginx(bin, spec)
	case "haproxy":
		cmd, err = peers.HAProxy(bin, spec)
	case "caddy":
		cmd, err = peers.Caddy(bin, spec)
	default:
		err = fmt.Errorf("unknown target %q", name)
	}
	if err != nil {
		return nil, err
	}
	p, err := e.start(name, dir, cpu, cmd.Path, cmd.Args, cmd.Env)
	if err != nil {
		return nil, err
	}
	if err := p.waitFor(15*time.Second, tcpOpen(listen)); err != nil {
		p.stop()
		return nil, err
	}
	return &running{addr: listen, procs: []*process{p}}, nil
}

// refusesPlainText checks that a plain-text HTTP request to a STRICT mTLS
// listener fails.
func refusesPlainText(addr string) error {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return nil
	}
	resp.Body.Close()
	return fmt.Errorf("server sidecar %s answered a plain-text request (%s): the mesh hop is not mTLS", addr, resp.Status)
}

// startWeft publishes res for a new node and runs weft-proxy for it,
// waiting for /healthz/ready and for its listener.
func (e *env) startWeft(name, kind, dir, listen string, res xdsconf.Resources) (*process, error) {
	return e.startWeftArgs(name, kind, dir, listen, res, nil)
}

// startWeftArgs is startWeft with extra weft-proxy flags.
func (e *env) startWeftArgs(name, kind, dir, listen string, res xdsconf.Resources, extra []string) (*process, error) {
	bin, ok := e.bins["weft-proxy"]
	if !ok {
		return nil, fmt.Errorf("%s (run make build)", e.missing["weft-proxy"])
	}
	return e.startWeftBin(bin, name, kind, dir, listen, res, extra)
}

// meshCA is the run's certificate authority for the sidecars' workload
// identities, started on first use.
func (e *env) meshCA() (*xdsconf.CA, error) {
	if e.ca != nil {
		return e.ca, nil
	}
	dir := filepath.Join(e.dir, "ca")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := xdsconf.StartCA(dir)
	if err != nil {
		return nil, fmt.Errorf("mesh CA: %w", err)
	}
	e.ca = ca
	return ca, nil
}

func (e *env) startWeftBin(bin, name, kind, dir, listen string, res xdsconf.Resources, extra []string) (*process, error) {
	e.seq++
	node := fmt.Sprintf("%s~127.0.0.1~%s-%d.bench~bench.svc.cluster.local", kind, name, e.seq)
	if err := e.xds.Set(node, "1", res); err != nil {
		return nil, err
	}
	admin, err := freePort()
	if err != nil {
		return nil, err
	}
	ready, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{"--xds-address", e.xds.Addr(), "--node-id", node, "--admin-port", portOf(admin), "--ready-port", portOf(ready)}
	if filepath.Base(bin) == "weft-proxy" {
		args = append(args, "--stats-port", "-1", "--log-level", "warn")
	}
	p, err := e.start(name, dir, e.cfg.proxyCPU, bin, append(args, extra...), nil)
	if err != nil {
		return nil, err
	}
	check := httpOK("http://127.0.0.1:" + portOf(ready) + "/healthz/ready")
	if err := p.waitFor(15*time.Second, func() error {
		if err := check(); err != nil {
			return err
		}
		return tcpOpen(listen)()
	}); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

func portOf(hostport string) string {
	for i := len(hostport) - 1; i >= 0; i-- {
		if hostport[i] == ':' {
			return hostport[i+1:]
		}
	}
	return hostport
}

func (l load) target(addr string) load {
	if l.GRPC {
		l.URL = addr
	} else {
		l.URL = "http://" + addr + "/"
	}
	return l
}

// runScenario measures every target cfg.reps times.
func (e *env) runScenario(ctx context.Context, sc scenarioDef) report.Scenario {
	s := report.Scenario{ID: sc.id, Title: sc.title, Description: sc.desc, Columns: sc.columns, Baseline: "direct"}
	for _, name := range sc.targets {
		if !e.cfg.selected(sc, name) {
			continue
		}
		peer := name == "nginx" || name == "haproxy" || name == "caddy"
		var reps []report.Rep
		var label, skip string
		for i := 0; i < e.cfg.reps && ctx.Err() == nil; i++ {
			rep, lbl, err := e.measure(ctx, sc, name)
			if err != nil {
				skip = oneLine(err.Error())
				break
			}
			label = lbl
			reps = append(reps, rep)
			e.logf("  %s rep %d: %s", name, i+1, summary(rep))
		}
		if len(reps) == 0 {
			if skip == "" {
				skip = "interrupted"
			}
			e.logf("  %s skipped: %s", name, skip)
			s.Results = append(s.Results, report.Result{Proxy: name, Peer: peer, Skipped: skip})
			continue
		}
		r := report.Aggregate(name, peer, reps)
		r.Label = label
		if skip != "" {
			e.note("scenario %s, %s: only %d of %d repetitions: %s", sc.id, name, len(reps), e.cfg.reps, skip)
		}
		if r.Errors > 0 {
			e.note("scenario %s, %s: %d failed requests", sc.id, name, r.Errors)
		}
		s.Results = append(s.Results, r)
	}
	s.AddOverBaseline()
	return s
}

func summary(r report.Rep) string {
	out := ""
	for _, k := range []string{"p50", "p99", "rps", "cpu_per_1k", "mb_per_s", "cpu_per_gb", "peak_rss_mb", "initial_s", "cp_cpu_s", "cp_rss_mb", "churn_rate", "churn_cpu", "churn_lag_p99", "xds_resets"} {
		if v, ok := r.Metrics[k]; ok {
			out += fmt.Sprintf("%s=%.4g ", k, v)
		}
	}
	return out + fmt.Sprintf("errors=%d", r.Errors)
}

const mib = 1 << 20

// measure starts the target, warms it up, and measures one repetition.
func (e *env) measure(ctx context.Context, sc scenarioDef, name string) (report.Rep, string, error) {
	r, err := e.startTarget(name, sc.mode)
	if err != nil {
		return report.Rep{}, "", err
	}
	defer r.stop()
	var idle procstat.Sample
	if len(r.procs) > 0 {
		if idle, err = procstat.Group(r.pids()); err != nil {
			return report.Rep{}, "", err
		}
	}
	if sc.mode == peers.TCP {
		return e.measureTCP(ctx, r)
	}
	l := sc.load.target(r.addr)
	warm := l
	warm.Duration = e.cfg.warmup
	if res, err := runFortio(ctx, e.bins["fortio"], e.cfg.niceness, e.cfg.loadCPU, e.dir, warm); err != nil {
		return report.Rep{}, "", err
	} else if res.ok() == 0 {
		return report.Rep{}, "", fmt.Errorf("no successful request during warm-up (codes %v)", res.RetCodes)
	}
	var before, after procstat.Sample
	if len(r.procs) > 0 {
		if before, err = procstat.Group(r.pids()); err != nil {
			return report.Rep{}, "", err
		}
	}
	res, err := runFortio(ctx, e.bins["fortio"], e.cfg.niceness, e.cfg.loadCPU, e.dir, l)
	if err != nil {
		return report.Rep{}, "", err
	}
	rep := res.rep()
	if len(r.procs) > 0 {
		if after, err = procstat.Group(r.pids()); err != nil {
			return report.Rep{}, "", err
		}
		cpu := (after.CPU - before.CPU).Seconds()
		n := float64(res.DurationHistogram.Count)
		if n > 0 {
			rep.Metrics["cpu_per_1k"] = cpu / n * 1000
		}
		if cpu > 0 {
			rep.Metrics["rps_per_cpu_s"] = n / cpu
		}
		rep.Metrics["peak_rss_mb"] = float64(after.HWM) / mib
		rep.Metrics["idle_rss_mb"] = float64(idle.RSS) / mib
	}
	return rep, r.label, nil
}

func (e *env) measureTCP(ctx context.Context, r *running) (report.Rep, string, error) {
	tcpload := func(d time.Duration) (float64, error) {
		argv := command(e.cfg.niceness, e.cfg.loadCPU, e.bins["benchnet"], "tcpload", "-addr", r.addr, "-duration", d.String())
		out, err := output(ctx, argv[0], argv[1:]...)
		if err != nil {
			return 0, err
		}
		var res struct{ Bytes int64 }
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			return 0, fmt.Errorf("tcpload output %q: %w", out, err)
		}
		return float64(res.Bytes), nil
	}
	if _, err := tcpload(e.cfg.warmup); err != nil {
		return report.Rep{}, "", err
	}
	var before procstat.Sample
	var err error
	if len(r.procs) > 0 {
		if before, err = procstat.Group(r.pids()); err != nil {
			return report.Rep{}, "", err
		}
	}
	t0 := time.Now()
	n, err := tcpload(e.cfg.duration)
	if err != nil {
		return report.Rep{}, "", err
	}
	secs := time.Since(t0).Seconds()
	rep := report.Rep{Metrics: map[string]float64{"mb_per_s": n / secs / 1e6}}
	if len(r.procs) > 0 {
		after, err := procstat.Group(r.pids())
		if err != nil {
			return report.Rep{}, "", err
		}
		if n > 0 {
			rep.Metrics["cpu_per_gb"] = (after.CPU - before.CPU).Seconds() / (n / 1e9)
		}
		rep.Metrics["peak_rss_mb"] = float64(after.HWM) / mib
	}
	return rep, r.label, nil
}

// profile runs weft-proxy-pprof under scenario 1's load and saves a CPU
// profile of it to path.
func (e *env) profile(ctx context.Context, sc scenarioDef, path string) (file, top string, err error) {
	bin, ok := e.bins["weft-proxy-pprof"]
	if !ok {
		return "", "", fmt.Errorf("%s", e.missing["weft-proxy-pprof"])
	}
	listen, err := freePort()
	if err != nil {
		return "", "", err
	}
	pp, err := freePort()
	if err != nil {
		return "", "", err
	}
	dir := filepath.Join(e.dir, "profile")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	p, err := e.startWeftBin(bin, "weft-proxy-pprof", "router", dir, listen, xdsconf.Router(listen, e.upstream(sc.mode), xdsconf.HTTP1), []string{"-pprof", pp})
	if err != nil {
		return "", "", err
	}
	defer p.stop()
	// Long enough for a useful number of samples at 1000 rps.
	d := max(2*e.cfg.duration, 6*time.Second)
	secs := int(d.Seconds()) - 1
	type got struct {
		data []byte
		err  error
	}
	ch := make(chan got, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pp, secs))
		if err != nil {
			ch <- got{nil, err}
			return
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("pprof: %s: %s", resp.Status, data)
		}
		ch <- got{data, err}
	}()
	l := sc.load.target(listen)
	l.Duration = d
	if _, err := runFortio(ctx, e.bins["fortio"], e.cfg.niceness, e.cfg.loadCPU, e.dir, l); err != nil {
		return "", "", err
	}
	g := <-ch
	if g.err != nil {
		return "", "", g.err
	}
	if err := os.WriteFile(path, g.data, 0o644); err != nil {
		return "", "", err
	}
	e.logf("wrote %s", path)
	// A text summary beside it and on the page, readable without tools.
	if out, err := output(ctx, "go", "tool", "pprof", "-top", "-nodecount=25", path); err == nil {
		top = out
		os.WriteFile(path+".top.txt", []byte(top), 0o644)
	}
	return path, top, nil
}

// oneLine flattens a multi-line error (a process's log tail) for a table.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
