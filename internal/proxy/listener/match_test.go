package listener

import (
	"net/netip"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

func TestFilterChainMatch(t *testing.T) {
	chain := func(name string, m *listenerv3.FilterChainMatch) *listenerv3.FilterChain {
		fc := xdstest.TCPListener("x", "0.0.0.0:1", "c").FilterChains[0]
		fc.Name, fc.FilterChainMatch = name, m
		return fc
	}
	l := xdstest.TCPListener("virtualInbound", "0.0.0.0:15006", "c")
	l.FilterChains = []*listenerv3.FilterChain{
		chain("tls-wild", &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(443), ServerNames: []string{"*.example.com"}, TransportProtocol: "tls"}),
		chain("tls-exact", &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(443), ServerNames: []string{"api.example.com"}, TransportProtocol: "tls"}),
		chain("mtls-istio", &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(9080), TransportProtocol: "tls", ApplicationProtocols: []string{"istio-peer-exchange", "istio"}}),
		chain("http-9080", &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(9080), TransportProtocol: "raw_buffer", ApplicationProtocols: []string{"http/1.1", "h2c"}}),
		chain("tcp-9080", &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(9080), TransportProtocol: "raw_buffer"}),
		chain("cidr-10", &listenerv3.FilterChainMatch{PrefixRanges: []*corev3.CidrRange{{AddressPrefix: "10.0.0.0", PrefixLen: wrapperspb.UInt32(8)}}}),
		chain("any", nil),
	}
	cl, err := Compile(l, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if !cl.inspectTLS || !cl.inspectHTTP {
		t.Fatal("listener should inspect TLS and HTTP")
	}
	cases := []struct {
		local string
		in    inspected
		want  string
	}{
		{"1.2.3.4:443", inspected{transport: "tls", serverName: "api.example.com"}, "tls-exact"},
		{"1.2.3.4:443", inspected{transport: "tls", serverName: "www.example.com"}, "tls-wild"},
		{"1.2.3.4:443", inspected{transport: "tls", serverName: "other.org"}, ""}, // port matched, then nothing: no chain
		{"1.2.3.4:9080", inspected{transport: "tls", alpn: []string{"istio-peer-exchange", "h2"}}, "mtls-istio"},
		{"1.2.3.4:9080", inspected{transport: "raw_buffer", httpProto: "http/1.1"}, "http-9080"},
		{"1.2.3.4:9080", inspected{transport: "raw_buffer", httpProto: "h2c"}, "http-9080"},
		{"1.2.3.4:9080", inspected{transport: "raw_buffer"}, "tcp-9080"},
		{"10.9.9.9:5000", inspected{transport: "raw_buffer"}, "cidr-10"},
		{"192.168.0.1:5000", inspected{transport: "raw_buffer"}, "any"},
	}
	for _, c := range cases {
		f := connFacts{local: netip.MustParseAddrPort(c.local), remote: netip.MustParseAddrPort("10.0.0.1:1234"), in: c.in}
		got := ""
		if ch := cl.selectChain(&f); ch != nil {
			got = ch.Name
		}
		if got != c.want {
			t.Errorf("%s %+v: chain %q, want %q", c.local, c.in, got, c.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	bad := xdstest.TCPListener("l", "0.0.0.0:80", "c")
	bad.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: xdstest.Any(&listenerv3.Listener{})}
	if _, err := Compile(bad, Deps{}); err == nil || !strings.Contains(err.Error(), "listener l.filter_chains[0].filters[0] (envoy.filters.network.tcp_proxy): unsupported network filter") {
		t.Errorf("got %v", err)
	}
	noAddr := xdstest.TCPListener("l", "0.0.0.0:80", "c")
	noAddr.Address.GetSocketAddress().Address = "example.com"
	if _, err := Compile(noAddr, Deps{}); err == nil || !strings.Contains(err.Error(), `listener l.address: "example.com" is not an IP address`) {
		t.Errorf("got %v", err)
	}
}
