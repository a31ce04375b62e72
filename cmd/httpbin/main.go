// Command httpbin serves package github.com/weftmesh/weft/examples/httpbin, an
// httpbin-like test server, logging one JSON line per request on stdout:
//
//	httpbin [--listen ADDR] [--name NAME] [--hostname NAME] [--max-delay DURATION]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/weftmesh/weft/examples/httpbin"
	"github.com/weftmesh/weft/examples/sampleserver"
)

func main() {
	host, _ := os.Hostname()
	fs := flag.NewFlagSet("httpbin", flag.ContinueOnError)
	listen := fs.String("listen", ":8080", "address to serve on: host:port or unix:///path")
	name := fs.String("name", "httpbin", "service name in the request log (e.g. httpbin-v2)")
	var cfg httpbin.Config
	fs.StringVar(&cfg.Hostname, "hostname", host, "name /hostname answers")
	fs.DurationVar(&cfg.MaxDelay, "max-delay", httpbin.DefaultMaxDelay, "longest /delay accepted")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "httpbin: unexpected argument %q\n", fs.Arg(0))
		os.Exit(2)
	}
	h, err := httpbin.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ln, err := sampleserver.Listen(*listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpbin:", err)
		os.Exit(1)
	}
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	log.Info("listening", "service", *name, "addr", ln.Addr().String())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	err = sampleserver.Run(ctx, ln, sampleserver.LogRequests(*name, log, h))
	log.Info("stopped", "service", *name, "uptime_s", time.Since(start).Seconds())
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpbin:", err)
		os.Exit(1)
	}
}
