package listener

import (
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

func tcpListenerIdle(idle *durationpb.Duration) *listenerv3.Listener {
	l := xdstest.TCPListener("l", "127.0.0.1:7000", "c")
	tp := &tcpv3.TcpProxy{StatPrefix: "c", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "c"}, IdleTimeout: idle}
	l.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: xdstest.Any(tp)}
	return l
}

// TestTCPProxyIdleTimeoutConfig: Envoy's default is one hour, an explicit
// value (0 disables) wins, and a malformed duration is a clear error.
func TestTCPProxyIdleTimeoutConfig(t *testing.T) {
	for _, c := range []struct {
		idle *durationpb.Duration
		want time.Duration
	}{{nil, time.Hour}, {durationpb.New(90 * time.Second), 90 * time.Second}, {durationpb.New(0), 0}} {
		l, err := Compile(tcpListenerIdle(c.idle), Deps{})
		if err != nil {
			t.Fatal(err)
		}
		if got := l.Chains[0].TCP.IdleTimeout; got != c.want {
			t.Errorf("idle_timeout %v: compiled %v, want %v", c.idle, got, c.want)
		}
	}
	_, err := Compile(tcpListenerIdle(&durationpb.Duration{Seconds: -1}), Deps{})
	if err == nil || !strings.Contains(err.Error(), "listener l.filter_chains[0].filters[0] (envoy.filters.network.tcp_proxy).idle_timeout: invalid duration") {
		t.Errorf("negative idle_timeout: %v", err)
	}
}
