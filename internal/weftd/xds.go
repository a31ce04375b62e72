package weftd

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/translate"
	"github.com/weftmesh/weft/internal/xds"
)

// newXDSServer builds the ADS server that serves the store's snapshots,
// translated per proxy.
func (s *Server) newXDSServer() *xds.Server {
	g := &generator{cache: translate.NewCache(), log: s.log.With("component", "translate")}
	return xds.New(xds.Options{
		Generator:    g.generate,
		Store:        s.store,
		Debounce:     time.Duration(s.cfg.Debounce),
		DebounceMax:  time.Duration(s.cfg.MaxDebounce),
		PushThrottle: s.cfg.PushThrottle,
		Logger:       s.log.With("component", "xds"),
		Registerer:   s.registry,
	})
}

// serveXDS serves xDS on lis until ctx ends.
func (s *Server) serveXDS(ctx context.Context, lis net.Listener) error {
	return s.xds.Run(ctx, lis)
}

// generator translates through a shared cache and logs each translation
// problem once per snapshot version, so configuration the translator had
// to leave out is never dropped silently.
type generator struct {
	cache *translate.Cache
	log   *slog.Logger

	mu      sync.Mutex
	version uint64
	logged  map[string]bool
}

func (g *generator) generate(snap *model.Snapshot, p *model.Proxy) *translate.Resources {
	res := g.cache.Generate(snap, p)
	if len(res.Diagnostics) == 0 {
		return res
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.version != snap.Version {
		g.version, g.logged = snap.Version, map[string]bool{}
	}
	for _, d := range res.Diagnostics {
		msg := d.String()
		if !g.logged[msg] {
			g.logged[msg] = true
			g.log.Warn("translation problem", "version", snap.Version, "proxy", p.ID, "diagnostic", msg)
		}
	}
	return res
}
