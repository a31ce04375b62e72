// Package backend is the benchmark's upstream: one Go server process
// answering HTTP/1.1 and h2c (1 KB responses), gRPC unary health checks
// (what `fortio load -grpc` calls), and TCP echo and sink ports; and the
// TCP throughput client that drives the sink.
package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// ResponseSize is the HTTP response body size.
const ResponseSize = 1024

// Config says where each server listens; an empty address disables it.
type Config struct {
	HTTP    string // HTTP/1.1 and h2c (prior knowledge)
	GRPC    string // gRPC health service
	TCPEcho string // echoes every byte
	TCPSink string // reads and discards
}

// Server runs the configured listeners until Stop.
type Server struct {
	addrs map[string]string
	http  *http.Server
	grpc  *grpc.Server
	lns   []net.Listener
	wg    sync.WaitGroup
}

// Body is the 1 KB response body.
var Body = func() []byte {
	b := make([]byte, ResponseSize)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}()

// Handler answers every request with Body after draining the request.
func Handler() http.Handler {
	size := strconv.Itoa(len(Body))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", size)
		w.Write(Body)
	})
}

// Start binds every configured address and serves in the background.
func Start(cfg Config) (*Server, error) {
	s := &Server{addrs: map[string]string{}}
	listen := func(name, addr string) (net.Listener, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			s.Stop()
			return nil, fmt.Errorf("backend %s %s: %w", name, addr, err)
		}
		s.lns = append(s.lns, ln)
		s.addrs[name] = ln.Addr().String()
		return ln, nil
	}
	if cfg.HTTP != "" {
		ln, err := listen("http", cfg.HTTP)
		if err != nil {
			return nil, err
		}
		var protos http.Protocols
		protos.SetHTTP1(true)
		protos.SetUnencryptedHTTP2(true)
		s.http = &http.Server{Handler: Handler(), Protocols: &protos, ReadHeaderTimeout: 10 * time.Second}
		s.wg.Go(func() { s.http.Serve(ln) })
	}
	if cfg.GRPC != "" {
		ln, err := listen("grpc", cfg.GRPC)
		if err != nil {
			return nil, err
		}
		s.grpc = grpc.NewServer()
		hs := health.NewServer()
		hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		healthpb.RegisterHealthServer(s.grpc, hs)
		s.wg.Go(func() { s.grpc.Serve(ln) })
	}
	for _, t := range []struct {
		name, addr string
		handle     func(net.Conn)
	}{{"tcp-echo", cfg.TCPEcho, echo}, {"tcp-sink", cfg.TCPSink, sink}} {
		if t.addr == "" {
			continue
		}
		ln, err := listen(t.name, t.addr)
		if err != nil {
			return nil, err
		}
		s.wg.Go(func() { acceptLoop(ln, t.handle) })
	}
	return s, nil
}

// Addr returns the bound address of "http", "grpc", "tcp-echo" or "tcp-sink".
func (s *Server) Addr(name string) string { return s.addrs[name] }

// Stop closes every listener and server.
func (s *Server) Stop() {
	if s.http != nil {
		s.http.Close()
	}
	if s.grpc != nil {
		s.grpc.Stop()
	}
	for _, ln := range s.lns {
		ln.Close()
	}
	s.wg.Wait()
}

func acceptLoop(ln net.Listener, handle func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			handle(c)
		}()
	}
}

func echo(c net.Conn) { io.Copy(c, c) }

func sink(c net.Conn) { io.Copy(io.Discard, c) }

// TCPResult is the outcome of a throughput run.
type TCPResult struct {
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
}

// MBps is the throughput in megabytes (10^6) per second.
func (r TCPResult) MBps() float64 {
	if r.Seconds == 0 {
		return 0
	}
	return float64(r.Bytes) / r.Seconds / 1e6
}

// TCPLoad writes to addr over conns connections as fast as possible for
// d and returns how much was written. Bytes still in socket buffers when
// d ends are counted, which is negligible over seconds.
func TCPLoad(ctx context.Context, addr string, conns int, d time.Duration) (TCPResult, error) {
	if conns <= 0 {
		conns = 1
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	buf := make([]byte, 64<<10)
	var (
		mu    sync.Mutex
		total int64
		first error
		wg    sync.WaitGroup
	)
	start := time.Now()
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return TCPResult{}, err
		}
		wg.Go(func() {
			defer c.Close()
			stop := context.AfterFunc(ctx, func() { c.SetWriteDeadline(time.Now()) })
			defer stop()
			var n int64
			for ctx.Err() == nil {
				w, err := c.Write(buf)
				n += int64(w)
				if err != nil {
					if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
						mu.Lock()
						if first == nil {
							first = err
						}
						mu.Unlock()
					}
					break
				}
			}
			mu.Lock()
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	res := TCPResult{Bytes: total, Seconds: time.Since(start).Seconds()}
	return res, first
}
