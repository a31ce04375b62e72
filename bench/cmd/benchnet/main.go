// Command benchnet is the benchmark's Go backend and TCP load client.
//
//	benchnet serve [-http addr] [-grpc addr] [-tcp-echo addr] [-tcp-sink addr]
//	benchnet tcpload -addr host:port [-conns n] [-duration d]
//
// serve prints its bound addresses as one JSON line and runs until
// SIGTERM; tcpload prints a JSON result {"bytes":..,"seconds":..}.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/weftmesh/weft/bench/backend"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchnet serve|tcpload [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "tcpload":
		err = tcpload(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (want serve or tcpload)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchnet:", err)
		os.Exit(1)
	}
}

func serve(args []string) error {
	var cfg backend.Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&cfg.HTTP, "http", "127.0.0.1:0", "HTTP/1.1 and h2c address")
	fs.StringVar(&cfg.GRPC, "grpc", "127.0.0.1:0", "gRPC health address")
	fs.StringVar(&cfg.TCPEcho, "tcp-echo", "127.0.0.1:0", "TCP echo address")
	fs.StringVar(&cfg.TCPSink, "tcp-sink", "127.0.0.1:0", "TCP sink address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, err := backend.Start(cfg)
	if err != nil {
		return err
	}
	defer s.Stop()
	addrs := map[string]string{}
	for _, n := range []string{"http", "grpc", "tcp-echo", "tcp-sink"} {
		addrs[n] = s.Addr(n)
	}
	if err := json.NewEncoder(os.Stdout).Encode(addrs); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}

func tcpload(args []string) error {
	fs := flag.NewFlagSet("tcpload", flag.ContinueOnError)
	addr := fs.String("addr", "", "host:port to send to")
	conns := fs.Int("conns", 1, "connections")
	d := fs.Duration("duration", 5*time.Second, "how long to send")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addr == "" {
		return fmt.Errorf("tcpload: -addr is required")
	}
	res, err := backend.TCPLoad(context.Background(), *addr, *conns, *d)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}
