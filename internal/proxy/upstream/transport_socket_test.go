package upstream

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/types/known/anypb"
)

// alpnServer is a TLS server on loopback that records the ALPN lists its
// clients offer and serves HTTP/1.1 or h2 as negotiated. Its certificate
// carries the SPIFFE ID id.
type alpnServer struct {
	addr    string
	mu      sync.Mutex
	offered [][]string
}

func (s *alpnServer) last() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.offered) == 0 {
		return nil
	}
	return s.offered[len(s.offered)-1]
}

func startALPNServer(t *testing.T, id string) *alpnServer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(id)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), URIs: []*url.URL{u}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	s := &alpnServer{}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		NextProtos:   []string{"h2", "http/1.1", "istio-peer-exchange"}, // a weft or Envoy HTTP chain's order
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			s.mu.Lock()
			s.offered = append(s.offered, slices.Clone(h.SupportedProtos))
			s.mu.Unlock()
			return nil, nil
		},
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(r.Proto)) })}
	http2.ConfigureServer(srv, nil)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

// istioMutualCluster is an auto-mTLS-like cluster with an inline client
// TLS context offering alpn, one endpoint at addr, HTTP/2 when h2.
func istioMutualCluster(t *testing.T, addr string, alpn []string, h2 bool) *Cluster {
	t.Helper()
	utc, err := anypb.New(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{AlpnProtocols: alpn}})
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	var p uint32
	for _, c := range port {
		p = p*10 + uint32(c-'0')
	}
	c := &clusterv3.Cluster{
		Name:                 "outbound|9080||reviews.default.svc.cluster.local",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		TransportSocket:      &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: utc}},
	}
	if h2 {
		po, _ := anypb.New(&httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}},
		}})
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": po}
	}
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: c.Name, Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: p},
		}}}}},
	}}}}}
	cl, err := Compile(c, cla)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// getThrough sends one HTTP request through cl and returns the response body
// (the protocol the server saw) and the server's principal as
// PeerPrincipal reads it from the connection.
func getThrough(t *testing.T, cl *Cluster, addr string) (proto, principal string) {
	t.Helper()
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { principal = PeerPrincipal(i.Conn) }})
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/", nil)
	resp, err := cl.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := make([]byte, 64)
	n, _ := resp.Body.Read(b)
	return string(b[:n]), principal
}

// Istio's client sidecars offer istio-http/1.1 or istio-h2 (with istio
// and the plain protocol) for HTTP requests under Istio mutual TLS, so
// that an Envoy server picks its HTTP filter chain on a port of unknown
// protocol; tcp_proxy keeps the cluster's istio-peer-exchange list.
func TestIstioMutualHTTPALPN(t *testing.T) {
	const id = "spiffe://cluster.local/ns/default/sa/reviews"
	srv := startALPNServer(t, id)
	for _, tc := range []struct {
		name      string
		h2        bool
		wantALPN  []string
		wantProto string
	}{
		{"http1", false, []string{"istio-http/1.1", "istio", "http/1.1"}, "HTTP/1.1"},
		{"h2", true, []string{"istio-h2", "istio", "h2"}, "HTTP/2.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := istioMutualCluster(t, srv.addr, []string{"istio-peer-exchange", "istio"}, tc.h2)
			proto, principal := getThrough(t, cl, srv.addr)
			if got := srv.last(); !slices.Equal(got, tc.wantALPN) {
				t.Errorf("HTTP request offered ALPN %q, want %q", got, tc.wantALPN)
			}
			if proto != tc.wantProto {
				t.Errorf("server saw %s, want %s", proto, tc.wantProto)
			}
			if principal != id {
				t.Errorf("PeerPrincipal = %q, want %q", principal, id)
			}
			c, err := cl.DialHost(context.Background(), &Host{Addr: srv.addr})
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			want := []string{"istio-peer-exchange", "istio", "http/1.1"}
			if tc.h2 {
				want[2] = "h2"
			}
			if got := srv.last(); !slices.Equal(got, want) {
				t.Errorf("tcp_proxy connection offered ALPN %q, want the cluster's %q", got, want)
			}
		})
	}
}

// A TLS context without Istio's ALPN (a DestinationRule's SIMPLE or
// MUTUAL TLS) is not overridden; a plaintext connection has no principal.
func TestNonIstioTLSKeepsALPN(t *testing.T) {
	srv := startALPNServer(t, "spiffe://cluster.local/ns/x/sa/y")
	cl := istioMutualCluster(t, srv.addr, []string{"http/1.1"}, false)
	getThrough(t, cl, srv.addr)
	if got, want := srv.last(), []string{"http/1.1"}; !slices.Equal(got, want) {
		t.Errorf("offered %q, want %q", got, want)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if p := PeerPrincipal(a); p != "" {
		t.Errorf("plaintext PeerPrincipal = %q", p)
	}
}

// BenchmarkPeerPrincipal is the per-request cost of reading the upstream
// certificate's SPIFFE ID from a TLS connection (destination_principal).
func BenchmarkPeerPrincipal(b *testing.B) {
	t := &testing.T{}
	srv := startALPNServer(t, "spiffe://cluster.local/ns/default/sa/reviews")
	cl := istioMutualCluster(t, srv.addr, []string{"istio-peer-exchange", "istio"}, false)
	c, err := cl.DialHost(context.Background(), &Host{Addr: srv.addr})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ReportAllocs()
	for b.Loop() {
		if PeerPrincipal(c) == "" {
			b.Fatal("no principal")
		}
	}
}
