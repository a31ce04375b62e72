// Command weft-xds-load measures how fast an xDS server converges: it
// connects many simulated Envoy-like ADS clients, applies one
// configuration change and reports the time until every client has
// acknowledged it (p50, p99, max).
//
// Against a running weftd, pass -target and the change as a shell
// command (-change-cmd, e.g. copying a file into weftd's config
// directory). Without -target it runs an xDS server in process on a
// synthetic mesh (-services, -endpoints) and changes every endpoint
// (-change eds) or adds a service (-change service).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/translate"
	"github.com/weftmesh/weft/internal/xds"
	"github.com/weftmesh/weft/internal/xds/loadtest"
)

func main() {
	var (
		cfg       loadtest.Config
		changeCmd = flag.String("change-cmd", "", "with -target: shell command that applies the change")
		services  = flag.Int("services", 100, "in process: services in the synthetic mesh")
		endpoints = flag.Int("endpoints", 2, "in process: endpoints per service")
		change    = flag.String("change", "eds", "in process: the change, eds (every endpoint moves) or service (a service is added)")
		generator = flag.String("generator", "translate", "in process: translate (the real translator with its cross-proxy cache), translate-nocache, or fixture (a minimal one)")
		debounce  = flag.Duration("debounce", xds.DefaultDebounce, "in process: push debounce quiet period")
		profile   = flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
		memprof   = flag.String("memprofile", "", "write a heap profile to this file once the change has settled")
		verbose   = flag.Bool("v", false, "in process: log the xDS server's pushes to stderr")
	)
	flag.StringVar(&cfg.Target, "target", "", "xDS server address (host:port); empty runs one in process")
	flag.IntVar(&cfg.Clients, "clients", 100, "simulated proxies")
	flag.BoolVar(&cfg.Delta, "delta", false, "use delta xDS instead of state of the world")
	flag.DurationVar(&cfg.Settle, "settle", time.Second, "quiet time that ends a phase")
	flag.DurationVar(&cfg.Timeout, "timeout", 2*time.Minute, "limit for each phase")
	flag.Parse()

	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "weft-xds-load:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "weft-xds-load:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if *memprof != "" {
		cfg.Settled = func(phase string) {
			if phase != "change" {
				return
			}
			f, err := os.Create(*memprof)
			if err == nil {
				runtime.GC()
				err = pprof.WriteHeapProfile(f)
				f.Close()
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "weft-xds-load: heap profile:", err)
			}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	logOut := io.Discard
	if *verbose {
		logOut = os.Stderr
	}
	if err := run(ctx, cfg, *changeCmd, *services, *endpoints, *change, *generator, *debounce, logOut); err != nil {
		fmt.Fprintln(os.Stderr, "weft-xds-load:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg loadtest.Config, changeCmd string, services, endpoints int, change, generator string, debounce time.Duration, logOut io.Writer) error {
	var apply func(context.Context) error
	if cfg.Target != "" {
		if changeCmd == "" {
			return errors.New("-target needs -change-cmd, the command that changes the configuration")
		}
		apply = func(ctx context.Context) error {
			cmd := exec.CommandContext(ctx, "sh", "-c", changeCmd)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			return cmd.Run()
		}
	} else {
		gen := xds.Generator(translate.NewCache().Generate)
		switch generator {
		case "translate":
		case "translate-nocache":
			gen = translate.Generate
		case "fixture":
			gen = loadtest.Generator
		default:
			return fmt.Errorf("-generator %q: want translate, translate-nocache or fixture", generator)
		}
		store := model.NewStore()
		store.Update(loadtest.Mesh("load", services, endpoints, 0))
		switch change {
		case "eds":
			apply = func(context.Context) error { store.Update(loadtest.Mesh("load", services, endpoints, 1)); return nil }
		case "service":
			apply = func(context.Context) error { store.Update(loadtest.Mesh("load", services+1, endpoints, 0)); return nil }
		default:
			return fmt.Errorf("-change %q: want eds or service", change)
		}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := xds.New(xds.Options{Generator: gen, Store: store, Debounce: debounce, Logger: slog.New(slog.NewTextHandler(logOut, nil))})
		srvCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- srv.Run(srvCtx, lis) }()
		defer func() { cancel(); <-done }()
		cfg.Target = lis.Addr().String()
		fmt.Fprintf(os.Stderr, "in-process xDS server on %s: %d services, %d endpoints each, generator %s, change %s\n",
			cfg.Target, services, endpoints, generator, change)
	}
	res, err := loadtest.Run(ctx, cfg, apply)
	if res != nil {
		fmt.Println(res)
	}
	return err
}
