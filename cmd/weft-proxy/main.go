// Command weft-proxy is Weft's data plane: an Envoy-compatible sidecar
// and gateway proxy configured over xDS.
//
// For the smallest footprint build it with
//
//	CGO_ENABLED=0 go build -tags grpcnotrace ./cmd/weft-proxy
//
// Idle RSS is mostly the binary's own pages (about 21 of 27 MB: the
// kernel maps text and read-only data in large runs), so binary size is
// what counts. CGO_ENABLED=0 drops libc and the dynamic loader (about
// 1.6 MB); grpcnotrace drops gRPC's x/net/trace, whose html/template
// makes the linker keep every exported method of every reachable type
// (binary 39 → 31 MB, about 2.5 MB of RSS). Neither changes behaviour:
// DNS uses Go's resolver, and weft-proxy serves no /debug/requests.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/weftmesh/weft/internal/proxy"
	"github.com/weftmesh/weft/internal/proxy/bootstrap"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "weft-proxy:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "init" {
		return runInit(args[1:], os.Stdout)
	}
	cfg := bootstrap.Default()
	fs := flag.NewFlagSet("weft-proxy", flag.ContinueOnError)
	file := fs.String("bootstrap", "", "bootstrap file (JSON or YAML); flags given explicitly override it")
	xds := fs.String("xds-address", cfg.XDSAddress, "control plane address (ADS, plaintext gRPC)")
	nodeID := fs.String("node-id", "", "xDS node id (e.g. sidecar~10.1.1.1~pod.ns~ns.svc.cluster.local)")
	cluster := fs.String("cluster", cfg.Node.Cluster, "xDS node cluster")
	ns := fs.String("namespace", "", "workload namespace (NAMESPACE metadata)")
	workload := fs.String("workload", "", "workload name (WORKLOAD_NAME metadata)")
	labels := fs.String("labels", "", "workload labels k=v,k2=v2 (LABELS metadata)")
	sa := fs.String("service-account", "", "service account (SERVICE_ACCOUNT metadata)")
	ips := fs.String("instance-ips", "", "comma-separated instance IPs (INSTANCE_IPS metadata)")
	adminPort := fs.Int("admin-port", 15000, "admin port on 127.0.0.1 (0 picks one)")
	readyPort := fs.Int("ready-port", 15021, "readiness port (/healthz/ready); -1 disables")
	statsPort := fs.Int("stats-port", 15090, "Prometheus port (/stats/prometheus); -1 disables")
	forward := fs.String("forward-proxy", "", "serve an HTTP forward proxy (HTTP_PROXY) on this host:port")
	delta := fs.Bool("delta", false, "use incremental (delta) xDS")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	fs.String("ca-address", "", "weftd's certificate service host:port (15012); enables the workload identity and mesh mTLS")
	fs.String("ca-server-name", "", "name weftd's serving certificate must carry (default: the host of --ca-address)")
	fs.String("ca-root-file", "", "PEM roots that verify weftd's certificate service")
	fs.String("ca-root-url", "", "fetch the roots from weftd's admin API instead (e.g. http://weftd:15014/api/v1/ca/root); trusts that channel")
	fs.String("token-file", "", "bootstrap token file (from weftd's POST /api/v1/tokens)")
	fs.String("trust-domain", "", "SPIFFE trust domain of the workload identity (default cluster.local)")
	fs.String("credential-dir", "", "serve Gateway credentialName secrets from DIR/NAME/{tls.crt,tls.key,ca.crt}")
	accessLog := fs.String("access-log", "", "write JSON access logs to this file (- is stdout); off by default")
	drain := fs.Duration("drain-duration", time.Duration(cfg.DrainTimeout), "on SIGTERM, let connections finish for at most this long (Istio's terminationDrainDuration)")
	certTTL := fs.Duration("cert-ttl", 0, "workload certificate lifetime to request (0: weftd's default)")
	otlpURL := fs.String("tracing-otlp-url", "", "export spans over OTLP/HTTP JSON to this collector URL (http://collector:4318/v1/traces); empty disables tracing")
	sampling := fs.Float64("tracing-sampling", cfg.Tracing.Sampling, "percentage of requests without an upstream decision that are traced (0-100)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file != "" {
		var err error
		if cfg, err = bootstrap.Load(*file, cfg); err != nil {
			return err
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["xds-address"] {
		cfg.XDSAddress = *xds
	}
	if set["node-id"] {
		cfg.Node.ID = *nodeID
	}
	if set["cluster"] {
		cfg.Node.Cluster = *cluster
	}
	if set["namespace"] {
		cfg.Node.Namespace = *ns
	}
	if set["workload"] {
		cfg.Node.Workload = *workload
	}
	if set["service-account"] {
		cfg.Node.ServiceAccount = *sa
	}
	if set["labels"] {
		l, err := bootstrap.ParseLabels(*labels)
		if err != nil {
			return fmt.Errorf("--labels: %w", err)
		}
		cfg.Node.Labels = l
	}
	if set["instance-ips"] {
		cfg.Node.InstanceIPs = strings.Split(*ips, ",")
	}
	if set["admin-port"] {
		cfg.AdminAddress = fmt.Sprintf("127.0.0.1:%d", *adminPort)
	}
	if set["ready-port"] {
		cfg.ReadyAddress = portAddr(*readyPort)
	}
	if set["stats-port"] {
		cfg.StatsAddress = portAddr(*statsPort)
	}
	if set["forward-proxy"] {
		cfg.ForwardProxyAddress = *forward
	}
	if set["delta"] {
		cfg.Delta = *delta
	}
	for flagName, dst := range map[string]*string{"ca-address": &cfg.CA.Address, "ca-server-name": &cfg.CA.ServerName,
		"ca-root-file": &cfg.CA.RootCertFile, "ca-root-url": &cfg.CA.RootURL, "token-file": &cfg.CA.TokenFile, "trust-domain": &cfg.CA.TrustDomain,
		"credential-dir": &cfg.CA.CredentialDir} {
		if set[flagName] {
			*dst = fs.Lookup(flagName).Value.String()
		}
	}
	if set["access-log"] {
		cfg.AccessLog = *accessLog
	}
	if set["drain-duration"] {
		cfg.DrainTimeout = bootstrap.Duration(*drain)
	}
	if set["cert-ttl"] {
		cfg.CA.CertTTL = bootstrap.Duration(*certTTL)
	}
	if set["tracing-otlp-url"] {
		cfg.Tracing.OTLPURL = *otlpURL
	}
	if set["tracing-sampling"] {
		cfg.Tracing.Sampling = *sampling
	}
	level := new(slog.LevelVar)
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	p, err := proxy.New(cfg, log, level)
	if err != nil {
		return err
	}
	if err := p.Start(); err != nil {
		return err
	}
	log.Info("weft-proxy started", "node", cfg.Node.ID, "xds", cfg.XDSAddress, "delta", cfg.Delta, "admin", p.Addr("admin"))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return p.Run(ctx)
}

func portAddr(port int) string {
	if port < 0 {
		return ""
	}
	return fmt.Sprintf("0.0.0.0:%d", port)
}
