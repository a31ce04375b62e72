// Command bookinfo runs one service of Istio's bookinfo sample, ported to Go:
//
//	bookinfo productpage|details|reviews|ratings [flags]
//
// Each service logs one JSON line per request on stdout. Services call each
// other by Istio service name (http://details:9080, http://reviews:9080,
// http://ratings:9080). In local mode without root (docs/adr/0007) each app
// listens on its Sidecar's defaultEndpoint and sends its calls to the
// Sidecar's HTTP_PROXY egress listener, for example:
//
//	bookinfo details --listen 127.0.1.20:9080
//	HTTP_PROXY=http://127.0.2.31:15001 bookinfo reviews --listen 127.0.1.31:9080 --version v2
//	HTTP_PROXY=http://127.0.2.10:15001 bookinfo productpage --listen 127.0.1.10:9080
//
// See package github.com/weftmesh/weft/examples/bookinfo/app.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/weftmesh/weft/examples/bookinfo/app"
)

func main() {
	cmd, err := app.ParseCommand(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bookinfo:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.Run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bookinfo:", err)
		os.Exit(1)
	}
}
