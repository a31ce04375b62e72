// Package listener compiles Envoy v3 Listeners into filter chains and
// serves them: explicit listeners bound to their address, virtual
// listeners reached through the original destination of intercepted
// connections (SO_ORIGINAL_DST), HTTP/1.1, h2c and HTTP/2 over TLS via the
// http_connection_manager, and tcp_proxy.
package listener

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/weftmesh/weft/internal/proxy/httpproxy"
	"github.com/weftmesh/weft/internal/proxy/jwt"
	"github.com/weftmesh/weft/internal/proxy/rbac"
	"github.com/weftmesh/weft/internal/proxy/router"
	"github.com/weftmesh/weft/internal/proxy/sds"
	"github.com/weftmesh/weft/internal/proxy/telemetry/peermeta"
)

// Listener is a compiled listener. It is immutable.
type Listener struct {
	Name string
	// Addr is the bind address "ip:port".
	Addr           string
	Port           int
	BindToPort     bool
	UseOriginalDst bool
	// originalDstFilter restores the original destination as the local
	// address for filter chain matching (envoy.filters.listener.original_dst).
	originalDstFilter bool
	inspectTLS        bool
	inspectHTTP       bool
	inspectTimeout    time.Duration
	continueOnTimeout bool
	Chains            []*Chain
	Default           *Chain
}

// Chain is a compiled filter chain.
type Chain struct {
	Name  string
	match chainMatch
	// Exactly one of HTTP and TCP is set.
	HTTP *httpproxy.Handler
	TCP  *TCPProxy
	// TLS terminates TLS on this chain when set.
	TLS *tls.Config
	// NetworkRBAC authorizes connections before the terminal filter, in
	// order (Istio's DENY, then ALLOW); all must allow.
	NetworkRBAC []*rbac.NetworkFilter
	// secrets give the local identity of a chain using SDS certificates.
	secrets *sds.Store
}

// TCPProxy is a compiled tcp_proxy filter.
type TCPProxy struct {
	StatPrefix string
	Clusters   []WeightedName
	// IdleTimeout closes a connection on which no bytes moved in either
	// direction for that long (Envoy's default 1h; 0 disables).
	IdleTimeout time.Duration
	total       uint32
	// exchange is Istio's TCP metadata exchange, run on mesh mTLS
	// connections that negotiated it (mxtcp.go); nil sends no metadata.
	exchange *peermeta.Exchange
}

// WeightedName is a cluster with a weight.
type WeightedName struct {
	Name   string
	Weight uint32
}

type chainMatch struct {
	destPort     int // 0: any
	prefixes     []netip.Prefix
	serverNames  []string
	transport    string
	appProtocols []string
	sourcePrefix []netip.Prefix
}

// Deps are what HTTP chains need at request time.
type Deps struct {
	Resolver httpproxy.Resolver
	Observer httpproxy.Observer
	// Stats returns the (shared) counters for an HCM stat prefix.
	Stats func(prefix string) *httpproxy.Stats
	// Secrets resolve the SDS secrets TLS chains name (nil: the proxy has
	// no workload identity; such chains fail their handshakes).
	Secrets *sds.Store
	// Tracer, when set, traces every HTTP request.
	Tracer httpproxy.Tracer
	// PeerExchange, when set, is Istio's peer metadata exchange, run by
	// every http_connection_manager as Istio's default telemetry does
	// (inbound or outbound side by the listener's traffic_direction).
	PeerExchange *peermeta.Exchange
	// inbound: the listener's traffic_direction is INBOUND.
	inbound bool
}

// Known filter names.
const (
	hcmType      = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	tcpProxyType = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
)

// supportedHTTPFilters are HTTP filters weft-proxy implements (fault and
// CORS are driven by per-route config) or that are harmless to skip.
var supportedHTTPFilters = map[string]bool{
	"envoy.filters.http.router": true,
	"envoy.filters.http.fault":  true,
	"envoy.filters.http.cors":   true,
}

// Compile compiles l. deps may be zero when only validating.
func Compile(l *listenerv3.Listener, deps Deps) (*Listener, error) {
	field := "listener " + l.GetName()
	deps.inbound = l.GetTrafficDirection() == corev3.TrafficDirection_INBOUND
	out := &Listener{Name: l.GetName(), BindToPort: true, UseOriginalDst: l.GetUseOriginalDst().GetValue(),
		inspectTimeout: 15 * time.Second, continueOnTimeout: l.GetContinueOnListenerFiltersTimeout()}
	if l.GetApiListener() != nil {
		return nil, fmt.Errorf("%s: api_listener is for proxyless gRPC clients, not weft-proxy", field)
	}
	if l.GetBindToPort() != nil {
		out.BindToPort = l.GetBindToPort().GetValue()
	}
	if l.GetDeprecatedV1().GetBindToPort() != nil {
		out.BindToPort = l.GetDeprecatedV1().GetBindToPort().GetValue()
	}
	if l.GetListenerFiltersTimeout() != nil {
		out.inspectTimeout = l.GetListenerFiltersTimeout().AsDuration()
	}
	sa := l.GetAddress().GetSocketAddress()
	if sa == nil || sa.GetProtocol() != corev3.SocketAddress_TCP {
		return nil, fmt.Errorf("%s.address: only TCP socket addresses are supported", field)
	}
	if ip := net.ParseIP(sa.GetAddress()); ip == nil {
		return nil, fmt.Errorf("%s.address: %q is not an IP address", field, sa.GetAddress())
	}
	out.Port = int(sa.GetPortValue())
	out.Addr = net.JoinHostPort(sa.GetAddress(), strconv.Itoa(out.Port))
	for i, lf := range l.GetListenerFilters() {
		switch lf.GetName() {
		case "envoy.filters.listener.tls_inspector":
			out.inspectTLS = true
		case "envoy.filters.listener.http_inspector":
			out.inspectHTTP = true
		case "envoy.filters.listener.original_dst":
			out.originalDstFilter = true
		default:
			return nil, fmt.Errorf("%s.listener_filters[%d]: unsupported listener filter %q", field, i, lf.GetName())
		}
	}
	if l.GetFilterChainMatcher() != nil {
		return nil, fmt.Errorf("%s.filter_chain_matcher: not supported; use filter_chain_match", field)
	}
	for i, fc := range l.GetFilterChains() {
		c, err := compileChain(fmt.Sprintf("%s.filter_chains[%d]", field, i), fc, deps)
		if err != nil {
			return nil, err
		}
		out.Chains = append(out.Chains, c)
	}
	if fc := l.GetDefaultFilterChain(); fc != nil {
		c, err := compileChain(field+".default_filter_chain", fc, deps)
		if err != nil {
			return nil, err
		}
		out.Default = c
	}
	for _, c := range out.Chains {
		if len(c.match.serverNames) > 0 || c.match.transport == "tls" || c.TLS != nil {
			out.inspectTLS = true
		}
		for _, p := range c.match.appProtocols {
			if strings.HasPrefix(p, "http/") || p == "h2c" {
				out.inspectHTTP = true
			}
		}
	}
	return out, nil
}

func compileChain(field string, fc *listenerv3.FilterChain, deps Deps) (*Chain, error) {
	c := &Chain{Name: fc.GetName()}
	if c.Name != "" {
		field += " (" + c.Name + ")"
	}
	m := fc.GetFilterChainMatch()
	c.match.destPort = int(m.GetDestinationPort().GetValue())
	for i, pr := range m.GetPrefixRanges() {
		p, err := cidr(pr)
		if err != nil {
			return nil, fmt.Errorf("%s.filter_chain_match.prefix_ranges[%d]: %v", field, i, err)
		}
		c.match.prefixes = append(c.match.prefixes, p)
	}
	for i, pr := range m.GetSourcePrefixRanges() {
		p, err := cidr(pr)
		if err != nil {
			return nil, fmt.Errorf("%s.filter_chain_match.source_prefix_ranges[%d]: %v", field, i, err)
		}
		c.match.sourcePrefix = append(c.match.sourcePrefix, p)
	}
	for _, n := range m.GetServerNames() {
		c.match.serverNames = append(c.match.serverNames, strings.ToLower(n))
	}
	c.match.transport = m.GetTransportProtocol()
	c.match.appProtocols = m.GetApplicationProtocols()
	if m.GetSourceType() != listenerv3.FilterChainMatch_ANY || len(m.GetSourcePorts()) > 0 || len(m.GetDirectSourcePrefixRanges()) > 0 {
		return nil, fmt.Errorf("%s.filter_chain_match: source_type, source_ports and direct_source_prefix_ranges are not supported", field)
	}
	if ts := fc.GetTransportSocket(); ts != nil && ts.GetName() != "envoy.transport_sockets.raw_buffer" {
		cfg, err := downstreamTLS(field+".transport_socket", ts, deps.Secrets)
		if err != nil {
			return nil, err
		}
		c.TLS, c.secrets = cfg, deps.Secrets
	}
	if len(fc.GetFilters()) == 0 {
		return nil, fmt.Errorf("%s.filters: empty", field)
	}
	for i, f := range fc.GetFilters() {
		ff := fmt.Sprintf("%s.filters[%d] (%s)", field, i, f.GetName())
		tc := f.GetTypedConfig()
		if c.HTTP != nil || c.TCP != nil {
			return nil, fmt.Errorf("%s: filter after the terminal filter", ff)
		}
		if nr, ok, err := compileNetworkRBAC(ff, tc); ok {
			if err != nil {
				return nil, err
			}
			c.NetworkRBAC = append(c.NetworkRBAC, nr)
			continue
		}
		switch tc.GetTypeUrl() {
		case hcmType:
			h := &hcmv3.HttpConnectionManager{}
			if err := tc.UnmarshalTo(h); err != nil {
				return nil, fmt.Errorf("%s: %v", ff, err)
			}
			hh, err := compileHCM(ff, h, deps)
			if err != nil {
				return nil, err
			}
			c.HTTP = hh
		case tcpProxyType:
			t := &tcpv3.TcpProxy{}
			if err := tc.UnmarshalTo(t); err != nil {
				return nil, fmt.Errorf("%s: %v", ff, err)
			}
			tp := &TCPProxy{StatPrefix: t.GetStatPrefix(), IdleTimeout: time.Hour, exchange: deps.PeerExchange}
			if d := t.GetIdleTimeout(); d != nil {
				if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
					return nil, fmt.Errorf("%s.idle_timeout: invalid duration %v", ff, d)
				}
				tp.IdleTimeout = d.AsDuration()
			}
			if cl := t.GetCluster(); cl != "" {
				tp.Clusters = []WeightedName{{cl, 1}}
			}
			for _, w := range t.GetWeightedClusters().GetClusters() {
				tp.Clusters = append(tp.Clusters, WeightedName{w.GetName(), w.GetWeight()})
			}
			for _, w := range tp.Clusters {
				tp.total += w.Weight
			}
			if len(tp.Clusters) == 0 || tp.total == 0 {
				return nil, fmt.Errorf("%s: no cluster", ff)
			}
			c.TCP = tp
		default:
			return nil, fmt.Errorf("%s: unsupported network filter (typed_config %s)", ff, tc.GetTypeUrl())
		}
	}
	if c.HTTP == nil && c.TCP == nil {
		return nil, fmt.Errorf("%s.filters: no terminal filter (http_connection_manager or tcp_proxy)", field)
	}
	if c.TCP != nil && c.TLS != nil {
		preferExchange(c.TLS)
	}
	return c, nil
}

func compileHCM(field string, h *hcmv3.HttpConnectionManager, deps Deps) (*httpproxy.Handler, error) {
	hh := &httpproxy.Handler{Resolver: deps.Resolver, Observer: deps.Observer, ForwardClientCert: forwardClientCert(h), Tracer: deps.Tracer,
		PeerExchange: deps.PeerExchange, Inbound: deps.inbound}
	if err := hh.ConfigureHCM(field, h); err != nil {
		return nil, err
	}
	if deps.Stats != nil {
		hh.Stats = deps.Stats(h.GetStatPrefix())
	}
	switch rs := h.GetRouteSpecifier().(type) {
	case *hcmv3.HttpConnectionManager_Rds:
		if rs.Rds.GetConfigSource().GetAds() == nil && rs.Rds.GetConfigSource().GetSelf() == nil {
			return nil, fmt.Errorf("%s.rds.config_source: only ADS is supported", field)
		}
		hh.RouteName = rs.Rds.GetRouteConfigName()
	case *hcmv3.HttpConnectionManager_RouteConfig:
		t, err := router.Compile(rs.RouteConfig)
		if err != nil {
			return nil, fmt.Errorf("%s.route_config: %v", field, err)
		}
		hh.Static = t
	default:
		return nil, fmt.Errorf("%s: unsupported route specifier %T", field, rs)
	}
	filters := h.GetHttpFilters()
	if len(filters) == 0 || filters[len(filters)-1].GetName() != "envoy.filters.http.router" &&
		filters[len(filters)-1].GetTypedConfig().GetTypeUrl() != "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" {
		return nil, fmt.Errorf("%s.http_filters: the last filter must be envoy.filters.http.router", field)
	}
	for i, f := range filters {
		if supportedHTTPFilters[f.GetName()] {
			continue
		}
		var clusters jwt.Clusters
		if deps.Resolver != nil {
			clusters = deps.Resolver
		}
		sf, err := compileSecurityFilter(fmt.Sprintf("%s.http_filters[%d] (%s)", field, i, f.GetName()), f, h, clusters)
		if err != nil {
			return nil, err
		}
		if sf != nil {
			hh.Filters = append(hh.Filters, sf)
			continue
		}
		if f.GetIsOptional() {
			continue
		}
		return nil, fmt.Errorf("%s.http_filters[%d]: unsupported http filter %s", field, i, f.GetName())
	}
	pn, err := pathNormalization(field, h)
	if err != nil {
		return nil, err
	}
	hh.PathNormalization = pn
	hh.StripAnyHostPort = h.GetStripAnyHostPort()
	for _, uc := range h.GetUpgradeConfigs() {
		if strings.EqualFold(uc.GetUpgradeType(), "websocket") && (uc.GetEnabled() == nil || uc.GetEnabled().GetValue()) {
			hh.WebSocket = true
		}
	}
	hh.StreamIdleTimeout = 5 * time.Minute
	if d := h.GetStreamIdleTimeout(); d != nil {
		hh.StreamIdleTimeout = d.AsDuration()
	}
	return hh, nil
}

func cidr(c *corev3.CidrRange) (netip.Prefix, error) {
	a, err := netip.ParseAddr(c.GetAddressPrefix())
	if err != nil {
		return netip.Prefix{}, err
	}
	bits := a.BitLen()
	if c.GetPrefixLen() != nil {
		bits = int(c.GetPrefixLen().GetValue())
	}
	return a.Prefix(bits)
}
