// Command weft-bench is Weft's benchmark harness (`make bench`): it runs
// every scenario for weft-proxy and its peers (nginx, haproxy, Caddy) with
// one load generator (fortio) and one Go backend (benchnet), writes
// bench/results/<date>-<commit>.json and regenerates BENCHMARKS.md with a
// latency plot per scenario. See bench/README.md.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/weftmesh/weft/bench/report"
	"github.com/weftmesh/weft/bench/xdsconf"
)

// config is the harness's whole configuration, from flags.
type config struct {
	quick     bool
	reps      int
	duration  time.Duration
	warmup    time.Duration
	scenarios map[string]bool
	outDir    string
	markdown  string
	binDir    string // weft-proxy, weftd, benchnet, weft-proxy-pprof
	cacheBin  string // fortio, caddy
	proxyCPU  int
	loadCPU   int
	profile   bool
	niceness  int
	only      map[string]bool // targets to run; empty is all
	render    string          // results file to render instead of running
	cpSize    cpSize
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "weft-bench:", err)
		os.Exit(2)
	}
	if cfg.render != "" {
		f, err := report.ReadFile(cfg.render)
		if err == nil && f.Profile != "" && f.ProfileTop == "" {
			if top, rerr := os.ReadFile(f.Profile + ".top.txt"); rerr == nil {
				f.ProfileTop = string(top)
			}
		}
		if err == nil {
			err = render(f, cfg.render, filepath.Dir(cfg.render), cfg.markdown, func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) })
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "weft-bench:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "weft-bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	home, _ := os.UserHomeDir()
	fs := flag.NewFlagSet("weft-bench", flag.ContinueOnError)
	var c config
	fs.BoolVar(&c.quick, "quick", false, "quick run: scenario 1 only, short durations, 2 repetitions")
	fs.IntVar(&c.reps, "reps", 3, "repetitions per scenario and proxy")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured load duration per repetition")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "unmeasured load before each measurement")
	only := fs.String("scenarios", "1,2,3,4,5,6", "comma-separated scenarios to run")
	fs.StringVar(&c.outDir, "out", "bench/results", "results directory")
	fs.StringVar(&c.markdown, "markdown", "BENCHMARKS.md", "page to regenerate (empty: none)")
	fs.StringVar(&c.binDir, "bin", "bin", "directory holding weft-proxy, weftd, benchnet and weft-proxy-pprof")
	fs.StringVar(&c.cacheBin, "cache-bin", filepath.Join(home, ".cache/weft-bench/bin"), "directory holding fortio-<version> and caddy-<version>")
	fs.IntVar(&c.proxyCPU, "proxy-cpu", 0, "CPU the proxy under test is pinned to")
	fs.IntVar(&c.loadCPU, "load-cpu", 1, "CPU fortio and the backend are pinned to")
	defNice := 0
	if os.Geteuid() == 0 {
		defNice = -10
	}
	fs.IntVar(&c.niceness, "nice", defNice, "niceness of the proxies, fortio and the backend (negative needs root): less disturbance from other work on the machine")
	fs.BoolVar(&c.profile, "profile", true, "collect a CPU profile of weft-proxy under scenario 1's load")
	targets := fs.String("proxies", "", "comma-separated targets to run (direct, weft-proxy, nginx, haproxy, caddy, weft-mesh, weft-mesh-mtls; weft-proxy and weft-mesh also select both mesh-path rows); empty is all")
	fs.StringVar(&c.render, "render", "", "only regenerate the plots and the markdown page from this results file")
	fs.IntVar(&c.cpSize.services, "cp-services", 1000, "scenario 6: services")
	cpProxies := fs.String("cp-proxies", "100,2000", "scenario 6: comma-separated counts of simulated proxies, one run each")
	fs.IntVar(&c.cpSize.churnRate, "cp-churn", 100, "scenario 6: endpoint changes per second")
	fs.IntVar(&c.cpSize.maxRSSMB, "cp-max-rss-mb", 4096, "scenario 6: abort when weftd's RSS passes this many MB")
	fs.StringVar(&c.cpSize.memoryLimit, "cp-memory-limit", "none", "scenario 6: weftd's --memory-limit (Go's soft memory limit: none, auto or a size such as 450MiB)")
	fs.BoolVar(&c.cpSize.delta, "cp-delta", false, "scenario 6: simulated proxies use delta xDS")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.quick {
		if !set["scenarios"] {
			*only = "1"
		}
		if !set["reps"] {
			c.reps = 2
		}
		if !set["duration"] {
			c.duration = 3 * time.Second
		}
		if !set["warmup"] {
			c.warmup = time.Second
		}
	}
	c.scenarios = map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		s = strings.TrimSpace(s)
		if _, ok := scenarioIDs[s]; !ok {
			return c, fmt.Errorf("-scenarios: unknown scenario %q (want 1-6)", s)
		}
		c.scenarios[s] = true
	}
	for _, n := range strings.Split(*cpProxies, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil || v < 1 {
			return c, fmt.Errorf("-cp-proxies: %q is not a positive count", n)
		}
		c.cpSize.proxies = append(c.cpSize.proxies, v)
	}
	c.only = map[string]bool{}
	for _, t := range strings.Split(*targets, ",") {
		if t = strings.TrimSpace(t); t != "" {
			c.only[t] = true
		}
	}
	if c.reps < 1 {
		return c, fmt.Errorf("-reps: %d, want at least 1", c.reps)
	}
	return c, nil
}

var scenarioIDs = map[string]bool{"1": true, "2": true, "3": true, "4": true, "5": true, "6": true}

const (
	fortioVersion = "v1.68.2"
	caddyVersion  = "v2.11.9"
)

// env is what a run needs: the binaries found, the backend, the xDS
// server, and a scratch directory.
type env struct {
	cfg         config
	dir         string
	bins        map[string]string // name → path; absent when missing
	missing     map[string]string // name → why
	backend     map[string]string // benchnet serve addresses
	backendProc *process
	xds         *xdsconf.Server
	ca          *xdsconf.CA // scenario 4's identities; nil until needed
	versions    map[string]string
	notes       []string
	seq         int
}

func (e *env) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func run(ctx context.Context, cfg config) error {
	started := time.Now().UTC()
	e := &env{cfg: cfg, bins: map[string]string{}, missing: map[string]string{}, versions: map[string]string{}}
	dir, err := os.MkdirTemp("", "weft-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	e.dir = dir
	e.findBinaries()
	if _, ok := e.bins["fortio"]; !ok {
		return fmt.Errorf("fortio: %s (run bench/install-peers.sh)", e.missing["fortio"])
	}
	if _, ok := e.bins["benchnet"]; !ok {
		return fmt.Errorf("benchnet: %s (make bench builds it)", e.missing["benchnet"])
	}
	if err := e.startBackend(); err != nil {
		return err
	}
	defer e.backendProc.stop()
	if e.xds, err = xdsconf.Start(); err != nil {
		return err
	}
	defer e.xds.Stop()
	defer func() {
		if e.ca != nil {
			e.ca.Stop()
		}
	}()

	commit := gitCommit()
	stem := started.Format("2006-01-02T1504Z") + "-" + commit
	f := &report.File{
		Date: started.Format(time.RFC3339), Commit: commit, Quick: cfg.quick, Reps: cfg.reps,
		Machine:  machine(cfg),
		Versions: e.versions,
	}
	if err := os.MkdirAll(cfg.outDir, 0o755); err != nil {
		return err
	}
	for _, sc := range scenarios(e) {
		if !cfg.scenarios[sc.group] || ctx.Err() != nil {
			continue
		}
		e.logf("scenario %s: %s", sc.id, sc.title)
		s := e.runScenario(ctx, sc)
		f.Scenarios = append(f.Scenarios, s)
		if sc.id == "1" && cfg.profile {
			if p, top, err := e.profile(ctx, sc, filepath.Join(cfg.outDir, stem+"-weft-proxy.cpu.pprof")); err != nil {
				e.note("CPU profile of weft-proxy not collected: %v", err)
			} else {
				f.Profile, f.ProfileTop = p, top
			}
		}
	}
	if cfg.scenarios["6"] && ctx.Err() == nil {
		e.logf("scenario 6: control plane")
		f.Scenarios = append(f.Scenarios, e.controlPlane(ctx))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f.Machine.LoadEnd = loadAvg()
	if f.Machine.LoadStart > 1 || f.Machine.LoadEnd > 1 {
		e.note("The machine was not idle (load average %.2f at start, %.2f at end on %d cores): other work competed for the CPUs, so absolute figures are pessimistic and noisy; compare within a run.", f.Machine.LoadStart, f.Machine.LoadEnd, f.Machine.Cores)
	}
	f.Notes = e.notes
	jsonPath := filepath.Join(cfg.outDir, stem+".json")
	if err := f.Write(jsonPath); err != nil {
		return err
	}
	e.logf("wrote %s", jsonPath)
	return render(f, jsonPath, cfg.outDir, cfg.markdown, e.logf)
}

// render writes the SVG plots of f beside its results file and
// regenerates the markdown page.
func render(f *report.File, jsonPath, outDir, markdown string, logf func(string, ...any)) error {
	stem := strings.TrimSuffix(filepath.Base(jsonPath), ".json")
	plots := map[string]string{}
	for i := range f.Scenarios {
		s := &f.Scenarios[i]
		if !s.HasCurves() {
			continue
		}
		p := filepath.Join(outDir, stem+"-s"+s.ID+".svg")
		out, err := os.Create(p)
		if err != nil {
			return err
		}
		err = s.LatencySVG(out)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		plots[s.ID] = p
	}
	if markdown != "" {
		out, err := os.Create(markdown)
		if err != nil {
			return err
		}
		err = f.Markdown(out, jsonPath, func(id string) string { return plots[id] })
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		logf("wrote %s", markdown)
	}
	return nil
}

func (e *env) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	e.logf("note: %s", msg)
	e.notes = append(e.notes, msg)
}

// findBinaries locates every program and records its version.
func (e *env) findBinaries() {
	look := func(name, path string) {
		if p, err := exec.LookPath(path); err == nil {
			e.bins[name] = p
		} else {
			e.missing[name] = "not installed (" + path + " not found)"
		}
	}
	look("fortio", filepath.Join(e.cfg.cacheBin, "fortio-"+fortioVersion))
	look("caddy", filepath.Join(e.cfg.cacheBin, "caddy-"+caddyVersion))
	look("nginx", "nginx")
	look("haproxy", "haproxy")
	for _, n := range []string{"weft-proxy", "weftd", "benchnet", "weft-proxy-pprof"} {
		look(n, filepath.Join(e.cfg.binDir, n))
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		e.note("taskset not found: processes are not pinned to CPUs")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	version := func(name string, args ...string) {
		p, ok := e.bins[name]
		if !ok {
			e.versions[name] = "missing"
			return
		}
		out, _ := exec.CommandContext(ctx, p, args...).CombinedOutput()
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		e.versions[name] = strings.TrimSpace(line)
	}
	version("nginx", "-v")
	version("haproxy", "-v")
	version("caddy", "version")
	if _, ok := e.bins["fortio"]; ok {
		e.versions["fortio"] = fortioVersion
	}
	if _, ok := e.bins["caddy"]; ok && (e.versions["caddy"] == "" || strings.Contains(e.versions["caddy"], "unknown")) {
		e.versions["caddy"] = caddyVersion
	}
	e.versions["weft-proxy"] = gitCommit()
}

// startBackend runs benchnet serve pinned to the load CPU.
func (e *env) startBackend() error {
	p, err := e.start("backend", e.dir, e.cfg.loadCPU, e.bins["benchnet"], []string{"serve"}, nil)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		data, _ := os.ReadFile(p.log)
		if line, _, ok := strings.Cut(string(data), "\n"); ok {
			if err := json.Unmarshal([]byte(line), &e.backend); err != nil {
				p.stop()
				return fmt.Errorf("backend: %v: %s", err, data)
			}
			e.backendProc = p
			return nil
		}
		if ok, err := p.exited(); ok {
			return fmt.Errorf("backend exited: %v: %s", err, p.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.stop()
	return fmt.Errorf("backend did not start: %s", p.tail())
}

// machine describes this machine.
func machine(cfg config) report.Machine {
	m := report.Machine{Cores: onlineCPUs(), GoVersion: runtime.Version(), LoadStart: loadAvg(),
		Pinning: fmt.Sprintf("proxy under test on CPU %d; fortio, the Go backend and the TCP client on CPU %d (taskset); all at niceness %d", cfg.proxyCPU, cfg.loadCPU, cfg.niceness)}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.GoVersion = strings.TrimSpace(strings.TrimPrefix(string(out), "go version "))
	}
	return m
}

func loadAvg() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if exec.Command("git", "diff", "--quiet", "HEAD", "--", ".").Run() != nil {
		c += "-dirty"
	}
	return c
}

// onlineCPUs counts the machine's CPUs (runtime.NumCPU counts only those
// this process may run on, and the harness is pinned).
func onlineCPUs() int {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for line := range strings.SplitSeq(string(data), "\n") {
		if k, _, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "processor" {
			n++
		}
	}
	return max(n, 1)
}
