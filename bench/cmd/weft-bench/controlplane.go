package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weftmesh/weft/bench/procstat"
	"github.com/weftmesh/weft/bench/report"
	"github.com/weftmesh/weft/internal/xds/loadtest"
)

// cpSize sizes scenario 6.
type cpSize struct {
	services  int
	proxies   []int // one run per count, in order
	churnRate int
	delta     bool
	// maxRSSMB aborts the scenario when weftd's RSS passes it, so that a
	// memory-hungry control plane cannot take the machine down.
	maxRSSMB int
	// memoryLimit is weftd's --memory-limit (Go's soft memory limit).
	memoryLimit string
}

// serviceYAML is one HTTP ServiceEntry with one static endpoint, in the
// namespace ns-<i/10>, as Istio users write them for VMs.
func serviceYAML(name string, i int, addr string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: %[1]s
  namespace: ns-%[2]d
spec:
  hosts:
  - %[1]s.ns-%[2]d.svc.cluster.local
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - number: 8080
    name: http
    protocol: HTTP
  endpoints:
  - address: %[3]s
`, name, i/10, addr)
}

// writeMesh writes n services into dir, 100 per file.
func writeMesh(dir string, n int) error {
	var b strings.Builder
	flush := func(k int) error {
		if b.Len() == 0 {
			return nil
		}
		err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("services-%03d.yaml", k)), []byte(b.String()), 0o644)
		b.Reset()
		return err
	}
	for i := range n {
		if i > 0 && i%100 == 0 {
			if err := flush(i/100 - 1); err != nil {
				return err
			}
		}
		b.WriteString("---\n" + serviceYAML(fmt.Sprintf("svc-%d", i), i, fmt.Sprintf("10.%d.%d.%d", 1+i/65536, i/256%256, i%256)))
	}
	return flush((n - 1) / 100)
}

// cpClients is the set of simulated proxies and what they received.
type cpClients struct {
	clients []atomic.Pointer[loadtest.Client] // the current stream of each proxy
	resets  atomic.Int64                      // streams that failed and were reopened
	lastErr atomic.Pointer[error]
	last    []atomic.Int64 // unix nanos of each client's last answered response
	lastAny atomic.Int64
	total   atomic.Int64 // responses answered
}

func (c *cpClients) ready() int {
	n := 0
	for i := range c.clients {
		cl := c.clients[i].Load()
		if cl == nil {
			continue
		}
		if cl.Count(resource.ClusterType) > 0 && cl.Count(resource.EndpointType) > 0 && cl.Count(resource.ListenerType) > 0 && cl.Count(resource.RouteType) > 0 {
			n++
		}
	}
	return n
}

// settle waits until cond holds and no client received anything for
// quiet, or timeout.
func (c *cpClients) settle(ctx context.Context, quiet, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if cond() && time.Since(time.Unix(0, c.lastAny.Load())) >= quiet {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not settled after %v", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(quiet / 10):
		}
	}
}

// controlPlane runs scenario 6 once per proxy count.
func (e *env) controlPlane(ctx context.Context) report.Scenario {
	sz := e.cfg.cpSize
	counts := make([]string, len(sz.proxies))
	for i, n := range sz.proxies {
		counts[i] = fmt.Sprint(n)
	}
	s := report.Scenario{ID: "6", Title: fmt.Sprintf("Control plane: %d services, %s simulated proxies", sz.services, strings.Join(counts, " and ")),
		Description: fmt.Sprintf("bin/weftd (pinned to the proxy CPU) serves %d ServiceEntries (one port, one static endpoint each, read from files) to N simulated sidecars "+
			"(internal/xds/loadtest clients, %s, one gRPC connection each, in the harness on the load CPU); every proxy sees every service. "+
			"Push→all ACK: a new service is applied through weftd's admin API (POST /api/v1/apply), timed until every proxy has acknowledged its last response "+
			"(per-proxy times, p50 and p99 across proxies; median of the repetitions). Churn: endpoint changes applied through the API at the target rate for the run's duration; "+
			"weftd's CPU in cores while it lasts, and the p99 across proxies of the time from the last change until the proxy acknowledged it. weftd runs with its default debounce (100 ms, max 10 s). "+
			"A run is aborted when weftd's RSS passes %d MB.",
			sz.services, map[bool]string{false: "state of the world", true: "delta"}[sz.delta], sz.maxRSSMB),
		Columns: []string{"initial_s", "push_p50_ms", "push_p99_ms", "cp_cpu_s", "cp_rss_mb", "churn_rate", "churn_cpu", "churn_lag_p99", "xds_resets"}}
	for _, n := range sz.proxies {
		name := fmt.Sprintf("weftd, %d proxies", n)
		e.logf("  %s", name)
		r, err := e.runControlPlane(ctx, n)
		if err != nil {
			e.logf("  %s skipped: %v", name, err)
			s.Results = append(s.Results, report.Result{Proxy: name, Skipped: oneLine(err.Error())})
			continue
		}
		r.Proxy = name
		med := map[string]float64{}
		for k, v := range r.Metrics {
			med[k] = v.Median
		}
		e.logf("  %s: %s", name, summary(report.Rep{Metrics: med}))
		s.Results = append(s.Results, *r)
	}
	return s
}

func (e *env) runControlPlane(ctx context.Context, proxies int) (*report.Result, error) {
	sz := e.cfg.cpSize
	bin, ok := e.bins["weftd"]
	if !ok {
		return nil, fmt.Errorf("%s (run make build)", e.missing["weftd"])
	}
	dir := filepath.Join(e.dir, "weftd")
	cfgDir := filepath.Join(dir, "config")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		return nil, err
	}
	if err := writeMesh(cfgDir, sz.services); err != nil {
		return nil, err
	}
	xdsAddr, err := freePort()
	if err != nil {
		return nil, err
	}
	adminAddr, err := freePort()
	for err == nil && adminAddr == xdsAddr { // freePort may hand out a port twice
		adminAddr, err = freePort()
	}
	if err != nil {
		return nil, err
	}
	p, err := e.start("weftd", dir, e.cfg.proxyCPU, bin, []string{"--config-dir", cfgDir, "--listen-address", "127.0.0.1",
		"--xds-port", portOf(xdsAddr), "--admin-port", portOf(adminAddr), "--secure-xds-port", "-1", "--log-level", "warn", "--memory-limit", sz.memoryLimit}, []string{"XDG_STATE_HOME=" + dir})
	if err != nil {
		return nil, err
	}
	defer p.stop()
	if err := p.waitFor(60*time.Second, httpOK("http://"+adminAddr+"/healthz")); err != nil {
		return nil, err
	}
	admin := "http://" + adminAddr
	cpStart, err := procstat.Read(p.pid())
	if err != nil {
		return nil, err
	}
	self, err := procstat.Read(os.Getpid())
	if err != nil {
		return nil, err
	}

	// Connect the simulated proxies.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs := &cpClients{last: make([]atomic.Int64, proxies), clients: make([]atomic.Pointer[loadtest.Client], proxies)}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	begin := time.Now()
	for i := range proxies {
		conn, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		// Like Envoy, a proxy whose stream fails opens a new one (with
		// a fresh state) after a short back-off; resets are counted.
		wg.Go(func() {
			defer conn.Close()
			for cctx.Err() == nil {
				c := &loadtest.Client{Node: loadtest.Node(i), Delta: sz.delta, Discard: true}
				c.OnResponse = func(r loadtest.Response) {
					t := r.Time.UnixNano()
					cs.last[i].Store(t)
					cs.lastAny.Store(t)
					cs.total.Add(1)
				}
				cs.clients[i].Store(c)
				err := c.Run(cctx, conn)
				if cctx.Err() != nil {
					return
				}
				if err == nil {
					err = fmt.Errorf("stream closed by the server")
				}
				cs.resets.Add(1)
				cs.lastErr.Store(&err)
				select {
				case <-cctx.Done():
				case <-time.After(500 * time.Millisecond):
				}
			}
		})
	}
	// Watchdog: stop everything if weftd grows past the memory cap.
	var overCap atomic.Pointer[error]
	wg.Go(func() {
		for cctx.Err() == nil {
			if smp, err := procstat.Read(p.pid()); err == nil && smp.RSS > int64(sz.maxRSSMB)*mib {
				err := fmt.Errorf("aborted: weftd RSS %.0f MB passed the %d MB cap (-cp-max-rss-mb) with %d of %d proxies configured",
					float64(smp.RSS)/mib, sz.maxRSSMB, cs.ready(), proxies)
				overCap.Store(&err)
				p.stop()
				cancel()
				return
			}
			select {
			case <-cctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
	failed := func() error {
		if e := overCap.Load(); e != nil {
			return *e
		}
		if ok, err := p.exited(); ok {
			return fmt.Errorf("weftd exited: %v: %s", err, p.tail())
		}
		return nil
	}
	if err := cs.settle(cctx, time.Second, 10*time.Minute, func() bool { return failed() != nil || cs.ready() == proxies }); err != nil {
		if ferr := failed(); ferr != nil {
			return nil, ferr
		}
		return nil, fmt.Errorf("initial configuration: %d of %d proxies ready: %w", cs.ready(), proxies, err)
	}
	if err := failed(); err != nil {
		return nil, err
	}
	initial := time.Since(begin) - time.Second // minus the quiet period
	e.logf("  %d proxies configured in %v", proxies, initial.Round(time.Millisecond))

	apply := func(yaml string) error {
		resp, err := http.Post(admin+"/api/v1/apply?file=bench.yaml", "application/yaml", bytes.NewBufferString(yaml))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("apply: %s: %s", resp.Status, body)
		}
		return nil
	}

	// Push latency: a new service, repeated.
	var reps []report.Rep
	for k := range e.cfg.reps {
		t0 := time.Now()
		if err := apply(serviceYAML(fmt.Sprintf("push-%d", k), k, fmt.Sprintf("10.250.0.%d", k+1))); err != nil {
			return nil, err
		}
		updated := func() int {
			n := 0
			for i := range cs.last {
				if cs.last[i].Load() > t0.UnixNano() {
					n++
				}
			}
			return n
		}
		if err := cs.settle(cctx, time.Second, 5*time.Minute, func() bool { return updated() == proxies }); err != nil {
			if ferr := failed(); ferr != nil {
				return nil, ferr
			}
			return nil, fmt.Errorf("push %d: %d of %d proxies updated: %w", k, updated(), proxies, err)
		}
		var lat []float64
		for i := range cs.last {
			lat = append(lat, float64(cs.last[i].Load()-t0.UnixNano())/1e6)
		}
		slices.Sort(lat)
		reps = append(reps, report.Rep{Metrics: map[string]float64{
			"push_p50_ms": lat[len(lat)/2], "push_p99_ms": lat[min(len(lat)-1, len(lat)*99/100)],
		}})
		e.logf("  push %d: p50 %.0f ms, p99 %.0f ms", k+1, lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)])
	}

	// Endpoint churn through the API on a few services.
	const churned = 10
	var setup strings.Builder
	for k := range churned {
		setup.WriteString("---\n" + serviceYAML(fmt.Sprintf("churn-%d", k), k, "10.251.0.1"))
	}
	setupAt := time.Now().UnixNano()
	if err := apply(setup.String()); err != nil {
		return nil, err
	}
	// Wait until every proxy has the churned services, so that the churn
	// measures endpoint changes alone (not this service push as well).
	setupDone := func() bool {
		for i := range cs.last {
			if cs.last[i].Load() <= setupAt {
				return false
			}
		}
		return true
	}
	if err := cs.settle(cctx, time.Second, 5*time.Minute, setupDone); err != nil {
		if ferr := failed(); ferr != nil {
			return nil, ferr
		}
		return nil, err
	}
	before, err := procstat.Read(p.pid())
	if err != nil {
		return nil, err
	}
	respBefore := cs.total.Load()
	churnFor := e.cfg.duration
	interval := time.Second / time.Duration(max(sz.churnRate, 1))
	tick := time.NewTicker(interval)
	t0 := time.Now()
	changes := 0
	var lastApplied time.Time // when the last change was in weftd's model
	for time.Since(t0) < churnFor && cctx.Err() == nil {
		<-tick.C
		changes++
		k := changes % churned
		if err := apply(serviceYAML(fmt.Sprintf("churn-%d", k), k, fmt.Sprintf("10.251.%d.%d", changes/250%250, changes%250+1))); err != nil {
			tick.Stop()
			return nil, err
		}
		lastApplied = time.Now()
	}
	tick.Stop()
	elapsed := time.Since(t0)
	if err := failed(); err != nil {
		return nil, err
	}
	after, err := procstat.Read(p.pid())
	if err != nil {
		return nil, err
	}
	respDuring := cs.total.Load() - respBefore
	// Wait until weftd has every proxy synced at the model version of the
	// last change (a push at the debounce maximum may have carried it
	// before the churn loop ended, so "a response after the churn" is not
	// the condition); a proxy's lag is from the last change to its last
	// response, 0 if it had it already.
	final, err := settledModelVersion(cctx, admin)
	if err != nil {
		return nil, err
	}
	var unsynced int
	syncedAll := func() bool {
		n, err := unsyncedProxies(admin, final, proxies)
		if err != nil {
			n = proxies
		}
		unsynced = n
		return n == 0
	}
	if err := cs.settle(cctx, time.Second, 5*time.Minute, syncedAll); err != nil {
		if ferr := failed(); ferr != nil {
			return nil, ferr
		}
		return nil, fmt.Errorf("after churn: %d of %d proxies not synced at model version %d: %w", unsynced, proxies, final, err)
	}
	var lags []float64
	for i := range cs.last {
		lags = append(lags, max(0, float64(cs.last[i].Load()-lastApplied.UnixNano())/1e6))
	}
	slices.Sort(lags)
	lag := lags[min(len(lags)-1, len(lags)*99/100)]
	end, err := procstat.Read(p.pid())
	if err != nil {
		return nil, err
	}
	if err := failed(); err != nil {
		return nil, err
	}
	res := report.Aggregate("weftd", false, reps)
	one := func(v float64) report.Stat { return report.Stat{Median: v, Min: v, Max: v} }
	res.Metrics["initial_s"] = one(initial.Seconds())
	res.Metrics["cp_cpu_s"] = one((end.CPU - cpStart.CPU).Seconds())
	res.Metrics["cp_rss_mb"] = one(float64(end.HWM) / mib)
	res.Metrics["churn_rate"] = one(float64(changes) / elapsed.Seconds())
	res.Metrics["churn_cpu"] = one((after.CPU - before.CPU).Seconds() / elapsed.Seconds())
	res.Metrics["churn_lag_p99"] = one(lag)
	res.Metrics["xds_resets"] = one(float64(cs.resets.Load()))
	selfEnd, err := procstat.Read(os.Getpid())
	if err != nil {
		return nil, err
	}
	resets := ""
	if n := cs.resets.Load(); n > 0 {
		resets = fmt.Sprintf("; %d xDS streams failed and were reopened (last error: %v)", n, *cs.lastErr.Load())
	}
	e.note("scenario 6, %d proxies (weftd --memory-limit %s): weftd used %.1f CPU-s in all and the simulated proxies (the harness process, on the load CPU) %.1f CPU-s; %d pushes, %d churn changes; %d responses answered by the simulated proxies, %d of them during the churn%s",
		proxies, sz.memoryLimit, (end.CPU - cpStart.CPU).Seconds(), (selfEnd.CPU - self.CPU).Seconds(), e.cfg.reps, changes, cs.total.Load(), respDuring, resets)
	return &res, nil
}

// modelVersion reads weftd's model snapshot version from its metrics.
func modelVersion(admin string) (uint64, error) {
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "weft_config_snapshot_version "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return uint64(f), err
		}
	}
	return 0, fmt.Errorf("%s/metrics has no weft_config_snapshot_version", admin)
}

// settledModelVersion waits until weftd's model version stays the same
// for 300 ms (the API applies changes to the model asynchronously) and
// returns it.
func settledModelVersion(ctx context.Context, admin string) (uint64, error) {
	prev, err := modelVersion(admin)
	for err == nil {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
		var v uint64
		if v, err = modelVersion(admin); err == nil && v == prev {
			return v, nil
		}
		prev = v
	}
	return 0, err
}

// unsyncedProxies counts the proxies weftd's /debug/syncz does not show
// connected and synced (every type acknowledged) at model version v or
// later, out of want.
func unsyncedProxies(admin string, v uint64, want int) (int, error) {
	resp, err := http.Get(admin + "/debug/syncz")
	if err != nil {
		return want, err
	}
	defer resp.Body.Close()
	var status []struct {
		ModelVersion uint64 `json:"modelVersion"`
		Types        []struct {
			State string `json:"state"`
		} `json:"types"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&status); err != nil {
		return want, err
	}
	synced := 0
	for _, p := range status {
		ok := p.ModelVersion >= v
		for _, t := range p.Types {
			ok = ok && t.State == "SYNCED"
		}
		if ok {
			synced++
		}
	}
	return want - synced, nil
}
