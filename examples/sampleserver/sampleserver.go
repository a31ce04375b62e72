// Package sampleserver is how Weft's sample applications (bookinfo,
// httpbin) listen, serve and log: a TCP or Unix-socket listener, a server
// that shuts down gracefully with its context, and a one-line-per-request
// access log.
package sampleserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// ShutdownGrace bounds how long Run waits for requests in flight once its
// context ends.
const ShutdownGrace = 5 * time.Second

// Run serves h on ln until ctx ends, then shuts the server down gracefully,
// waiting at most ShutdownGrace for requests in flight. It closes ln. Run
// returns nil after a shutdown caused by ctx, or the error that stopped
// serving.
func Run(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
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

// LogRequests wraps h so that every request is logged on log as one line:
// the service name (which copy of the service), method, path, host, status,
// response size, duration, client address, user agent, x-request-id and
// end-user. With a JSON slog handler that is one JSON object per line.
func LogRequests(service string, log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("service", service),
			slog.String("method", r.Method),
			slog.String("path", r.URL.RequestURI()),
			slog.String("host", r.Host),
			slog.Int("status", rec.status),
			slog.Int64("bytes", rec.bytes),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			slog.String("remote", r.RemoteAddr),
			slog.String("user_agent", r.UserAgent()),
			slog.String("x_request_id", r.Header.Get("X-Request-Id")),
			slog.String("end_user", r.Header.Get("End-User")),
		)
	})
}

// statusRecorder remembers the status code and body size a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wroteHeader {
		s.status, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	s.wroteHeader = true
	n, err := s.ResponseWriter.Write(p)
	s.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
