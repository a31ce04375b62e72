package weftd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/source"
	"github.com/weftmesh/weft/internal/source/memory"
	"github.com/weftmesh/weft/internal/xds"
)

// Server is the weftd control plane. Create it with New, bind its ports
// with Listen, then Run it.
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    *model.Store
	sources  []source.Source
	api      *memory.Source
	registry *prometheus.Registry
	mux      *http.ServeMux

	xds     *xds.Server
	citadel *citadel // nil when the CA is disabled

	adminLis net.Listener
	xdsLis   net.Listener
	caLis    net.Listener

	configErrors *prometheus.GaugeVec
}

// New assembles a server from a validated configuration.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      log,
		store:    model.NewStore(),
		registry: prometheus.NewRegistry(),
		mux:      http.NewServeMux(),
	}
	s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weft_config_snapshot_version", Help: "Version of the current mesh model snapshot.",
	}, func() float64 { return float64(s.store.Snapshot().Version) }))
	s.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weft_config_objects", Help: "Number of configuration objects served.",
	}, func() float64 { return float64(s.store.Snapshot().Len()) }))
	s.configErrors = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "weft_config_diagnostics", Help: "Problems in the configuration input, by severity.",
	}, []string{"severity"})
	s.registry.MustRegister(s.configErrors)
	s.api = memory.New(memory.Options{Name: APISourceName})
	s.sources = append(s.sources, s.api)
	if cfg.ConfigDir != "" {
		src, err := newFileSource(cfg, log)
		if err != nil {
			return nil, err
		}
		s.sources = append(s.sources, src)
	}
	s.xds = s.newXDSServer()
	if cfg.SecureXDSPort != -1 {
		c, err := newCitadel(cfg, s)
		if err != nil {
			return nil, err
		}
		s.citadel = c
	}
	// Until each source has read its input, the snapshot is not synced
	// and /healthz answers 503.
	for _, src := range s.sources {
		s.store.Update(&model.SourceState{Source: src.Name()})
	}
	s.routes()
	return s, nil
}

// Store returns the mesh model store the server serves from.
func (s *Server) Store() *model.Store { return s.store }

func (s *Server) routes() {
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if !s.store.Snapshot().Synced() {
			http.Error(w, "configuration not yet read", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("GET /debug/config", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, dumpConfig(s.store.Snapshot()))
	})
	s.mux.HandleFunc("POST /api/v1/apply", s.handleApply)
	s.mux.HandleFunc("POST /api/v1/delete", s.handleDelete)
	if s.citadel != nil {
		s.mux.HandleFunc("GET /api/v1/ca/root", s.citadel.handleRoot)
		s.mux.HandleFunc("POST /api/v1/tokens", s.citadel.handleToken)
	}
	s.mux.Handle("/debug/syncz", s.xds.DebugHandler())
	s.mux.Handle("/debug/config_dump", s.xds.DebugHandler())
	s.mux.HandleFunc("GET /debug/registry", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, dumpRegistry(s.store.Snapshot()))
	})
	s.profileRoutes()
}

// Listen binds the admin and xDS ports. A port of 0 picks a free one; see
// AdminAddr and XDSAddr.
func (s *Server) Listen() error {
	var err error
	s.adminLis, err = net.Listen("tcp", net.JoinHostPort(s.cfg.ListenAddress, strconv.Itoa(s.cfg.AdminPort)))
	if err != nil {
		return fmt.Errorf("admin port: %w", err)
	}
	s.xdsLis, err = net.Listen("tcp", net.JoinHostPort(s.cfg.ListenAddress, strconv.Itoa(s.cfg.XDSPort)))
	if err != nil {
		s.adminLis.Close()
		return fmt.Errorf("xds port: %w", err)
	}
	if s.citadel != nil {
		s.caLis, err = net.Listen("tcp", net.JoinHostPort(s.cfg.ListenAddress, strconv.Itoa(s.cfg.SecureXDSPort)))
		if err != nil {
			s.adminLis.Close()
			s.xdsLis.Close()
			return fmt.Errorf("secure xds port: %w", err)
		}
	}
	return nil
}

// SecureAddr returns the bound address of the certificate API, or "" when
// the CA is disabled; valid after Listen.
func (s *Server) SecureAddr() string {
	if s.caLis == nil {
		return ""
	}
	return s.caLis.Addr().String()
}

// AdminAddr returns the bound admin address; valid after Listen.
func (s *Server) AdminAddr() string { return s.adminLis.Addr().String() }

// XDSAddr returns the bound xDS address; valid after Listen.
func (s *Server) XDSAddr() string { return s.xdsLis.Addr().String() }

// Run serves until ctx ends, then shuts down within the configured
// timeout. Listen must have been called.
func (s *Server) Run(ctx context.Context) error {
	if s.adminLis == nil {
		return errors.New("weftd: Run called before Listen")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(s.sources)+3)

	for _, src := range s.sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := src.Run(ctx, s.update)
			if err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("source %s: %w", src.Name(), err)
			}
		}()
	}

	admin := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := admin.Serve(s.adminLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("admin server: %w", err)
		}
	}()
	xdsDone := make(chan struct{})
	go func() {
		defer close(xdsDone)
		if err := s.serveXDS(ctx, s.xdsLis); err != nil && ctx.Err() == nil {
			errc <- fmt.Errorf("xds server: %w", err)
		}
	}()
	caDone := make(chan struct{})
	go func() {
		defer close(caDone)
		if s.citadel == nil {
			return
		}
		if err := s.citadel.run(ctx, s.caLis); err != nil && ctx.Err() == nil {
			errc <- fmt.Errorf("certificate service: %w", err)
		}
	}()
	s.log.Info("weftd started", "admin", s.AdminAddr(), "xds", s.XDSAddr(), "ca", s.SecureAddr(), "configDir", s.cfg.ConfigDir)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		s.log.Error("weftd stopping on error", "err", runErr)
	}
	cancel()
	shutdownCtx, done := context.WithTimeout(context.Background(), time.Duration(s.cfg.ShutdownTimeout))
	defer done()
	_ = admin.Shutdown(shutdownCtx)
	waited := make(chan struct{})
	go func() { wg.Wait(); <-xdsDone; <-caDone; close(waited) }()
	select {
	case <-waited:
	case <-shutdownCtx.Done():
		s.log.Warn("shutdown timed out; exiting anyway")
	}
	s.log.Info("weftd stopped")
	return runErr
}

// update hands a source's new state to the store and logs what changed.
func (s *Server) update(st *model.SourceState) {
	old := s.store.Snapshot()
	snap := s.store.Update(st)
	var errs, warns float64
	for _, d := range snap.Diagnostics() {
		if d.Severity == model.SeverityError {
			errs++
		} else {
			warns++
		}
	}
	s.configErrors.WithLabelValues("error").Set(errs)
	s.configErrors.WithLabelValues("warning").Set(warns)
	// The diff only feeds this log line; at 100 changes a second to a
	// large mesh it is a tenth of a core, so only when it is logged.
	if s.log.Enabled(context.Background(), slog.LevelInfo) {
		if cs := model.Diff(old, snap); !cs.Empty() {
			s.log.Info("configuration changed", "source", st.Source, "version", snap.Version, "objects", len(cs.Configs), "services", len(cs.Services))
		}
	}
	for _, d := range st.Diagnostics {
		if d.Severity == model.SeverityError {
			s.log.Warn("configuration error", "source", st.Source, "diagnostic", d.String())
		}
	}
}
