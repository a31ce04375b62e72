package listener

import (
	"net/netip"
	"strings"
)

// connFacts are what a connection offers for filter chain matching.
type connFacts struct {
	local  netip.AddrPort // original destination when known
	remote netip.AddrPort
	in     inspected
}

// selectChain applies Envoy's filter chain match order: destination
// port, destination IP, server name, transport protocol, application
// protocols, source IP; at each step the most specific candidates win.
func (l *Listener) selectChain(f *connFacts) *Chain {
	cands := l.Chains
	steps := []func([]*Chain) []*Chain{
		func(cs []*Chain) []*Chain {
			return narrow(cs, func(c *Chain) int {
				switch {
				case c.match.destPort == 0:
					return 0
				case c.match.destPort == int(f.local.Port()):
					return 1
				}
				return -1
			})
		},
		func(cs []*Chain) []*Chain {
			return narrow(cs, func(c *Chain) int { return prefixScore(c.match.prefixes, f.local.Addr()) })
		},
		func(cs []*Chain) []*Chain {
			return narrow(cs, func(c *Chain) int { return serverNameScore(c.match.serverNames, f.in.serverName) })
		},
		func(cs []*Chain) []*Chain {
			return narrow(cs, func(c *Chain) int {
				switch c.match.transport {
				case "":
					return 0
				case f.in.transport:
					return 1
				}
				return -1
			})
		},
		func(cs []*Chain) []*Chain {
			return narrow(cs, func(c *Chain) int {
				if len(c.match.appProtocols) == 0 {
					return 0
				}
				for _, p := range c.match.appProtocols {
					if p == f.in.httpProto && p != "" {
						return 1
					}
					for _, a := range f.in.alpn {
						if a == p {
							return 1
						}
					}
				}
				return -1
			})
		},
		func(cs []*Chain) []*Chain {
			return narrow(cs, func(c *Chain) int { return prefixScore(c.match.sourcePrefix, f.remote.Addr()) })
		},
	}
	for _, step := range steps {
		cands = step(cands)
		if len(cands) == 0 {
			return l.Default
		}
	}
	return cands[0]
}

// narrow keeps the candidates with the best non-negative score.
func narrow(cs []*Chain, score func(*Chain) int) []*Chain {
	best := -1
	var out []*Chain
	for _, c := range cs {
		s := score(c)
		switch {
		case s < 0 || s < best:
		case s > best:
			best = s
			out = append(out[:0:0], c)
		default:
			out = append(out, c)
		}
	}
	return out
}

// prefixScore is 0 without prefixes, 1+length of the longest matching
// prefix, or -1 when none matches.
func prefixScore(ps []netip.Prefix, a netip.Addr) int {
	if len(ps) == 0 {
		return 0
	}
	a = a.Unmap()
	best := -1
	for _, p := range ps {
		if p.Contains(a) && p.Bits()+1 > best {
			best = p.Bits() + 1
		}
	}
	return best
}

// serverNameScore prefers exact names over longer wildcards over none.
func serverNameScore(names []string, sni string) int {
	if len(names) == 0 {
		return 0
	}
	sni = strings.ToLower(sni)
	best := -1
	for _, n := range names {
		switch {
		case n == sni && sni != "":
			return 1 << 20
		case strings.HasPrefix(n, "*.") && strings.HasSuffix(sni, n[1:]) && len(n) > best:
			best = len(n)
		}
	}
	return best
}
