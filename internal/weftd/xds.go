package weftd

import (
	"context"
	"net"
	"time"

	"github.com/weftmesh/weft/internal/xds"
)

// newXDSServer builds the ADS server that serves the store's snapshots,
// translated per proxy.
func (s *Server) newXDSServer() *xds.Server {
	return xds.New(xds.Options{
		Generator:   s.generate,
		Store:       s.store,
		Debounce:    time.Duration(s.cfg.Debounce),
		DebounceMax: time.Duration(s.cfg.MaxDebounce),
		Logger:      s.log.With("component", "xds"),
		Registerer:  s.registry,
	})
}

// serveXDS serves xDS on lis until ctx ends.
func (s *Server) serveXDS(ctx context.Context, lis net.Listener) error {
	return s.xds.Run(ctx, lis)
}
