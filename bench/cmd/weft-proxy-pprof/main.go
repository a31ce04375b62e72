// Command weft-proxy-pprof is weft-proxy with net/http/pprof served on a
// separate address, for profiling it under benchmark load. It takes only
// the flags the harness needs; the proxy itself is the same package as
// cmd/weft-proxy's.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/weftmesh/weft/internal/proxy"
	"github.com/weftmesh/weft/internal/proxy/bootstrap"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "weft-proxy-pprof:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg := bootstrap.Default()
	flag.StringVar(&cfg.XDSAddress, "xds-address", cfg.XDSAddress, "control plane address")
	flag.StringVar(&cfg.Node.ID, "node-id", "", "xDS node id")
	admin := flag.Int("admin-port", 15000, "admin port on 127.0.0.1")
	ready := flag.Int("ready-port", 15021, "readiness port")
	pprofAddr := flag.String("pprof", "127.0.0.1:6060", "address serving /debug/pprof/")
	flag.Parse()
	cfg.AdminAddress = fmt.Sprintf("127.0.0.1:%d", *admin)
	cfg.ReadyAddress = fmt.Sprintf("127.0.0.1:%d", *ready)
	cfg.StatsAddress = ""
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p, err := proxy.New(cfg, log, nil)
	if err != nil {
		return err
	}
	if err := p.Start(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *pprofAddr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return p.Run(ctx)
}
