package weftd

import (
	"context"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// serveXDS serves gRPC on lis until ctx ends: the health service now, the
// ADS services once internal/xds is wired in.
func (s *Server) serveXDS(ctx context.Context, lis net.Listener) error {
	gs := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	go func() {
		<-ctx.Done()
		hs.Shutdown()
		gs.GracefulStop()
	}()
	return gs.Serve(lis)
}
