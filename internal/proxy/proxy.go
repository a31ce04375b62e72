// Package proxy assembles weft-proxy: it receives configuration from the
// xDS client, compiles it into an immutable State swapped atomically, and
// runs the listeners, the admin API, readiness and metrics endpoints.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/ca/caclient"
	"github.com/weftmesh/weft/internal/proxy/accesslog"
	"github.com/weftmesh/weft/internal/proxy/bootstrap"
	"github.com/weftmesh/weft/internal/proxy/httpproxy"
	"github.com/weftmesh/weft/internal/proxy/listener"
	"github.com/weftmesh/weft/internal/proxy/router"
	"github.com/weftmesh/weft/internal/proxy/sds"
	"github.com/weftmesh/weft/internal/proxy/telemetry"
	"github.com/weftmesh/weft/internal/proxy/telemetry/peermeta"
	"github.com/weftmesh/weft/internal/proxy/tracing"
	"github.com/weftmesh/weft/internal/proxy/upstream"
	"github.com/weftmesh/weft/internal/proxy/xdsclient"
)

// State is one compiled configuration. It is immutable.
type State struct {
	Snapshot  *xdsclient.Snapshot
	Routes    map[string]*router.Table
	Clusters  *upstream.Set
	Listeners []*listener.Listener
	AppliedAt time.Time
}

// Proxy is a running weft-proxy.
type Proxy struct {
	cfg       bootstrap.Config
	log       *slog.Logger
	level     *slog.LevelVar
	state     atomic.Pointer[State]
	ready     atomic.Bool
	listeners *listener.Manager
	xds       *xdsclient.Client
	metrics   *telemetry.Metrics
	// peerExchange is Istio's HTTP peer metadata exchange, run by every
	// connection manager (see telemetry/peermeta).
	peerExchange *peermeta.Exchange
	// rotator keeps the workload certificate fresh; secrets serve it as
	// SDS "default"/"ROOTCA". Both nil without a CA (see identity.go).
	rotator  *caclient.Rotator
	caClient *caclient.Client
	secrets  *sds.Store
	tracer   *tracing.Tracer // nil when tracing is off (see tracing.go)

	// accessLog, when configured, writes one JSON line per request and
	// tcp_proxy connection; Run runs its writer. accessLogFile is closed
	// when Run returns.
	accessLog     *accesslog.Logger
	accessLogFile io.Closer
	observers     *observers

	statsMu  sync.Mutex // guards hcmStats; used only while compiling
	hcmStats map[string]*httpproxy.Stats

	// listenerErrs are rejected listener configurations (config_dump).
	listenerErrs listenerErrors

	quit     chan struct{}
	quitOnce sync.Once
	// servers are the admin, ready, stats and forward-proxy servers.
	servers []*http.Server
	addrs   map[string]string
}

// New validates cfg and builds a proxy; Run starts it.
func New(cfg bootstrap.Config, log *slog.Logger, level *slog.LevelVar) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if level == nil {
		level = new(slog.LevelVar)
	}
	p := &Proxy{cfg: cfg, log: log, level: level, hcmStats: map[string]*httpproxy.Stats{}, quit: make(chan struct{}), addrs: map[string]string{}}
	p.metrics = telemetry.New(telemetry.Local{
		Workload: cfg.Node.Workload, Namespace: cfg.Node.Namespace, Labels: cfg.Node.Labels,
		ServiceAccount: cfg.Node.ServiceAccount, Cluster: cfg.Node.Cluster, Clusters: p,
	})
	node := cfg.XDSNode()
	px, err := peermeta.New(node.GetId(), peermeta.NodeMetadata(node.GetMetadata(), cfg.Node.Cluster))
	if err != nil {
		return nil, err
	}
	p.peerExchange = px
	p.listeners = listener.NewManager(p, log.With("component", "listener"))
	p.listeners.DrainTimeout = p.drainTimeout()
	p.observers = &observers{http: []httpproxy.Observer{p.metrics}, tcp: []listener.TCPObserver{p.metrics}}
	al, alFile, err := openAccessLog(cfg.AccessLog)
	if err != nil {
		return nil, err
	}
	if al != nil {
		p.accessLog, p.accessLogFile = al, alFile
		p.observers.http = append(p.observers.http, al)
		p.observers.tcp = append(p.observers.tcp, al)
	}
	p.listeners.TCPObserver = p.observers
	if cfg.CA.Enabled() {
		rot, err := newRotator(context.Background(), cfg, p)
		if err != nil {
			return nil, err
		}
		p.rotator = rot
	}
	p.secrets = sds.NewStore(p.rotator, cfg.CA.CredentialDir)
	xc, err := xdsclient.New(xdsclient.Options{
		Address: cfg.XDSAddress, Node: cfg.XDSNode(), Delta: cfg.Delta, Handler: p,
		WarmingTimeout: time.Duration(cfg.WarmingTimeout), Logger: log,
	})
	if err != nil {
		return nil, err
	}
	p.xds = xc
	if p.tracer, err = newTracer(cfg); err != nil {
		return nil, err
	}
	return p, nil
}

// RouteTable implements httpproxy.Resolver.
func (p *Proxy) RouteTable(name string) *router.Table {
	if s := p.state.Load(); s != nil {
		return s.Routes[name]
	}
	return nil
}

// Cluster implements httpproxy.Resolver and listener.ClusterSource.
func (p *Proxy) Cluster(name string) *upstream.Cluster {
	if s := p.state.Load(); s != nil {
		return s.Clusters.Get(name)
	}
	return nil
}

// Ready reports whether a first complete config has been applied.
func (p *Proxy) Ready() bool { return p.ready.Load() }

// Validate implements xdsclient.Handler: a resource that cannot be served
// exactly is NACKed.
func (p *Proxy) Validate(typeURL, name string, res proto.Message) error {
	switch r := res.(type) {
	case *listenerv3.Listener:
		// A listener that cannot be bound is NACKed, as Envoy does.
		l, err := listener.Compile(r, listener.Deps{})
		if err == nil {
			err = p.listeners.CheckBind(l)
		}
		if err != nil {
			p.listenerErrs.record(r, err)
		}
		return err
	case *routev3.RouteConfiguration:
		_, err := router.Compile(r)
		return err
	case *clusterv3.Cluster:
		return upstream.Validate(r)
	case *endpointv3.ClusterLoadAssignment:
		return upstream.ValidateAssignment(r)
	}
	return fmt.Errorf("%s: unexpected resource type %T", name, res)
}

// Apply implements xdsclient.Handler: compile and swap.
func (p *Proxy) Apply(s *xdsclient.Snapshot) {
	if err := p.apply(s); err != nil {
		p.log.Error("config not applied; keeping the previous one", "err", err)
	}
}

func (p *Proxy) hcmStatsFor(prefix string) *httpproxy.Stats {
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	st, ok := p.hcmStats[prefix]
	if !ok {
		st = &httpproxy.Stats{Prefix: prefix}
		p.hcmStats[prefix] = st
	}
	return st
}

func (p *Proxy) apply(s *xdsclient.Snapshot) error {
	next := &State{Snapshot: s, Routes: map[string]*router.Table{}, AppliedAt: time.Now()}
	for name, rc := range s.Routes {
		t, err := router.Compile(rc)
		if err != nil {
			return err
		}
		next.Routes[name] = t
	}
	var prevClusters *upstream.Set
	if old := p.state.Load(); old != nil {
		prevClusters = old.Clusters
	}
	set, commit, err := upstream.BuildWith(s.Clusters, s.Endpoints, prevClusters, p.secrets)
	if err != nil {
		return err
	}
	next.Clusters = set
	deps := listener.Deps{Resolver: p, Observer: p.observers, Stats: p.hcmStatsFor, Secrets: p.secrets, Tracer: p.httpTracer(), PeerExchange: p.peerExchange}
	names := make([]string, 0, len(s.Listeners))
	for n := range s.Listeners {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		l, err := listener.Compile(s.Listeners[n], deps)
		if err != nil {
			return err
		}
		next.Listeners = append(next.Listeners, l)
	}
	p.state.Store(next)
	for _, c := range commit() {
		c.Close()
	}
	bindErr := p.listeners.Apply(next.Listeners)
	if bindErr != nil {
		p.log.Error("binding listeners", "err", bindErr)
	}
	p.listenerErrs.applied(s.Listeners, bindErr)
	if s.Complete || len(s.Listeners) > 0 {
		p.ready.Store(true)
	}
	p.log.Info("config applied", "listeners", len(s.Listeners), "clusters", len(s.Clusters), "routes", len(s.Routes), "endpoints", len(s.Endpoints), "complete", s.Complete)
	return nil
}

// ListenerAddr returns the actual bound address of the listener that
// was configured with addr.
func (p *Proxy) ListenerAddr(addr string) string { return p.listeners.Addr(addr) }

// Addr returns the bound address of a local server: "admin", "ready",
// "stats" or "forward".
func (p *Proxy) Addr(name string) string { return p.addrs[name] }

// Start binds the local servers (admin, readiness, metrics, forward
// proxy). It is separate from Run so callers learn bind errors early.
func (p *Proxy) Start() error {
	type srv struct {
		name, addr string
		h          http.Handler
	}
	var list []srv
	if p.cfg.AdminAddress != "" {
		list = append(list, srv{"admin", p.cfg.AdminAddress, p.adminHandler()})
	}
	if p.cfg.ReadyAddress != "" {
		list = append(list, srv{"ready", p.cfg.ReadyAddress, p.readyHandler()})
	}
	if p.cfg.StatsAddress != "" {
		list = append(list, srv{"stats", p.cfg.StatsAddress, p.statsHandler()})
	}
	if p.cfg.ForwardProxyAddress != "" {
		list = append(list, srv{"forward", p.cfg.ForwardProxyAddress, p.listeners.ForwardHandler()})
	}
	for _, s := range list {
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			p.stopServers(context.Background())
			return fmt.Errorf("%s server: %w", s.name, err)
		}
		p.addrs[s.name] = ln.Addr().String()
		if s.name == "forward" {
			ln = listener.Strict(ln) // clients' requests: validate framing strictly
		}
		hs := &http.Server{Handler: s.h, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 60 << 10}
		p.servers = append(p.servers, hs)
		go hs.Serve(ln)
	}
	return nil
}

func (p *Proxy) stopServers(ctx context.Context) {
	for _, s := range p.servers {
		s.Shutdown(ctx)
	}
	p.servers = nil
}

// Run streams xDS until ctx is done or /quitquitquit, then drains.
func (p *Proxy) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := p.startIdentity(ctx); err != nil {
		return err
	}
	stopTracing := p.startTracing()
	if p.accessLog != nil {
		lctx, lcancel := context.WithCancel(context.Background())
		go p.accessLog.Run(lctx)
		defer func() {
			lcancel()
			<-p.accessLog.Done()
			if p.accessLogFile != nil {
				p.accessLogFile.Close()
			}
		}()
	}
	xdsDone := make(chan error, 1)
	go func() { xdsDone <- p.xds.Run(ctx) }()
	select {
	case <-ctx.Done():
	case <-p.quit:
		cancel()
	}
	err := <-xdsDone
	dctx, dcancel := context.WithTimeout(context.Background(), p.drainTimeout())
	defer dcancel()
	p.Drain(dctx)
	p.listeners.Stop(dctx)
	p.stopServers(dctx)
	stopTracing()
	if s := p.state.Load(); s != nil {
		for _, n := range s.Clusters.Names() {
			s.Clusters.Get(n).Close()
		}
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// Quit asks Run to return (admin /quitquitquit).
func (p *Proxy) Quit() { p.quitOnce.Do(func() { close(p.quit) }) }
