// Command weftd is Weft's control plane: it reads the mesh configuration,
// serves it to proxies over xDS and exposes an admin API.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/weftmesh/weft/internal/weftd"
)

func main() {
	cfg, err := weftd.LoadConfig(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "weftd:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := weftd.Main(ctx, cfg, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "weftd:", err)
		os.Exit(1)
	}
}
