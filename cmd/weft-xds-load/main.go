// Command weft-xds-load measures how fast an xDS server converges: it
// connects many simulated Envoy-like ADS clients, applies one
// configuration change and reports the time until every client has
// acknowledged it (p50, p99, max).
//
// Against a running weftd, pass -target and the change: a YAML file to
// apply through weftd's admin API (-apply, -admin) or a shell command
// (-change-cmd, e.g. copying a file into weftd's config directory).
// Without -target it runs an xDS server in process on a synthetic mesh
// (-services, -endpoints) and changes every endpoint (-change eds) or
// adds a service (-change service).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/translate"
	"github.com/weftmesh/weft/internal/xds"
	"github.com/weftmesh/weft/internal/xds/loadtest"
)

// options are the command's flags besides the load configuration.
type options struct {
	changeCmd, apply, admin string
	services, endpoints     int
	change, generator       string
	debounce                time.Duration
	log                     io.Writer
}

func main() {
	var (
		cfg     loadtest.Config
		o       options
		profile = flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
		memprof = flag.String("memprofile", "", "write a heap profile to this file once the change has settled")
		verbose = flag.Bool("v", false, "in process: log the xDS server's pushes to stderr")
	)
	flag.StringVar(&cfg.Target, "target", "", "xDS server address (host:port); empty runs one in process")
	flag.IntVar(&cfg.Clients, "clients", 100, "simulated proxies")
	flag.BoolVar(&cfg.Delta, "delta", false, "use delta xDS instead of state of the world")
	flag.DurationVar(&cfg.Settle, "settle", time.Second, "quiet time that ends a phase")
	flag.DurationVar(&cfg.Timeout, "timeout", 2*time.Minute, "limit for each phase")
	flag.StringVar(&o.changeCmd, "change-cmd", "", "with -target: shell command that applies the change")
	flag.StringVar(&o.apply, "apply", "", "with -target: YAML file to POST to weftd's /api/v1/apply as the change")
	flag.StringVar(&o.admin, "admin", "http://127.0.0.1:15014", "with -apply: weftd's admin address")
	flag.IntVar(&o.services, "services", 100, "in process: services in the synthetic mesh")
	flag.IntVar(&o.endpoints, "endpoints", 2, "in process: endpoints per service")
	flag.StringVar(&o.change, "change", "eds", "in process: the change, eds (every endpoint moves) or service (a service is added)")
	flag.StringVar(&o.generator, "generator", "translate", "in process: translate (the real translator with its cross-proxy cache), translate-nocache, or fixture (a minimal one)")
	flag.DurationVar(&o.debounce, "debounce", xds.DefaultDebounce, "in process: push debounce quiet period")
	flag.Parse()

	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "weft-xds-load:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
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
	o.log = io.Discard
	if *verbose {
		o.log = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cfg, o); err != nil {
		fail(err)
	}
}

func run(ctx context.Context, cfg loadtest.Config, o options) error {
	var change func(context.Context) error
	switch {
	case cfg.Target != "" && o.apply != "" && o.changeCmd != "":
		return errors.New("-apply and -change-cmd are exclusive")
	case cfg.Target != "" && o.apply != "":
		body, err := os.ReadFile(o.apply)
		if err != nil {
			return err
		}
		change = func(ctx context.Context) error { return applyFile(ctx, o.admin, o.apply, body) }
	case cfg.Target != "":
		if o.changeCmd == "" {
			return errors.New("-target needs -apply (a file to apply through weftd's admin API) or -change-cmd (a command that changes the configuration)")
		}
		change = func(ctx context.Context) error {
			cmd := exec.CommandContext(ctx, "sh", "-c", o.changeCmd)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			return cmd.Run()
		}
	default:
		target, ch, stop, err := inProcess(ctx, o)
		if err != nil {
			return err
		}
		defer stop()
		cfg.Target, change = target, ch
	}
	res, err := loadtest.Run(ctx, cfg, change)
	if res != nil {
		fmt.Println(res)
	}
	return err
}

// applyFile posts a manifest to weftd's apply API.
func applyFile(ctx context.Context, admin, file string, body []byte) error {
	u := strings.TrimSuffix(admin, "/") + "/api/v1/apply?file=" + url.QueryEscape(file)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("apply %s: %s: %s", file, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// inProcess starts an xDS server on a synthetic mesh. It returns the
// server's address, the change to apply and a function that stops it.
func inProcess(ctx context.Context, o options) (string, func(context.Context) error, func(), error) {
	gen := xds.Generator(translate.NewCache().Generate)
	switch o.generator {
	case "translate":
	case "translate-nocache":
		gen = translate.Generate
	case "fixture":
		gen = loadtest.Generator
	default:
		return "", nil, nil, fmt.Errorf("-generator %q: want translate, translate-nocache or fixture", o.generator)
	}
	store := model.NewStore()
	store.Update(loadtest.Mesh("load", o.services, o.endpoints, 0))
	var change func(context.Context) error
	switch o.change {
	case "eds":
		change = func(context.Context) error {
			store.Update(loadtest.Mesh("load", o.services, o.endpoints, 1))
			return nil
		}
	case "service":
		change = func(context.Context) error {
			store.Update(loadtest.Mesh("load", o.services+1, o.endpoints, 0))
			return nil
		}
	default:
		return "", nil, nil, fmt.Errorf("-change %q: want eds or service", o.change)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	srv := xds.New(xds.Options{Generator: gen, Store: store, Debounce: o.debounce, Logger: slog.New(slog.NewTextHandler(o.log, nil))})
	srvCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(srvCtx, lis) }()
	fmt.Fprintf(os.Stderr, "in-process xDS server on %s: %d services, %d endpoints each, generator %s, change %s\n",
		lis.Addr(), o.services, o.endpoints, o.generator, o.change)
	return lis.Addr().String(), change, func() { cancel(); <-done }, nil
}
