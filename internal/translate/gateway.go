package translate

import (
	"fmt"
	"sort"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/model"
)

// gatewayServer is one server of a Gateway that selects the proxy.
type gatewayServer struct {
	meta *model.Meta
	// index is the server's position in spec.servers.
	index int
	// gateway is "namespace/name" of the Gateway.
	gateway   string
	namespace string
	name      string
	server    *networking.Server
}

// selectGatewayServers returns the servers of every Gateway whose
// selector matches the proxy's labels, in namespace/name order.
func selectGatewayServers(snap *model.Snapshot, proxy *model.Proxy) []gatewayServer {
	var out []gatewayServer
	for _, c := range snap.List(model.KindGateway) {
		gw, ok := c.Spec.(*networking.Gateway)
		if !ok || len(gw.Selector) == 0 || !model.SelectorMatches(gw.Selector, proxy.Labels) {
			continue
		}
		for i, s := range gw.Servers {
			if s.Port == nil {
				continue
			}
			out = append(out, gatewayServer{meta: &c.Meta, index: i, gateway: c.Namespace + "/" + c.Name, namespace: c.Namespace, name: c.Name, server: s})
		}
	}
	return out
}

// gatewayNames lists the distinct gateways of servers.
func gatewayNames(servers []gatewayServer) []string {
	var out []string
	for _, s := range servers {
		if !containsString(out, s.gateway) {
			out = append(out, s.gateway)
		}
	}
	return out
}

func (s *gatewayServer) protocol() model.Protocol { return model.ParseProtocol(s.server.Port.Protocol) }

// terminatesTLS reports whether the server terminates TLS itself.
func (s *gatewayServer) terminatesTLS() bool {
	t := s.server.Tls
	if !s.protocol().IsTLS() || t == nil {
		return false
	}
	switch t.Mode {
	case networking.ServerTLSSettings_SIMPLE, networking.ServerTLSSettings_MUTUAL,
		networking.ServerTLSSettings_OPTIONAL_MUTUAL, networking.ServerTLSSettings_ISTIO_MUTUAL:
		return true
	}
	return false
}

// routeName is the RDS name of an HTTP server's routes, as Istio names
// it: "http.PORT" for plain HTTP (shared by all servers of the port),
// "https.PORT.PORTNAME.GATEWAY.NAMESPACE" for terminated HTTPS.
func (s *gatewayServer) routeName() string {
	p := portString(s.server.Port.Number)
	if s.terminatesTLS() {
		return "https." + p + "." + s.server.Port.Name + "." + s.name + "." + s.namespace
	}
	return "http." + p
}

// servesHTTP reports whether the server's traffic goes through an HTTP
// connection manager.
func (s *gatewayServer) servesHTTP() bool {
	return s.protocol().IsHTTP() || (s.protocol() == model.ProtocolHTTPS && s.terminatesTLS())
}

// hosts returns the server's hosts that VirtualServices of namespace ns
// may bind to ("ns/host", "./host", "*/host" or "host").
func (s *gatewayServer) hosts(ns string) []string {
	var out []string
	for _, h := range s.server.Hosts {
		hns, host, ok := strings.Cut(h, "/")
		if !ok {
			hns, host = "*", h
		}
		if hns == "." {
			hns = s.namespace
		}
		if hns == "*" || hns == ns {
			out = append(out, host)
		}
	}
	return out
}

// sniHosts returns the server's hosts usable as SNI names (not "*").
func (s *gatewayServer) sniHosts() []string {
	var out []string
	for _, h := range s.hosts("*") {
		if h != "*" {
			out = append(out, h)
		}
	}
	for _, h := range s.server.Hosts {
		if _, host, ok := strings.Cut(h, "/"); ok && host != "*" && !containsString(out, host) {
			out = append(out, host)
		}
	}
	sort.Strings(out)
	return out
}

// intersectHost returns the more specific of a VirtualService host and a
// server host when one matches the other.
func intersectHost(vsHost, serverHost string) (string, bool) {
	switch {
	case hostMatches(serverHost, vsHost):
		return vsHost, true
	case hostMatches(vsHost, serverHost):
		return serverHost, true
	}
	return "", false
}

// gatewayListeners builds one bound listener "0.0.0.0_PORT" per server
// port: a shared HTTP chain for plain HTTP servers (RDS "http.PORT"), a
// TLS-terminating chain per HTTPS server (matched by SNI), and SNI chains
// from TLS routes for PASSTHROUGH servers.
func gatewayListeners(servers []gatewayServer, vss []boundVS, rc routeContext) []*listener.Listener {
	// Servers share a listener by bind address and port.
	type bindPort struct {
		bind string
		port uint32
	}
	byPort := map[bindPort][]gatewayServer{}
	var keys []bindPort
	for _, s := range servers {
		k := bindPort{s.server.Bind, s.server.Port.Number}
		if k.bind == "" {
			k.bind = "0.0.0.0"
		}
		if _, ok := byPort[k]; !ok {
			keys = append(keys, k)
		}
		byPort[k] = append(byPort[k], s)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].port != keys[j].port {
			return keys[i].port < keys[j].port
		}
		return keys[i].bind < keys[j].bind
	})
	var out []*listener.Listener
	for _, k := range keys {
		p := k.port
		name := k.bind + "_" + portString(p)
		prc := rc
		prc.port = p
		var chains []*listener.FilterChain
		for _, s := range byPort[k] {
			switch {
			case s.servesHTTP():
				fc := &listener.FilterChain{
					Name:    s.routeName(),
					Filters: []*listener.Filter{httpConnectionManager(hcmOptions{statPrefix: "outbound_" + name, rds: s.routeName(), edge: true})},
				}
				if s.terminatesTLS() {
					fc.FilterChainMatch = &listener.FilterChainMatch{ServerNames: s.sniHosts()}
					fc.TransportSocket = downstreamTLSSocket(s.server.Tls)
					if err := validateDeep(fc); err != nil {
						rc.diags.errorf(s.meta, fmt.Sprintf("spec.servers[%d].tls", s.index), "server left out, Envoy would reject its TLS settings: %v", err)
						continue
					}
				}
				chains = append(chains, fc)
			case s.protocol().IsTLS() && !s.terminatesTLS():
				chains = append(chains, prc.passthroughChains(s, vss)...)
			default:
				tcp := prc.gatewayTCPChains(s, vss)
				if s.terminatesTLS() {
					// TLS terminated here, then proxied as TCP.
					for _, fc := range tcp {
						fc.FilterChainMatch = &listener.FilterChainMatch{ServerNames: s.sniHosts()}
						fc.TransportSocket = downstreamTLSSocket(s.server.Tls)
						if err := validateDeep(fc); err != nil {
							rc.diags.errorf(s.meta, fmt.Sprintf("spec.servers[%d].tls", s.index), "server left out, Envoy would reject its TLS settings: %v", err)
							tcp = nil
						}
					}
				}
				chains = append(chains, tcp...)
			}
		}
		chains = dedupeServerNames(chains)
		if len(chains) == 0 {
			continue
		}
		l := &listener.Listener{Name: name, Address: socketAddress(k.bind, p), TrafficDirection: core.TrafficDirection_OUTBOUND, FilterChains: chains}
		if hasServerNames(chains) {
			l.ListenerFilters = []*listener.ListenerFilter{tlsInspector()}
		}
		out = append(out, l)
	}
	return out
}

// passthroughChains routes TLS connections by SNI, untouched, following
// the TLS routes of VirtualServices bound to the server's gateway.
func (rc *routeContext) passthroughChains(s gatewayServer, vss []boundVS) []*listener.FilterChain {
	var out []*listener.FilterChain
	for i := range vss {
		vs := &vss[i]
		if !vs.boundTo([]string{s.gateway}) {
			continue
		}
		vrc := rc.forVS(vs)
		for _, tr := range vs.vs.Tls {
			dests := vrc.routeDestinations(tr.Route)
			if len(dests) == 0 {
				continue
			}
			for _, m := range tr.Match {
				var sni []string
				for _, h := range m.SniHosts {
					h = resolveHost(h, vs.namespace)
					for _, sh := range s.hosts(vs.namespace) {
						if x, ok := intersectHost(h, sh); ok && !containsString(sni, x) {
							sni = append(sni, x)
						}
					}
				}
				if len(sni) == 0 {
					continue
				}
				sort.Strings(sni)
				out = append(out, &listener.FilterChain{
					Name:             "tls:" + strings.Join(sni, ","),
					FilterChainMatch: &listener.FilterChainMatch{ServerNames: sni},
					Filters:          []*listener.Filter{tcpProxy(dests[0].name, dests)},
				})
			}
		}
	}
	return out
}

// gatewayTCPChains routes a TCP server's connections by the first
// applicable TCP route of a VirtualService bound to its gateway.
func (rc *routeContext) gatewayTCPChains(s gatewayServer, vss []boundVS) []*listener.FilterChain {
	for i := range vss {
		vs := &vss[i]
		if !vs.boundTo([]string{s.gateway}) {
			continue
		}
		vrc := rc.forVS(vs)
		for _, tr := range vs.vs.Tcp {
			if !vrc.l4Applies(tr.Match) {
				continue
			}
			if dests := vrc.routeDestinations(tr.Route); len(dests) > 0 {
				name := "tcp." + portString(rc.port)
				return []*listener.FilterChain{{Name: name, Filters: []*listener.Filter{tcpProxy(name, dests)}}}
			}
		}
	}
	return nil
}

// gatewayRoutes builds the route configurations of the gateway's HTTP
// servers: per route name, a virtual host per host shared by a server
// and a VirtualService bound to its gateway, with the routes of every
// such VirtualService in order (gateways merge VirtualServices, as in
// Istio). httpsRedirect servers require TLS.
func gatewayRoutes(servers []gatewayServer, vss []boundVS, rc routeContext) []*route.RouteConfiguration {
	type vhostState struct {
		vh   *route.VirtualHost
		used map[string]bool // VirtualServices already merged in
	}
	configs := map[string]map[string]*vhostState{}
	var names []string
	for _, s := range servers {
		if !s.servesHTTP() {
			continue
		}
		rn := s.routeName()
		if configs[rn] == nil {
			configs[rn] = map[string]*vhostState{}
			names = append(names, rn)
		}
		prc := rc
		prc.port = s.server.Port.Number
		for i := range vss {
			vs := &vss[i]
			if !vs.boundTo([]string{s.gateway}) {
				continue
			}
			for _, vh := range vs.hosts {
				for _, sh := range s.hosts(vs.namespace) {
					host, ok := intersectHost(vh, sh)
					if !ok {
						continue
					}
					st := configs[rn][host]
					if st == nil {
						st = &vhostState{
							vh:   &route.VirtualHost{Name: host + ":" + portString(prc.port), Domains: []string{host}},
							used: map[string]bool{},
						}
						configs[rn][host] = st
					}
					if s.server.Tls != nil && s.server.Tls.HttpsRedirect {
						st.vh.RequireTls = route.VirtualHost_ALL
					}
					key := vs.namespace + "/" + vs.name
					if st.used[key] {
						continue
					}
					st.used[key] = true
					vrc := prc.forVS(vs)
					st.vh.Routes = append(st.vh.Routes, vrc.httpRoutes(vs.vs.Http)...)
				}
			}
		}
	}
	sort.Strings(names)
	var out []*route.RouteConfiguration
	for _, rn := range names {
		// As Istio's buildGatewayHTTPRouteConfig: virtual hosts list the
		// bare host and the Host's port is ignored when matching (a
		// gateway may be reached through a load balancer or node port).
		rcfg := &route.RouteConfiguration{Name: rn, ValidateClusters: wrapBool(false), IgnorePortInHostMatching: true}
		for _, host := range sortedKeys(configs[rn]) {
			vh := configs[rn][host].vh
			if len(vh.Routes) > 0 || vh.RequireTls != route.VirtualHost_NONE {
				if len(vh.Routes) == 0 {
					vh.Routes = []*route.Route{{Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
						Action: &route.Route_DirectResponse{DirectResponse: &route.DirectResponseAction{Status: 404}}}}
				}
				rcfg.VirtualHosts = append(rcfg.VirtualHosts, vh)
			}
		}
		if len(rcfg.VirtualHosts) == 0 {
			rcfg.VirtualHosts = []*route.VirtualHost{{
				Name:    "blackhole:" + strings.SplitN(rn, ".", 3)[1],
				Domains: []string{"*"},
				Routes: []*route.Route{{Name: "default", Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
					Action: &route.Route_DirectResponse{DirectResponse: &route.DirectResponseAction{Status: 404}}}},
			}}
		}
		out = append(out, rcfg)
	}
	return out
}
