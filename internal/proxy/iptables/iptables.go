// Package iptables builds and applies the nat rules that redirect a pod's
// TCP traffic to its sidecar, equivalent to Istio's istio-iptables: inbound
// connections go to the proxy's 15006 listener, outbound ones to 15001, and
// the proxy's own traffic (uid/gid 1337) is let out untouched.
//
// Rules are applied atomically with iptables-restore (and ip6tables-restore
// when the network namespace has IPv6) in the caller's network namespace.
// Never apply them in a machine's root namespace.
package iptables

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// Family is an IP family the rules are written for.
type Family int

// The IP families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// DefaultExcludedInboundPorts are never redirected to the inbound listener:
// HBONE (15008), the agent (15020), readiness (15021), Prometheus (15090) and ssh.
var DefaultExcludedInboundPorts = []int{15008, 22, 15090, 15021, 15020}

// Config describes the interception of one pod.
type Config struct {
	// ProxyUID and ProxyGID own the proxy's sockets; their traffic is not redirected.
	ProxyUID, ProxyGID int
	// InboundCapturePort is the proxy's inbound listener (15006).
	InboundCapturePort int
	// OutboundCapturePort is the proxy's outbound listener (15001).
	OutboundCapturePort int
	// InboundPorts lists the ports redirected inbound; nil or empty means all
	// ports ("*") except ExcludeInboundPorts and DefaultExcludedInboundPorts.
	InboundPorts []int
	// ExcludeInboundPorts are additional ports left alone when InboundPorts is all.
	ExcludeInboundPorts []int
	// ExcludeOutboundCIDRs are destinations reached directly, without the proxy.
	ExcludeOutboundCIDRs []netip.Prefix
}

// Default returns Istio's defaults: uid and gid 1337, ports 15006 and 15001, all inbound ports.
func Default() Config {
	return Config{ProxyUID: 1337, ProxyGID: 1337, InboundCapturePort: 15006, OutboundCapturePort: 15001}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if c.ProxyUID < 0 || c.ProxyGID < 0 {
		return fmt.Errorf("proxy uid/gid must not be negative (uid %d, gid %d)", c.ProxyUID, c.ProxyGID)
	}
	for name, p := range map[string]int{"inbound capture port": c.InboundCapturePort, "outbound capture port": c.OutboundCapturePort} {
		if p < 1 || p > 65535 {
			return fmt.Errorf("%s %d out of range 1-65535", name, p)
		}
	}
	for _, p := range slices.Concat(c.InboundPorts, c.ExcludeInboundPorts) {
		if p < 1 || p > 65535 {
			return fmt.Errorf("port %d out of range 1-65535", p)
		}
	}
	return nil
}

// Rules returns the iptables-restore input (nat table) for family f.
func (c Config) Rules(f Family) string {
	loopback, innerSource := "127.0.0.1/32", "127.0.0.6/32"
	if f == IPv6 {
		loopback, innerSource = "::1/128", "::6/128"
	}
	var b strings.Builder
	add := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	add("* nat")
	for _, chain := range []string{"ISTIO_INBOUND", "ISTIO_REDIRECT", "ISTIO_IN_REDIRECT", "ISTIO_OUTPUT"} {
		add("-N %s", chain)
	}
	add("-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports %d", c.OutboundCapturePort)
	add("-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports %d", c.InboundCapturePort)

	// Inbound: PREROUTING sees connections arriving from other pods.
	add("-A PREROUTING -p tcp -j ISTIO_INBOUND")
	if len(c.InboundPorts) == 0 {
		for _, p := range dedupe(slices.Concat(DefaultExcludedInboundPorts, c.ExcludeInboundPorts)) {
			add("-A ISTIO_INBOUND -p tcp --dport %d -j RETURN", p)
		}
		add("-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT")
	} else {
		for _, p := range dedupe(c.InboundPorts) {
			add("-A ISTIO_INBOUND -p tcp --dport %d -j ISTIO_IN_REDIRECT", p)
		}
	}

	// Outbound: OUTPUT sees connections opened by processes of the pod.
	add("-A OUTPUT -p tcp -j ISTIO_OUTPUT")
	// The proxy's inbound side may dial the app from 127.0.0.6 (Istio's convention).
	add("-A ISTIO_OUTPUT -s %s -o lo -j RETURN", innerSource)
	for _, owner := range []struct {
		match string
		id    int
	}{{"--uid-owner", c.ProxyUID}, {"--gid-owner", c.ProxyGID}} {
		// The proxy calling its own pod (a local endpoint of an outbound
		// service) goes out over lo: send it through the inbound listener so
		// inbound policy applies, as Istio does.
		add("-A ISTIO_OUTPUT ! -d %s -o lo -m owner %s %d -j ISTIO_IN_REDIRECT", loopback, owner.match, owner.id)
		// The app talking to itself over lo is left alone.
		add("-A ISTIO_OUTPUT -o lo -m owner ! %s %d -j RETURN", owner.match, owner.id)
		// Everything else the proxy opens leaves directly.
		add("-A ISTIO_OUTPUT -m owner %s %d -j RETURN", owner.match, owner.id)
	}
	add("-A ISTIO_OUTPUT -d %s -j RETURN", loopback)
	for _, p := range c.ExcludeOutboundCIDRs {
		if (f == IPv6) == p.Addr().Is6() && !p.Addr().Is4In6() {
			add("-A ISTIO_OUTPUT -d %s -j RETURN", p.Masked())
		}
	}
	add("-A ISTIO_OUTPUT -j ISTIO_REDIRECT")
	add("COMMIT")
	return b.String()
}

func dedupe(ports []int) []int {
	var out []int
	for _, p := range ports {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// HasIPv6 reports whether the current network namespace has a global IPv6
// address on some interface (so IPv6 traffic must be intercepted too).
func HasIPv6() (bool, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if ok && n.IP.To4() == nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return true, nil
		}
	}
	return false, nil
}

// Apply writes the rules for each family with iptables-restore or
// ip6tables-restore in the calling process's network namespace. Existing
// rules of other tables and chains are kept (--noflush); applying twice fails
// because the ISTIO_* chains exist already.
func Apply(ctx context.Context, c Config, families ...Family) error {
	if err := c.Validate(); err != nil {
		return err
	}
	for _, f := range families {
		bin := "iptables-restore"
		if f == IPv6 {
			bin = "ip6tables-restore"
		}
		cmd := exec.CommandContext(ctx, bin, "--noflush")
		cmd.Stdin = strings.NewReader(c.Rules(f))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %v: %s", bin, err, strings.TrimSpace(out.String()))
		}
	}
	return nil
}

// ParsePorts parses a comma-separated port list; "" and "*" mean none (all).
func ParsePorts(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "*" {
		return nil, nil
	}
	var ports []int
	for _, f := range strings.Split(s, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("invalid port %q (want 1-65535)", f)
		}
		ports = append(ports, p)
	}
	return ports, nil
}

// ParseCIDRs parses a comma-separated list of CIDRs or addresses.
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("invalid CIDR %q", f)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("invalid CIDR %q", f)
		}
		out = append(out, p)
	}
	return out, nil
}
