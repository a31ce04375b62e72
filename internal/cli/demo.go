package cli

import (
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/demo"
)

func init() { register(newDemoCommand) }

func newDemoCommand(env *Env) *cobra.Command {
	var opts demo.Options
	var transparent bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run Istio's bookinfo sample on a local Weft mesh",
		Long: `Demo runs a whole mesh on this machine, without root: weftd, an ingress
gateway and Istio's bookinfo (productpage, details, reviews v1/v2/v3,
ratings) and httpbin (v1, v2) samples, each workload with its own
weft-proxy sidecar, on loopback addresses 127.0.0.X (docs/adr/0007).

The binaries weftd, weft-proxy, bookinfo and httpbin are taken from --bin-dir,
else from the directory of this weft executable ("make build" puts them all
in bin/), else from PATH. Progress is printed as each component becomes
ready, then the product page URL, where configuration, metrics and logs
are, and the traffic tasks to try with "weft apply".

Ctrl-C (or SIGTERM) stops every process: each runs in its own process
group and gets SIGTERM, then SIGKILL after --stop-grace.`,
		Example: `  make demo
  weft demo --gateway-port 18080
  weft apply -f examples/bookinfo/tasks/virtual-service-all-v1.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if transparent && os.Geteuid() != 0 {
				return errors.New("demo: --transparent needs root (network namespaces and iptables); run it with sudo, or without --transparent for the unprivileged local mode")
			}
			opts.Transparent = transparent
			opts.Out = env.Out
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return demo.Run(ctx, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.BinDir, "bin-dir", "", "directory holding weftd, weft-proxy, bookinfo and httpbin (default: next to weft, then PATH)")
	f.StringVar(&opts.StateDir, "state-dir", "", "directory for the generated configuration and the logs (default: a new temporary directory)")
	f.IntVar(&opts.GatewayPort, "gateway-port", 8080, "port of the bookinfo Gateway server, bound by the ingress gateway")
	f.IntVar(&opts.XDSPort, "xds-port", 15010, "weftd's xDS port on 127.0.0.1")
	f.IntVar(&opts.SecureXDSPort, "secure-xds-port", 15012, "weftd's certificate (TLS) port on 127.0.0.1")
	f.IntVar(&opts.AdminPort, "weftd-port", 15014, "weftd's admin port on 127.0.0.1 (debug pages, metrics, apply API)")
	f.IntVar(&opts.ProxyAdminPort, "proxy-admin-port", 15000, "each proxy's admin port, on its own address")
	f.IntVar(&opts.ProxyReadyPort, "proxy-ready-port", 15021, "each proxy's readiness port (/healthz/ready), on its own address")
	f.IntVar(&opts.ProxyStatsPort, "proxy-stats-port", 15090, "each proxy's Prometheus port (/stats/prometheus), on its own address")
	f.Uint8Var(&opts.AddressBlock, "address-block", 0, "put workloads on 127.0.N.X and their forward proxies on 127.0.N+1.X (with other ports, two demos can run side by side)")
	f.DurationVar(&opts.ReadyTimeout, "ready-timeout", 60*time.Second, "how long to wait for the mesh to be ready")
	f.DurationVar(&opts.StopGrace, "stop-grace", 10*time.Second, "how long each process may take to exit after SIGTERM")
	f.BoolVar(&transparent, "transparent", false, "as root: each workload in a network namespace with iptables interception (weft-proxy init), no HTTP_PROXY")
	return cmd
}
