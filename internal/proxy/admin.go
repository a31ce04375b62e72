package proxy

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/weftmesh/weft/internal/proxy/xdsclient"
)

// adminHandler serves Envoy-style admin endpoints on 127.0.0.1:15000.
func (p *Proxy) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/config_dump", p.configDump)
	mux.HandleFunc("/clusters", p.clusters)
	mux.HandleFunc("/stats", p.stats)
	mux.HandleFunc("/stats/prometheus", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		p.metrics.WritePrometheus(w)
	})
	mux.HandleFunc("/ready", p.readyText)
	mux.HandleFunc("/logging", p.logging)
	mux.HandleFunc("/drain_listeners", p.drainListeners)
	mux.HandleFunc("/quitquitquit", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST required", http.StatusMethodNotAllowed)
			return
		}
		io.WriteString(w, "OK\n")
		p.Quit()
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "weft-proxy admin: /config_dump /clusters /stats /stats/prometheus /ready /logging /drain_listeners /quitquitquit\n")
	})
	return mux
}

func (p *Proxy) readyHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz/ready", p.readyText)
	return mux
}

func (p *Proxy) statsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/stats/prometheus", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		p.metrics.WritePrometheus(w)
		p.writeEnvoyPrometheus(w)
	})
	return mux
}

func (p *Proxy) readyText(w http.ResponseWriter, r *http.Request) {
	if !p.Ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "PRE_INITIALIZING\n")
		return
	}
	io.WriteString(w, "LIVE\n")
}

// configDump renders the active configuration as Envoy's ConfigDump.
func (p *Proxy) configDump(w http.ResponseWriter, r *http.Request) {
	s := p.state.Load()
	dump := &adminv3.ConfigDump{}
	if s != nil {
		at := timestamppb.New(s.AppliedAt)
		snap := s.Snapshot
		cd := &adminv3.ClustersConfigDump{VersionInfo: snap.Versions[xdsclient.ClusterType]}
		for _, n := range sortedNames(snap.Clusters) {
			cd.DynamicActiveClusters = append(cd.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{
				VersionInfo: snap.Versions[xdsclient.ClusterType], Cluster: mustAny(snap.Clusters[n]), LastUpdated: at})
		}
		ld := &adminv3.ListenersConfigDump{VersionInfo: snap.Versions[xdsclient.ListenerType]}
		for _, n := range sortedNames(snap.Listeners) {
			ld.DynamicListeners = append(ld.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{Name: n,
				ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: snap.Versions[xdsclient.ListenerType], Listener: mustAny(snap.Listeners[n]), LastUpdated: at}})
		}
		rd := &adminv3.RoutesConfigDump{}
		for _, n := range sortedNames(snap.Routes) {
			rd.DynamicRouteConfigs = append(rd.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{
				VersionInfo: snap.Versions[xdsclient.RouteType], RouteConfig: mustAny(snap.Routes[n]), LastUpdated: at})
		}
		ed := &adminv3.EndpointsConfigDump{}
		for _, n := range sortedNames(snap.Endpoints) {
			ed.DynamicEndpointConfigs = append(ed.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{
				VersionInfo: snap.Versions[xdsclient.EndpointType], EndpointConfig: mustAny(snap.Endpoints[n]), LastUpdated: at})
		}
		p.listenerErrs.dump(ld)
		dump.Configs = []*anypb.Any{mustAny(cd), mustAny(ld), mustAny(rd), mustAny(ed)}
	} else {
		// No config applied yet: still show rejected listeners.
		ld := &adminv3.ListenersConfigDump{}
		if p.listenerErrs.dump(ld); len(ld.DynamicListeners) > 0 {
			dump.Configs = append(dump.Configs, mustAny(ld))
		}
	}
	if sd := p.secretsDump(); sd != nil {
		dump.Configs = append(dump.Configs, mustAny(sd))
	}
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(dump)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		return nil
	}
	return a
}

func sortedNames[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// clusters prints Envoy's /clusters text format.
func (p *Proxy) clusters(w http.ResponseWriter, r *http.Request) {
	s := p.state.Load()
	if s == nil {
		return
	}
	now := time.Now().UnixNano()
	for _, n := range s.Clusters.Names() {
		cl := s.Clusters.Get(n)
		fmt.Fprintf(w, "%s::observability_name::%s\n", n, n)
		for _, h := range cl.Hosts() {
			health := "healthy"
			switch {
			case !h.Healthy():
				health = "/failed_eds_health"
			case h.Ejected(now):
				health = "/failed_outlier_check"
			}
			fmt.Fprintf(w, "%s::%s::rq_active::%d\n", n, h.Addr, h.Active.Load())
			fmt.Fprintf(w, "%s::%s::weight::%d\n", n, h.Addr, h.Weight)
			fmt.Fprintf(w, "%s::%s::region::%s\n", n, h.Addr, h.Locality)
			fmt.Fprintf(w, "%s::%s::health_flags::%s\n", n, h.Addr, health)
		}
	}
}

// statLines returns Envoy-named counters as "name value" pairs.
func (p *Proxy) statLines() [][2]string {
	var out [][2]string
	add := func(name string, v any) { out = append(out, [2]string{name, fmt.Sprint(v)}) }
	if s := p.state.Load(); s != nil {
		for _, n := range s.Clusters.Names() {
			st := s.Clusters.Get(n).Stats
			pre := "cluster." + n + "."
			add(pre+"upstream_rq_total", st.RqTotal.Load())
			add(pre+"upstream_rq_2xx", st.Rq2xx.Load())
			add(pre+"upstream_rq_3xx", st.Rq3xx.Load())
			add(pre+"upstream_rq_4xx", st.Rq4xx.Load())
			add(pre+"upstream_rq_5xx", st.Rq5xx.Load())
			add(pre+"upstream_rq_active", st.RqActive.Load())
			add(pre+"upstream_rq_pending_active", st.RqPendingActive.Load())
			add(pre+"upstream_rq_pending_overflow", st.RqPendingOverflow.Load())
			add(pre+"upstream_rq_retry", st.RqRetry.Load())
			add(pre+"upstream_rq_retry_overflow", st.RqRetryOverflow.Load())
			add(pre+"upstream_rq_timeout", st.RqTimeout.Load())
			add(pre+"upstream_cx_total", st.CxTotal.Load())
			add(pre+"upstream_cx_active", st.CxActive.Load())
			add(pre+"upstream_cx_connect_fail", st.CxConnectFail.Load())
			add(pre+"upstream_cx_destroy", st.CxDestroy.Load())
			add(pre+"upstream_cx_max_requests", st.CxMaxRequests.Load())
			add(pre+"outlier_detection.ejections_total", st.OutlierEjections.Load())
			add(pre+"upstream_cx_none_healthy", st.NoHealthyUpstream.Load())
		}
	}
	p.statsMu.Lock()
	prefixes := sortedNames(p.hcmStats)
	for _, pf := range prefixes {
		st := p.hcmStats[pf]
		pre := "http." + pf + "."
		add(pre+"downstream_rq_total", st.RqTotal.Load())
		add(pre+"downstream_rq_1xx", st.Rq1xx.Load())
		add(pre+"downstream_rq_2xx", st.Rq2xx.Load())
		add(pre+"downstream_rq_3xx", st.Rq3xx.Load())
		add(pre+"downstream_rq_4xx", st.Rq4xx.Load())
		add(pre+"downstream_rq_5xx", st.Rq5xx.Load())
		add(pre+"no_route", st.NoRoute.Load())
		add(pre+"no_cluster", st.NoCluster.Load())
		add(pre+"fault.aborts_injected", st.FaultAbort.Load())
		add(pre+"fault.delays_injected", st.FaultDelay.Load())
		add(pre+"downstream_rq_timeout", st.Timeout.Load())
		add(pre+"rbac.denied", st.RBACDenied.Load())
	}
	p.statsMu.Unlock()
	t := &p.listeners.TCP
	add("tcp.downstream_cx_total", t.CxTotal.Load())
	add("tcp.downstream_cx_active", t.CxActive.Load())
	add("tcp.downstream_cx_tx_bytes_total", t.BytesSent.Load())
	add("tcp.downstream_cx_rx_bytes_total", t.BytesReceived.Load())
	add("tcp.upstream_cx_connect_fail", t.ConnectFail.Load())
	add("tcp.idle_timeout", t.IdleTimeout.Load())
	st := p.xds.Status()
	for _, typ := range sortedNames(st.Types) {
		ts := st.Types[typ]
		short := typ[strings.LastIndexByte(typ, '.')+1:]
		add("xds."+short+".update_success", ts.ACKs)
		add("xds."+short+".update_rejected", ts.NACKs)
	}
	add("xds.connected", map[bool]int{true: 1, false: 0}[st.Connected])
	add("server.state", map[bool]int{true: 0, false: 2}[p.Ready()])
	add("access_log_dropped", p.AccessLogDropped())
	out = append(out, p.tracingStatLines()...)
	return out
}

func (p *Proxy) stats(w http.ResponseWriter, r *http.Request) {
	filter := r.URL.Query().Get("filter")
	for _, kv := range p.statLines() {
		if filter == "" || strings.Contains(kv[0], filter) {
			fmt.Fprintf(w, "%s: %s\n", kv[0], kv[1])
		}
	}
}

// writeEnvoyPrometheus exposes the Envoy counters as envoy_* gauges.
func (p *Proxy) writeEnvoyPrometheus(w io.Writer) {
	for _, kv := range p.statLines() {
		name := "envoy_" + strings.NewReplacer(".", "_", "|", "_", "-", "_").Replace(kv[0])
		fmt.Fprintf(w, "%s %s\n", name, kv[1])
	}
}

// logging changes the log level: POST /logging?level=debug.
func (p *Proxy) logging(w http.ResponseWriter, r *http.Request) {
	if lv := r.URL.Query().Get("level"); lv != "" {
		if r.Method != http.MethodPost {
			http.Error(w, "POST required", http.StatusMethodNotAllowed)
			return
		}
		var l slog.Level
		if err := l.UnmarshalText([]byte(strings.ReplaceAll(lv, "trace", "debug"))); err != nil {
			http.Error(w, "unknown level "+lv, http.StatusBadRequest)
			return
		}
		p.level.Set(l)
	}
	fmt.Fprintf(w, "active loggers:\n  weft: %s\n", strings.ToLower(p.level.Level().String()))
}
