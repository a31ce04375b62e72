package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/weftmesh/weft/internal/proxy/iptables"
)

// runInit implements `weft-proxy init`: it writes Istio-equivalent nat rules
// into the current network namespace (run it under `ip netns exec`), or
// prints them with --dry-run.
func runInit(args []string, stdout io.Writer) error {
	cfg := iptables.Default()
	fs := flag.NewFlagSet("weft-proxy init", flag.ContinueOnError)
	fs.IntVar(&cfg.ProxyUID, "proxy-uid", cfg.ProxyUID, "uid of the proxy; its traffic is not redirected")
	fs.IntVar(&cfg.ProxyGID, "proxy-gid", cfg.ProxyGID, "gid of the proxy; its traffic is not redirected")
	fs.IntVar(&cfg.InboundCapturePort, "inbound-capture-port", cfg.InboundCapturePort, "port of the proxy's inbound listener")
	fs.IntVar(&cfg.OutboundCapturePort, "outbound-capture-port", cfg.OutboundCapturePort, "port of the proxy's outbound listener")
	inbound := fs.String("inbound-ports", "*", "comma-separated inbound ports to redirect, * for all")
	excludeIn := fs.String("exclude-inbound-ports", "", "comma-separated inbound ports not redirected (with *); 15008,22,15090,15021,15020 always are")
	excludeOut := fs.String("exclude-outbound-cidrs", "", "comma-separated destination CIDRs reached without the proxy")
	ipv6 := fs.String("ipv6", "auto", "also write ip6tables rules: auto (when the namespace has a global IPv6 address), true or false")
	dryRun := fs.Bool("dry-run", false, "print the iptables-restore input instead of applying it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("init: unexpected argument %q", fs.Arg(0))
	}
	var err error
	if cfg.InboundPorts, err = iptables.ParsePorts(*inbound); err != nil {
		return fmt.Errorf("--inbound-ports: %w", err)
	}
	if cfg.ExcludeInboundPorts, err = iptables.ParsePorts(*excludeIn); err != nil {
		return fmt.Errorf("--exclude-inbound-ports: %w", err)
	}
	if cfg.ExcludeOutboundCIDRs, err = iptables.ParseCIDRs(*excludeOut); err != nil {
		return fmt.Errorf("--exclude-outbound-cidrs: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	families := []iptables.Family{iptables.IPv4}
	switch *ipv6 {
	case "true":
		families = append(families, iptables.IPv6)
	case "false":
	case "auto":
		has, err := iptables.HasIPv6()
		if err != nil {
			return fmt.Errorf("init: listing addresses: %w", err)
		}
		if has || *dryRun {
			families = append(families, iptables.IPv6)
		}
	default:
		return fmt.Errorf("--ipv6: want auto, true or false, got %q", *ipv6)
	}
	if *dryRun {
		for _, f := range families {
			fmt.Fprintf(stdout, "# %s\n%s", map[iptables.Family]string{iptables.IPv4: "iptables-restore", iptables.IPv6: "ip6tables-restore"}[f], cfg.Rules(f))
		}
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("init: writing iptables rules needs root (CAP_NET_ADMIN); use --dry-run to print them")
	}
	return iptables.Apply(context.Background(), cfg, families...)
}
