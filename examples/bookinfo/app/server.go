package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// shutdownGrace bounds how long Run waits for in-flight requests at shutdown.
const shutdownGrace = 5 * time.Second

// Run serves h on ln until ctx ends, then shuts the server down gracefully,
// waiting at most a few seconds for requests in flight. It closes ln. Run
// returns nil after a shutdown caused by ctx, or the error that stopped serving.
func Run(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// Listen opens the listener for addr: a TCP host:port, or a Unix socket as
// unix:///path/to/socket (a Sidecar defaultEndpoint may be either). A stale
// socket file left by an earlier run is replaced.
func Listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		if path == "" {
			return nil, fmt.Errorf("listen %q: missing socket path", addr)
		}
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSocket != 0 {
			os.Remove(path)
		}
		return net.Listen("unix", path)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("listen %q: want host:port or unix:///path: %w", addr, err)
	}
	return net.Listen("tcp", addr)
}
