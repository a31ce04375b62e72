// Package xdsconf configures weft-proxy for the benchmarks: a
// go-control-plane ADS server on loopback serving, per node, the Envoy
// resources of one scenario (a router listener in front of the backend,
// a TCP proxy, or the two sidecars of the mesh path), named the way Istio
// names them. Every resource passes ValidateAll.
package xdsconf

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Host is the benchmark backend's service name.
const Host = "backend.bench.svc.cluster.local"

// Server is an ADS server publishing one snapshot per node id.
type Server struct {
	cache cachev3.SnapshotCache
	grpc  *grpc.Server
	addr  string
}

// Start serves ADS on a free loopback port.
func Start() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{cache: cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil), grpc: grpc.NewServer(), addr: ln.Addr().String()}
	discovery.RegisterAggregatedDiscoveryServiceServer(s.grpc, serverv3.NewServer(context.Background(), s.cache, nil))
	go s.grpc.Serve(ln)
	return s, nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.addr }

// Stop closes the server.
func (s *Server) Stop() { s.grpc.Stop() }

// Resources is one node's configuration.
type Resources struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
}

// Set validates res and publishes it for node.
func (s *Server) Set(node, version string, res Resources) error {
	m := map[resource.Type][]types.Resource{}
	add := func(t resource.Type, r interface {
		types.Resource
		ValidateAll() error
	}) error {
		if err := r.ValidateAll(); err != nil {
			return fmt.Errorf("xdsconf: %s: %w", t, err)
		}
		m[t] = append(m[t], r)
		return nil
	}
	for _, r := range res.Listeners {
		if err := add(resource.ListenerType, r); err != nil {
			return err
		}
	}
	for _, r := range res.Routes {
		if err := add(resource.RouteType, r); err != nil {
			return err
		}
	}
	for _, r := range res.Clusters {
		if err := add(resource.ClusterType, r); err != nil {
			return err
		}
	}
	for _, r := range res.Endpoints {
		if err := add(resource.EndpointType, r); err != nil {
			return err
		}
	}
	snap, err := cachev3.NewSnapshot(version, m)
	if err != nil {
		return err
	}
	if err := snap.Consistent(); err != nil {
		return fmt.Errorf("xdsconf: node %s: %w", node, err)
	}
	return s.cache.SetSnapshot(context.Background(), node, snap)
}

// Protocol is the upstream protocol of an HTTP cluster.
type Protocol int

// Upstream protocols.
const (
	HTTP1 Protocol = iota
	HTTP2          // h2c with prior knowledge (gRPC)
)

// Router is a gateway-style configuration: an HTTP listener on listen
// routing every request to the backend at upstream, keeping connections
// to it alive (weft-proxy pools them).
func Router(listen, upstream string, proto Protocol) Resources {
	_, port := splitPort(listen)
	_, uport := splitPort(upstream)
	cluster := fmt.Sprintf("outbound|%d||%s", uport, Host)
	route := strconv.Itoa(int(port))
	return Resources{
		Listeners: []*listenerv3.Listener{httpListener("0.0.0.0_"+route, listen, "outbound_0.0.0.0_"+route, route)},
		Routes:    []*routev3.RouteConfiguration{routeTo(route, cluster)},
		Clusters:  []*clusterv3.Cluster{edsCluster(cluster, proto)},
		Endpoints: []*endpointv3.ClusterLoadAssignment{cla(cluster, upstream)},
	}
}

// TCP is a tcp_proxy listener on listen forwarding to upstream.
func TCP(listen, upstream string) Resources {
	_, uport := splitPort(upstream)
	cluster := fmt.Sprintf("outbound|%d||%s", uport, Host)
	tp := &tcpv3.TcpProxy{StatPrefix: cluster, ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: cluster}}
	return Resources{
		Listeners: []*listenerv3.Listener{{
			Name:    "tcp_" + listen,
			Address: socketAddress(listen),
			FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
				Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(tp)},
			}}}},
		}},
		Clusters:  []*clusterv3.Cluster{edsCluster(cluster, HTTP1)},
		Endpoints: []*endpointv3.ClusterLoadAssignment{cla(cluster, upstream)},
	}
}

// Mesh is the two sidecars of the mesh path: the client sidecar listens
// on clientListen (the app's outbound) and sends to the server sidecar's
// inbound listener serverListen, which forwards to the app at upstream
// through Istio's "inbound|PORT||" cluster.
//
// With mtls the hop between the sidecars is Istio mutual TLS, configured
// as internal/translate emits it for a STRICT PeerAuthentication and auto
// mTLS: the client's cluster has transport_socket_matches (tlsMode istio:
// an UpstreamTlsContext with SDS "default" and "ROOTCA", ALPN
// istio-peer-exchange and istio, the server's SPIFFE ID as the only
// accepted SAN, Istio's SNI; otherwise raw_buffer) and the endpoint's
// envoy.transport_socket_match metadata says tlsMode istio; the server's
// listener has a tls_inspector and only a filter chain for transport
// "tls" whose DownstreamTlsContext requires a client certificate chained
// to ROOTCA, with x-forwarded-client-cert APPEND_FORWARD. Both proxies
// need an identity (CA.Flags with ClientServiceAccount and
// ServerServiceAccount): the secrets are resolved locally, as weft-proxy
// does in production.
func Mesh(clientListen, serverListen, upstream string, mtls bool) (client, server Resources, err error) {
	_, sport := splitPort(serverListen)
	out := fmt.Sprintf("outbound|%d||%s", sport, Host)
	_, cport := splitPort(clientListen)
	croute := strconv.Itoa(int(cport))
	ccluster := edsCluster(out, HTTP1)
	ccla := cla(out, serverListen)
	if mtls {
		ccluster.TransportSocketMatches = istioTransportSocketMatches(sport)
		ccla.Endpoints[0].LbEndpoints[0].Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			"envoy.transport_socket_match": {Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}},
		}}
	}
	client = Resources{
		Listeners: []*listenerv3.Listener{httpListener("0.0.0.0_"+croute, clientListen, "outbound_0.0.0.0_"+croute, croute)},
		Routes:    []*routev3.RouteConfiguration{routeTo(croute, out)},
		Clusters:  []*clusterv3.Cluster{ccluster},
		Endpoints: []*endpointv3.ClusterLoadAssignment{ccla},
	}
	in := fmt.Sprintf("inbound|%d||", sport)
	sroute := "inbound|" + strconv.Itoa(int(sport)) + "||"
	lis := httpListener("virtualInbound_"+strconv.Itoa(int(sport)), serverListen, "inbound_0.0.0.0_"+strconv.Itoa(int(sport)), sroute)
	if mtls {
		strictMTLS(lis, in)
	}
	server = Resources{
		Listeners: []*listenerv3.Listener{lis},
		Routes:    []*routev3.RouteConfiguration{routeTo(sroute, in)},
		Clusters:  []*clusterv3.Cluster{staticCluster(in, upstream)},
	}
	return client, server, nil
}

// sdsADS names an SDS secret served over ADS (weft-proxy resolves
// "default" and "ROOTCA" from its own identity).
func sdsADS(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: ads}
}

// istioTransportSocketMatches is auto mTLS towards the server sidecar, as
// translate emits it for an ISTIO_MUTUAL destination.
func istioTransportSocketMatches(port uint32) []*clusterv3.Cluster_TransportSocketMatch {
	utc := &tlsv3.UpstreamTlsContext{
		Sni: fmt.Sprintf("outbound_.%d_._.%s", port, Host),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			AlpnProtocols:                  []string{"istio-peer-exchange", "istio"},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsADS("default")},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext: &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
					SanType: tlsv3.SubjectAltNameMatcher_URI,
					Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: Principal(ServerServiceAccount)}},
				}}},
				ValidationContextSdsSecretConfig: sdsADS("ROOTCA"),
			}},
		},
	}
	return []*clusterv3.Cluster_TransportSocketMatch{
		{
			Name:            "tlsMode-istio",
			Match:           &structpb.Struct{Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}},
			TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(utc)}},
		},
		{
			Name:            "tlsMode-disabled",
			Match:           &structpb.Struct{},
			TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.raw_buffer", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&rawbufferv3.RawBuffer{})}},
		},
	}
}

// strictMTLS turns the server sidecar's inbound listener into a STRICT
// one: a tls_inspector, and its only filter chain matches transport "tls",
// terminates mTLS requiring a client certificate from the mesh and appends
// the client's identity to x-forwarded-client-cert.
func strictMTLS(lis *listenerv3.Listener, cluster string) {
	lis.ListenerFilters = []*listenerv3.ListenerFilter{{
		Name: "envoy.filters.listener.tls_inspector", ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspectorv3.TlsInspector{})},
	}}
	fc := lis.FilterChains[0]
	fc.Name = cluster + "-mtls"
	fc.FilterChainMatch = &listenerv3.FilterChainMatch{TransportProtocol: "tls"}
	dtc := &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			AlpnProtocols:                  []string{"h2", "http/1.1"},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsADS("default")},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{},
				ValidationContextSdsSecretConfig: sdsADS("ROOTCA"),
			}},
		},
	}
	fc.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(dtc)}}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := fc.Filters[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
		panic(err) // built by httpListener
	}
	hcm.ForwardClientCertDetails = hcmv3.HttpConnectionManager_APPEND_FORWARD
	hcm.SetCurrentClientCertDetails = &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{Subject: wrapperspb.Bool(true), Uri: true, Dns: true}
	fc.Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)}
}

func splitPort(hostport string) (string, uint32) {
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport, 0
	}
	n, _ := strconv.Atoi(p)
	return h, uint32(n)
}

func socketAddress(hostport string) *corev3.Address {
	h, p := splitPort(hostport)
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: h, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: p},
	}}}
}

// mustAny wraps a message built here; marshalling a well-formed message
// does not fail.
func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

var ads = &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}, ResourceApiVersion: corev3.ApiVersion_V3}

func httpListener(name, listen, statPrefix, route string) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:     statPrefix,
		CodecType:      hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: route, ConfigSource: ads}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})},
		}},
	}
	return &listenerv3.Listener{
		Name:    name,
		Address: socketAddress(listen),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
		}}}},
	}
}

func routeTo(name, cluster string) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    Host,
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
					Timeout:          durationpb.New(0),
				}},
			}},
		}},
	}
}

func protocolOptions(c *clusterv3.Cluster, p Protocol) {
	if p != HTTP2 {
		return
	}
	po := &httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
		ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
		},
	}}
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(po)}
}

func edsCluster(name string, p Protocol) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		ConnectTimeout:       durationpb.New(10 * time.Second),
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads},
	}
	protocolOptions(c, p)
	return c
}

func staticCluster(name, upstream string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(10 * time.Second),
		LoadAssignment:       cla(name, upstream),
	}
}

func cla(cluster, addr string) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: cluster,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{
			Locality:            &corev3.Locality{},
			LoadBalancingWeight: wrapperspb.UInt32(1),
			LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier:      &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(addr)}},
				LoadBalancingWeight: wrapperspb.UInt32(1),
			}},
		}},
	}
}
