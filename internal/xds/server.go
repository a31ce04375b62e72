// Package xds serves the mesh configuration to proxies over Envoy's xDS v3
// protocol: ADS (state of the world and delta) and the per-type discovery
// services (CDS, EDS, LDS, RDS, SDS), on go-control-plane's server and
// stream handling with weft's own cache behind it (ADR 0008).
//
// Each connected proxy gets a snapshot generated from the current model
// snapshot by the configured Generator. Every resource type carries a
// version derived from a hash of that type's resources, so a proxy is
// sent a type only when its own resources of that type changed (an
// endpoint-only change sends EDS alone). Changes to the model are
// debounced; only connected proxies are recomputed, at most
// Options.Workers at a time. The server tracks, per proxy and type, what
// was sent, acknowledged and rejected, and exposes it through Status and
// DebugHandler.
//
// Design notes:
//   - One cache (sharedCache, a go-control-plane cache.Cache) answers
//     every stream from its proxy's current snapshot, with
//     go-control-plane's rules: Envoy-like proxies in ADS mode (EDS and
//     RDS answered once the proxy asks for every resource; waiting
//     responses in the order clusters, endpoints, listeners, routes,
//     secrets); proxyless gRPC clients (node metadata GENERATOR=grpc),
//     which ask for single resources by name, without that hold.
//   - Snapshots are made consistent by buildSnapshot, which also counts
//     api_listener route references (go-control-plane's Consistent does
//     not).
//   - A state-of-the-world NACK is not answered with the rejected version
//     again (go-control-plane would, in a loop); the proxy gets the next
//     version that differs.
//   - Snapshots hold each resource as its interned encoding: generated
//     objects are freed right away, identical resources share one copy.
//   - A generator that shares work (translate.Cache) returns one
//     *translate.Resources to all proxies it cannot tell apart (typically
//     the sidecars of a namespace); the server then builds that snapshot
//     once per model version and hands it to all of them (builtMemo).
//     Their responses share it too: a response carrying all of a type's
//     resources carries that snapshot's one encoding of them, which the
//     server's gRPC codec (wireCodec) writes without a copy. A push costs
//     one generation and one encoding per distinct configuration and a
//     small response struct per proxy.
//   - Pushes are throttled like istiod's: at most Options.PushThrottle
//     proxies have a configuration sent and not yet acknowledged.
package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"runtime"
	"sync"
	"time"
	"unique"

	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/translate"
)

// Generator computes the complete xDS configuration of one proxy from a
// model snapshot. It must be a pure function of its arguments.
type Generator func(*model.Snapshot, *model.Proxy) *translate.Resources

// Default debounce settings, istiod's.
const (
	DefaultDebounce    = 100 * time.Millisecond
	DefaultDebounceMax = 10 * time.Second
)

// Default push throttle settings (Options.PushThrottle).
const (
	DefaultPushThrottle        = 100
	DefaultPushThrottleTimeout = 5 * time.Second
)

// Options configures a Server.
type Options struct {
	// Generator computes each proxy's configuration. Required.
	Generator Generator
	// Store is the mesh model; the server subscribes to its changes.
	// Required.
	Store *model.Store
	// Debounce is the quiet period after a model change before proxies
	// are recomputed (default 100 ms); DebounceMax bounds the total delay
	// under a continuous stream of changes (default 10 s).
	Debounce    time.Duration
	DebounceMax time.Duration
	// Workers is how many proxies are recomputed in parallel during a
	// push (default GOMAXPROCS).
	Workers int
	// PushThrottle bounds the proxies that were handed a new
	// configuration and have not acknowledged all of it yet (default
	// 100, istiod's PILOT_PUSH_THROTTLE): the responses in flight, and
	// the memory they take, stay bounded however many proxies a change
	// reaches. A proxy that does not answer within PushThrottleTimeout
	// (default 5 s) frees its place.
	PushThrottle        int
	PushThrottleTimeout time.Duration
	// Logger receives the server's logs (default slog.Default()).
	Logger *slog.Logger
	// Registerer receives the server's metrics; nil registers them
	// nowhere.
	Registerer prometheus.Registerer
	// GRPCOptions are added to the gRPC server's options (credentials,
	// say).
	GRPCOptions []grpc.ServerOption
}

// Server is the xDS server. Create it with New and serve with Run.
type Server struct {
	opts Options
	log  *slog.Logger
	m    *metrics

	// cache answers the streams' watches from each proxy's current
	// snapshot; proxies sharing a snapshot share its responses.
	cache *sharedCache

	// ctx is Run's context, set before serving.
	ctx context.Context
	// genSlots bounds concurrent generation (pushes and first
	// configurations of new proxies alike) to Options.Workers.
	genSlots chan struct{}
	// inFlight holds a token per proxy with a configuration sent and not
	// yet acknowledged (Options.PushThrottle).
	inFlight chan struct{}
	// memo remembers encodings of resources shared between proxies;
	// built, whole snapshots of configurations shared between proxies.
	memo  encodingMemo
	built builtMemo

	// cacheMu serializes changes of the caches' snapshots with proxy
	// (de)registration, so that a departed proxy's snapshot is never set
	// after it was cleared. Lock order: cacheMu, then mu.
	cacheMu sync.Mutex

	// sentHook, if set (tests only, before Run), sees every
	// state-of-the-world response as it is sent, with its node id.
	sentHook func(node string, r *discovery.DiscoveryResponse)

	mu      sync.Mutex
	running bool
	tokens  uint64 // in-flight tokens handed out, numbering them
	streams map[int64]*stream
	proxies map[string]*proxyState
}

// stream is one xDS gRPC stream.
type stream struct {
	id          int64
	delta       bool
	defaultType string // "" for ADS, the type URL for per-type services
	ps          *proxyState
	// sent maps type URL to the last response sent on this stream.
	sent map[string]sentResponse
}

type sentResponse struct {
	nonce, version string
}

// proxyState is what the server knows about one connected proxy (node id).
type proxyState struct {
	proxy       *model.Proxy // immutable
	connectedAt time.Time

	// genMu serializes generation for this proxy; it guards the fields
	// below it.
	genMu     sync.Mutex
	generated bool
	modelVer  uint64
	last      *proxySnapshot

	// Guarded by Server.mu.
	streams      int
	target       map[string]string                  // type URL → version of the current snapshot
	targetHashes map[string]map[string]string       // type URL → resource name → content hash
	targetPins   map[string][]unique.Handle[string] // type URL → encodings of the current snapshot's resources (shared, read-only)
	targetModel  uint64                             // model version the current snapshot came from
	targetSnap   *proxySnapshot                     // the current snapshot (shared, read-only)
	types        map[string]*TypeStatus
	dump         map[string]*typeDump // type URL → resources last sent
	pendingSince time.Time            // first model change not yet acknowledged
	inFlight     uint64               // nonzero while the proxy holds an Server.inFlight token: the token's number
}

// New returns a server with the given options. Missing optional settings
// take their defaults.
func New(opts Options) *Server {
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.DebounceMax <= 0 {
		opts.DebounceMax = DefaultDebounceMax
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.PushThrottle <= 0 {
		opts.PushThrottle = DefaultPushThrottle
	}
	if opts.PushThrottleTimeout <= 0 {
		opts.PushThrottleTimeout = DefaultPushThrottleTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{
		opts:     opts,
		log:      opts.Logger,
		m:        newMetrics(opts.Registerer),
		streams:  map[int64]*stream{},
		proxies:  map[string]*proxyState{},
		genSlots: make(chan struct{}, opts.Workers),
		inFlight: make(chan struct{}, opts.PushThrottle),
	}
	s.cache = newSharedCache(cacheLogger{log: opts.Logger})
	return s
}

// Run serves xDS on lis until ctx ends, then stops the gRPC server and
// returns. It returns an error if serving fails or the options are
// incomplete. Run may be called once.
func (s *Server) Run(ctx context.Context, lis net.Listener) error {
	if s.opts.Generator == nil || s.opts.Store == nil {
		return errors.New("xds: Options.Generator and Options.Store are required")
	}
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("xds: server already running")
	}
	s.running = true
	s.ctx = ctx
	s.mu.Unlock()

	// Ordered ADS: one response queue per stream, so responses leave in
	// the order the cache produced them (clusters, endpoints, listeners,
	// routes). Without it go-control-plane picks among ready responses at
	// random.
	xs := serverv3.NewServer(ctx, s.cache, callbacks{s}, sotw.WithOrderedADS(), sotw.WithLogger(cacheLogger{log: s.log}))
	gopts := append([]grpc.ServerOption{
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 15 * time.Second, PermitWithoutStream: true}),
		grpc.MaxRecvMsgSize(16 << 20),
		// Responses shared between proxies go out without a copy each.
		grpc.ForceServerCodecV2(newWireCodec()),
		// An idle connection holds no write buffer: thousands of proxies
		// are mostly idle. (Larger write buffers save a few syscalls but
		// are held by every connection a push is waiting on: 256 KB cost
		// 150 MB at 2000 proxies.)
		grpc.SharedWriteBuffer(true),
	}, s.opts.GRPCOptions...)
	g := grpc.NewServer(gopts...)
	discovery.RegisterAggregatedDiscoveryServiceServer(g, xs)
	clusterservice.RegisterClusterDiscoveryServiceServer(g, xs)
	endpointservice.RegisterEndpointDiscoveryServiceServer(g, xs)
	listenerservice.RegisterListenerDiscoveryServiceServer(g, xs)
	routeservice.RegisterRouteDiscoveryServiceServer(g, xs)
	secretservice.RegisterSecretDiscoveryServiceServer(g, xs)

	changes, unsubscribe := s.opts.Store.Subscribe()
	defer unsubscribe()
	pushCtx, stopPush := context.WithCancel(ctx)
	pushDone := make(chan struct{})
	go func() {
		defer close(pushDone)
		s.pushLoop(pushCtx, changes)
	}()
	serveErr := make(chan error, 1)
	go func() { serveErr <- g.Serve(lis) }()

	var err error
	select {
	case <-ctx.Done():
		// Streams end on their own once ctx is done; give them a moment.
		stopped := make(chan struct{})
		go func() { g.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			g.Stop()
			<-stopped
		}
		<-serveErr
	case err = <-serveErr:
		g.Stop()
	}
	stopPush()
	<-pushDone
	if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("xds: serve: %w", err)
	}
	return nil
}

// pushLoop debounces model changes and pushes to connected proxies.
func (s *Server) pushLoop(ctx context.Context, changes <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var first time.Time
	pending := false
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-changes:
			now := time.Now()
			if !pending {
				pending, first = true, now
			}
			wait := s.opts.Debounce
			if left := s.opts.DebounceMax - now.Sub(first); left < wait {
				wait = max(left, 0)
			}
			timer.Reset(wait)
		case <-timer.C:
			pending = false
			s.m.debounceTime.Observe(time.Since(first).Seconds())
			s.m.pushTriggers.Inc()
			s.pushAll(ctx, s.opts.Store.Snapshot(), first)
		}
	}
}

// pushAll recomputes every connected proxy from snap, in parallel.
func (s *Server) pushAll(ctx context.Context, snap *model.Snapshot, changedAt time.Time) {
	s.mu.Lock()
	list := make([]*proxyState, 0, len(s.proxies))
	for _, ps := range s.proxies {
		list = append(list, ps)
	}
	s.mu.Unlock()
	start := time.Now()
	defer func() {
		s.log.Info("xds: push done", "modelVersion", snap.Version, "proxies", len(list), "duration", time.Since(start))
	}()
	jobs := make(chan *proxyState)
	var wg sync.WaitGroup
	for range min(s.opts.Workers, len(list)) {
		wg.Go(func() {
			for ps := range jobs {
				s.update(ps, snap, changedAt)
			}
		})
	}
	for _, ps := range list {
		if ctx.Err() != nil {
			break
		}
		jobs <- ps
	}
	close(jobs)
	wg.Wait()
}

// update regenerates one proxy's configuration from snap and hands it to
// the cache if it changed. changedAt is when the model change happened
// (zero for a proxy's first configuration).
func (s *Server) update(ps *proxyState, snap *model.Snapshot, changedAt time.Time) {
	start := time.Now()
	ps.genMu.Lock()
	defer ps.genMu.Unlock()
	if ps.generated && snap.Version <= ps.modelVer {
		return
	}
	id := ps.proxy.ID
	s.genSlots <- struct{}{}
	res, err := s.generate(snap, ps.proxy)
	var psnap *proxySnapshot
	if err == nil {
		psnap, err = s.built.build(snap.Version, res, &s.memo)
	}
	<-s.genSlots
	ps.generated, ps.modelVer = true, snap.Version
	if err != nil {
		s.m.inconsistent.Inc()
		s.log.Error("xds: configuration not pushed; the proxy keeps its previous one",
			"proxy", id, "modelVersion", snap.Version, "error", err)
		return
	}
	if ps.last != nil && maps.Equal(ps.last.versions, psnap.versions) {
		s.mu.Lock()
		ps.targetModel = snap.Version
		s.mu.Unlock()
		return
	}
	ps.last = psnap
	if !s.acquireInFlight(ps) {
		return // shutting down
	}

	s.cacheMu.Lock()
	s.mu.Lock()
	live := s.proxies[id] == ps
	if live {
		ps.target, ps.targetHashes, ps.targetPins, ps.targetModel = psnap.versions, psnap.hashes, psnap.pins, snap.Version
		ps.targetSnap = psnap
		if !changedAt.IsZero() && ps.pendingSince.IsZero() {
			ps.pendingSince = changedAt
		}
	}
	s.mu.Unlock()
	if live {
		s.cache.SetSnapshot(id, psnap)
	} else {
		s.mu.Lock()
		s.releaseInFlightLocked(ps)
		s.mu.Unlock()
	}
	s.cacheMu.Unlock()
	s.m.pushTime.Observe(time.Since(start).Seconds())
}

// generate runs the generator, turning a panic into an error.
func (s *Server) generate(snap *model.Snapshot, p *model.Proxy) (res *translate.Resources, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("generator panicked: %v", r)
		}
	}()
	return s.opts.Generator(snap, p), nil
}

// register attaches a stream to the proxy with p's id, creating its state
// if this is the proxy's first stream. It reports whether it did.
func (s *Server) register(st *stream, p *model.Proxy) (*proxyState, bool) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	ps, ok := s.proxies[p.ID]
	if !ok {
		ps = &proxyState{
			proxy: p, connectedAt: time.Now(),
			types: map[string]*TypeStatus{}, dump: map[string]*typeDump{},
		}
		s.proxies[p.ID] = ps
		s.m.connected.Inc()
		s.log.Info("xds: proxy connected", "proxy", p.ID, "namespace", p.Namespace, "generator", p.Generator)
	}
	ps.streams++
	st.ps = ps
	return ps, !ok
}

// closeStream forgets a stream, and its proxy when it was the last one.
func (s *Server) closeStream(id int64) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	s.mu.Lock()
	st := s.streams[id]
	delete(s.streams, id)
	var gone *proxyState
	if st != nil && st.ps != nil {
		st.ps.streams--
		if st.ps.streams == 0 && s.proxies[st.ps.proxy.ID] == st.ps {
			delete(s.proxies, st.ps.proxy.ID)
			s.m.connected.Dec()
			gone = st.ps
			s.releaseInFlightLocked(gone)
		}
	}
	s.mu.Unlock()
	if gone != nil {
		s.cache.ClearSnapshot(gone.proxy.ID)
		s.log.Info("xds: proxy disconnected", "proxy", gone.proxy.ID)
	}
}

// openStream records a new stream.
func (s *Server) openStream(id int64, typeURL string, delta bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streams[id] = &stream{id: id, delta: delta, defaultType: typeURL, sent: map[string]sentResponse{}}
}
