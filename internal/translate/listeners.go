package translate

import (
	"sort"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/model"
)

// outboundListeners builds the sidecar's per-port outbound listeners,
// Istio style, none bound to a port (the virtual outbound listener hands
// connections over by original destination):
//   - "0.0.0.0_PORT" for HTTP ports, an HTTP connection manager using RDS
//     route configuration "PORT"; with HTTP inspection when services of
//     unknown protocol share the port;
//   - "VIP_PORT" for TCP (and unknown-protocol) services with a VIP, a
//     tcp_proxy to the service (or its TCP/TLS VirtualService routes);
//   - "0.0.0.0_PORT" for TCP services without VIP when no HTTP service
//     claims the port: TLS services by SNI, else the first service.
func outboundListeners(ports []*portServices, mesh *vsSet, rc routeContext, sc *scope) []*listener.Listener {
	var out []*listener.Listener
	names := map[string]bool{}
	add := func(l *listener.Listener) {
		if !names[l.Name] {
			names[l.Name] = true
			out = append(out, l)
		}
	}
	fallback := PassthroughCluster
	if sc.registryOnly {
		fallback = BlackHoleCluster
	}
	for _, ps := range ports {
		prc := rc
		prc.port = ps.port
		var wildTCP []*model.Service
		for _, svc := range ps.tcp {
			if ip := vip(svc); ip != "" {
				l := virtualListener(ip+"_"+portString(ps.port), socketAddress(ip, ps.port))
				l.FilterChains = prc.tcpChains(svc, mesh)
				if hasServerNames(l.FilterChains) {
					l.ListenerFilters = append(l.ListenerFilters, tlsInspector())
				}
				add(l)
			} else {
				wildTCP = append(wildTCP, svc)
			}
		}
		var wildSniffed []*model.Service
		for _, svc := range ps.sniffed {
			ip := vip(svc)
			if ip == "" {
				wildSniffed = append(wildSniffed, svc)
				continue
			}
			name := ip + "_" + portString(ps.port)
			l := virtualListener(name, socketAddress(ip, ps.port))
			l.ListenerFilters = []*listener.ListenerFilter{httpInspector()}
			l.FilterChains = append(sniffedHTTPChain(name, ps.port), prc.tcpChains(svc, mesh)...)
			add(l)
		}
		name := "0.0.0.0_" + portString(ps.port)
		switch {
		case len(ps.http) > 0 || len(wildSniffed) > 0:
			l := virtualListener(name, anyAddress(ps.port))
			if len(wildSniffed) == 0 {
				l.FilterChains = []*listener.FilterChain{{
					Name:    name,
					Filters: []*listener.Filter{httpConnectionManager(hcmOptions{statPrefix: "outbound_" + name, rds: portString(ps.port)})},
				}}
			} else {
				l.ListenerFilters = []*listener.ListenerFilter{httpInspector()}
				l.FilterChains = append(sniffedHTTPChain(name, ps.port), &listener.FilterChain{
					Name: "PassthroughFilterChain", Filters: []*listener.Filter{tcpProxy(fallback, []weightedCluster{{name: fallback}})},
				})
			}
			add(l)
		case len(wildTCP) > 0:
			l := virtualListener(name, anyAddress(ps.port))
			if isTLSPort(wildTCP[0], ps.port) {
				for _, svc := range wildTCP {
					if isTLSPort(svc, ps.port) {
						l.FilterChains = append(l.FilterChains, prc.sniChains(svc, mesh)...)
					}
				}
				l.FilterChains = dedupeServerNames(l.FilterChains)
				l.FilterChains = append(l.FilterChains, &listener.FilterChain{
					Name: "PassthroughFilterChain", Filters: []*listener.Filter{tcpProxy(fallback, []weightedCluster{{name: fallback}})},
				})
				l.ListenerFilters = []*listener.ListenerFilter{tlsInspector()}
			} else {
				l.FilterChains = prc.tcpChains(wildTCP[0], mesh)
				if hasServerNames(l.FilterChains) {
					l.ListenerFilters = []*listener.ListenerFilter{tlsInspector()}
				}
				for _, svc := range wildTCP[1:] {
					rc.diags.serviceWarnf(svc, "TCP port %d: service %s has no address and shares the port with %s; connections to the port go to %s (give the services addresses)",
						ps.port, svc.Hostname, wildTCP[0].Hostname, wildTCP[0].Hostname)
				}
			}
			add(l)
		}
		if len(ps.http) > 0 || len(wildSniffed) > 0 {
			for _, svc := range wildTCP {
				rc.diags.serviceWarnf(svc, "TCP port %d: service %s has no address and the port is also an HTTP port of another service; its TCP traffic is handled as HTTP (give it an address)", ps.port, svc.Hostname)
			}
		}
	}
	return out
}

// virtualListener is an outbound listener that does not bind its port.
func virtualListener(name string, addr *core.Address) *listener.Listener {
	return &listener.Listener{
		Name:             name,
		Address:          addr,
		BindToPort:       wrapBool(false),
		TrafficDirection: core.TrafficDirection_OUTBOUND,
	}
}

// sniffedHTTPChain matches connections the HTTP inspector found to be
// HTTP and routes them with RDS route configuration "PORT".
func sniffedHTTPChain(name string, port uint32) []*listener.FilterChain {
	return []*listener.FilterChain{{
		Name:             name + "_http",
		FilterChainMatch: &listener.FilterChainMatch{ApplicationProtocols: sniffedHTTPProtocols},
		Filters:          []*listener.Filter{httpConnectionManager(hcmOptions{statPrefix: "outbound_" + name, rds: portString(port)})},
	}}
}

func isTLSPort(svc *model.Service, port uint32) bool {
	p, _ := svc.Port(port)
	return p.Protocol.IsTLS()
}

func hasServerNames(chains []*listener.FilterChain) bool {
	for _, c := range chains {
		if len(c.GetFilterChainMatch().GetServerNames()) > 0 {
			return true
		}
	}
	return false
}

// dedupeServerNames keeps the first chain for each set of server names
// (Envoy rejects identical matches).
func dedupeServerNames(chains []*listener.FilterChain) []*listener.FilterChain {
	seen := map[string]bool{}
	out := chains[:0]
	for _, c := range chains {
		key := strings.Join(c.GetFilterChainMatch().GetServerNames(), ",")
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, c)
	}
	return out
}

// tcpChains builds the filter chains of a TCP service's own listener: SNI
// chains from TLS routes (for TLS ports), then a default chain from the
// first applicable TCP route, or to the service's cluster.
func (rc *routeContext) tcpChains(svc *model.Service, mesh *vsSet) []*listener.FilterChain {
	var chains []*listener.FilterChain
	vs := mesh.forHost(svc.Hostname)
	if isTLSPort(svc, rc.port) && vs != nil {
		chains = dedupeServerNames(rc.tlsRouteChains(vs))
	}
	dests := []weightedCluster{{name: OutboundClusterName(rc.port, "", svc.Hostname)}}
	if vs != nil {
		vrc := rc.forVS(vs)
		for _, tr := range vs.vs.Tcp {
			if vrc.l4Applies(tr.Match) {
				if d := vrc.routeDestinations(tr.Route); len(d) > 0 {
					dests = d
				}
				break
			}
		}
	}
	prefix := "outbound|" + portString(rc.port) + "||" + svc.Hostname
	return append(chains, &listener.FilterChain{Name: prefix, Filters: []*listener.Filter{tcpProxyIdle(prefix, dests, rc.tcpIdleTimeout(svc))}})
}

// tcpIdleTimeout is the service's DestinationRule connectionPool.tcp
// idleTimeout for the port, or nil.
func (rc *routeContext) tcpIdleTimeout(svc *model.Service) *durationpb.Duration {
	return effectivePolicy(rc.rules.lookup(svc.Hostname, svc.Namespace), rc.port, "").pool.GetTcp().GetIdleTimeout()
}

// sniChains builds, for a TLS service on a shared wildcard listener, the
// chains of its TLS routes plus one matching the service host itself.
func (rc *routeContext) sniChains(svc *model.Service, mesh *vsSet) []*listener.FilterChain {
	var chains []*listener.FilterChain
	if vs := mesh.forHost(svc.Hostname); vs != nil {
		chains = rc.tlsRouteChains(vs)
	}
	name := OutboundClusterName(rc.port, "", svc.Hostname)
	return append(chains, &listener.FilterChain{
		Name:             name,
		FilterChainMatch: &listener.FilterChainMatch{ServerNames: []string{svc.Hostname}},
		Filters:          []*listener.Filter{tcpProxy(name, []weightedCluster{{name: name}})},
	})
}

// tlsRouteChains builds one chain per applicable TLS route match, keyed by
// its SNI hosts.
func (rc *routeContext) tlsRouteChains(vs *boundVS) []*listener.FilterChain {
	vrc := rc.forVS(vs)
	var chains []*listener.FilterChain
	for _, tr := range vs.vs.Tls {
		dests := vrc.routeDestinations(tr.Route)
		if len(dests) == 0 {
			continue
		}
		for _, m := range tr.Match {
			if !vrc.l4Applies([]*networking.L4MatchAttributes{{Port: m.Port, SourceLabels: m.SourceLabels, SourceNamespace: m.SourceNamespace, Gateways: m.Gateways}}) {
				continue
			}
			var sni []string
			for _, h := range m.SniHosts {
				sni = append(sni, resolveHost(h, vs.namespace))
			}
			sort.Strings(sni)
			chains = append(chains, &listener.FilterChain{
				Name:             "tls:" + strings.Join(sni, ","),
				FilterChainMatch: &listener.FilterChainMatch{ServerNames: sni},
				Filters:          []*listener.Filter{tcpProxy(dests[0].name, dests)},
			})
		}
	}
	return chains
}

// l4Applies reports whether any of the L4 matches applies to this proxy
// and port (no matches: always).
func (rc *routeContext) l4Applies(ms []*networking.L4MatchAttributes) bool {
	if len(ms) == 0 {
		return true
	}
	for _, m := range ms {
		if m.Port != 0 && m.Port != rc.port {
			continue
		}
		if len(m.SourceLabels) > 0 && !model.SelectorMatches(m.SourceLabels, rc.proxy.Labels) {
			continue
		}
		if m.SourceNamespace != "" && m.SourceNamespace != rc.proxy.Namespace {
			continue
		}
		if len(m.Gateways) > 0 {
			ok := false
			for _, g := range normalizeGateways(m.Gateways, rc.namespace) {
				ok = ok || containsString(rc.gateways, g)
			}
			if !ok {
				continue
			}
		}
		return true
	}
	return false
}

// routeDestinations names the weighted clusters of TCP/TLS destinations.
func (rc *routeContext) routeDestinations(ds []*networking.RouteDestination) []weightedCluster {
	var out []weightedCluster
	for _, d := range ds {
		if d.Destination == nil || (d.Weight == 0 && len(ds) > 1) {
			continue
		}
		w := uint32(d.Weight)
		if w == 0 {
			w = 100
		}
		out = append(out, weightedCluster{name: rc.clusterFor(d.Destination), weight: w})
	}
	return out
}

// virtualOutboundListener is the listener iptables sends outbound
// connections to; it hands them to the listener of their original
// destination, and sends the rest to PassthroughCluster (ALLOW_ANY) or
// BlackHoleCluster (REGISTRY_ONLY).
func virtualOutboundListener(registryOnly bool) *listener.Listener {
	fallback := PassthroughCluster
	if registryOnly {
		fallback = BlackHoleCluster
	}
	return &listener.Listener{
		Name:             VirtualOutboundListener,
		Address:          anyAddress(OutboundPort),
		UseOriginalDst:   wrapBool(true),
		TrafficDirection: core.TrafficDirection_OUTBOUND,
		FilterChains: []*listener.FilterChain{{
			Name:    "PassthroughFilterChain",
			Filters: []*listener.Filter{tcpProxy(fallback, []weightedCluster{{name: fallback}})},
		}},
	}
}

// virtualInboundListener receives inbound connections: filter chains per
// workload port (HTTP through an inline route to "inbound|PORT||", TCP by
// tcp_proxy, unknown protocols sniffed; mesh mTLS terminated and/or plain
// text by the port's PeerAuthentication mode), and passthrough chains for
// other ports (by the workload-wide mode).
func virtualInboundListener(ports []inboundPort, pol mtlsPolicy) *listener.Listener {
	l := &listener.Listener{
		Name:             VirtualInboundListener,
		Address:          anyAddress(InboundPort),
		TrafficDirection: core.TrafficDirection_INBOUND,
		ListenerFilters:  []*listener.ListenerFilter{originalDst()},
	}
	sniff := false
	for _, p := range ports {
		chains, sniffs := inboundPortChains(p, pol.forPort(p.port), "inbound_0.0.0.0_"+portString(p.port))
		l.FilterChains = append(l.FilterChains, chains...)
		sniff = sniff || sniffs
	}
	if sniff {
		l.ListenerFilters = append(l.ListenerFilters, httpInspector())
	}
	passthrough := tcpProxy(InboundPassthroughCluster, []weightedCluster{{name: InboundPassthroughCluster}})
	if pol.mode != mtlsDisable {
		l.FilterChains = append(l.FilterChains, &listener.FilterChain{
			Name:             "InboundPassthroughFilterChain-mtls",
			FilterChainMatch: mtlsMatch(0, pol.mode),
			TransportSocket:  inboundMTLSSocket(false),
			Filters:          []*listener.Filter{passthrough},
		})
	}
	if pol.mode == mtlsPermissive {
		l.FilterChains = append(l.FilterChains, &listener.FilterChain{
			Name:             "InboundPassthroughFilterChain-tls",
			FilterChainMatch: &listener.FilterChainMatch{TransportProtocol: "tls"},
			Filters:          []*listener.Filter{passthrough},
		})
	}
	if pol.mode != mtlsStrict {
		l.FilterChains = append(l.FilterChains, &listener.FilterChain{
			Name:    "InboundPassthroughFilterChain",
			Filters: []*listener.Filter{passthrough},
		})
	}
	if hasTLSChains(l.FilterChains) {
		l.ListenerFilters = append(l.ListenerFilters, tlsInspector())
	}
	return l
}

// inboundPortChains builds the filter chains of one workload port in
// mTLS mode: HTTP through an inline route to "inbound|PORT||", TCP by
// tcp_proxy, unknown protocols sniffed (sniff reports that an HTTP
// inspector is needed); mesh mTLS terminated unless DISABLE, plain text
// unless STRICT.
func inboundPortChains(p inboundPort, mode mtlsMode, statPrefix string) (chains []*listener.FilterChain, sniff bool) {
	cl := InboundClusterName(p.port)
	match := func(alpn []string) *listener.FilterChainMatch {
		return &listener.FilterChainMatch{DestinationPort: u32(p.port), ApplicationProtocols: alpn}
	}
	httpChain := func(alpn []string, suffix string) *listener.FilterChain {
		return &listener.FilterChain{
			Name:             cl + suffix,
			FilterChainMatch: match(alpn),
			Filters:          []*listener.Filter{httpConnectionManager(hcmOptions{statPrefix: statPrefix, inline: inboundRoute(p.port), inbound: true})},
		}
	}
	tcpChain := &listener.FilterChain{Name: cl + "-tcp", FilterChainMatch: match(nil), Filters: []*listener.Filter{tcpProxy(cl, []weightedCluster{{name: cl}})}}
	if mode != mtlsDisable {
		// Mesh mTLS: terminated here, then HTTP or TCP as the port says
		// (HTTP is not sniffed inside TLS).
		mc := &listener.FilterChain{
			Name:             cl + "-mtls",
			FilterChainMatch: mtlsMatch(p.port, mode),
			TransportSocket:  inboundMTLSSocket(p.protocol.IsHTTP()),
			Filters:          tcpChain.Filters,
		}
		if p.protocol.IsHTTP() {
			mc.Filters = httpChain(nil, "").Filters
		}
		if p.protocol == model.ProtocolUnknown {
			// As Istio: the client's ALPN tells HTTP requests (the
			// client sniffed HTTP) from other connections.
			httpMatch, tcpMatch := mtlsSniffMatches(p.port, mode)
			chains = append(chains, &listener.FilterChain{
				Name:             cl + "-mtls-http",
				FilterChainMatch: httpMatch,
				TransportSocket:  inboundMTLSSocket(true),
				Filters:          httpChain(nil, "").Filters,
			})
			mc.FilterChainMatch = tcpMatch
		}
		chains = append(chains, mc)
	}
	if mode == mtlsPermissive {
		// Envoy does not backtrack once a chain matched the transport
		// protocol: TLS without the mesh ALPN (the application's own TLS)
		// needs a chain of its own, passing it through.
		chains = append(chains, &listener.FilterChain{
			Name:             cl + "-tls",
			FilterChainMatch: &listener.FilterChainMatch{DestinationPort: u32(p.port), TransportProtocol: "tls"},
			Filters:          tcpChain.Filters,
		})
	}
	if mode == mtlsStrict {
		return chains, false
	}
	switch {
	case p.protocol.IsHTTP():
		chains = append(chains, httpChain(nil, ""))
	case p.protocol == model.ProtocolUnknown:
		sniff = true
		chains = append(chains, httpChain(sniffedHTTPProtocols, "-http"), tcpChain)
	default:
		chains = append(chains, tcpChain)
	}
	return chains, sniff
}

func hasTLSChains(chains []*listener.FilterChain) bool {
	for _, c := range chains {
		if c.GetFilterChainMatch().GetTransportProtocol() == "tls" {
			return true
		}
	}
	return false
}

// inboundRoute is the inline route configuration of an inbound HTTP port:
// everything to the local application, without timeout.
func inboundRoute(port uint32) *route.RouteConfiguration {
	cl := InboundClusterName(port)
	return &route.RouteConfiguration{
		Name:             cl,
		ValidateClusters: wrapBool(false),
		VirtualHosts: []*route.VirtualHost{{
			Name:    "inbound|http|" + portString(port),
			Domains: []string{"*"},
			Routes: []*route.Route{{
				Name:  "default",
				Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
				Action: &route.Route_Route{Route: &route.RouteAction{
					ClusterSpecifier: &route.RouteAction_Cluster{Cluster: cl},
					Timeout:          durationpb.New(0),
					// As Istio: a gRPC request's grpc-timeout header,
					// uncapped, bounds the stream; nothing else does.
					MaxStreamDuration: &route.RouteAction_MaxStreamDuration{
						MaxStreamDuration:    durationpb.New(0),
						GrpcTimeoutHeaderMax: durationpb.New(0),
					},
				}},
			}},
		}},
	}
}
