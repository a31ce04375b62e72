package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"golang.org/x/net/http2"

	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

// benchSetup starts an upstream returning 1 KiB and a proxy in front.
func benchSetup(b *testing.B) (direct, proxied string) {
	body := strings.Repeat("x", 1024)
	up := newBackend(b, "up", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })
	lis := xdstest.FreeAddr(b)
	res := xdstest.Resources{
		Clusters:  []*clusterT{xdstest.StaticCluster("outbound|80||up", up.addr())},
		Listeners: []*listenerv3.Listener{xdstest.HTTPListener("0.0.0.0_80", lis, xdstest.HCM("80", "80"))},
		Routes:    []*routeT{xdstest.RouteConfig("80", "outbound|80||up")},
	}
	newHarnessTB(b, res)
	return up.URL, "http://" + lis
}

func runBench(b *testing.B, client *http.Client, url string) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkHTTP1 compares a direct keep-alive HTTP/1.1 request with one
// through the proxy; the difference is the proxy's cost per request
// (client and upstream allocations are in both numbers).
func BenchmarkHTTP1(b *testing.B) {
	direct, proxied := benchSetup(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Run("direct", func(b *testing.B) { runBench(b, client, direct+"/") })
	b.Run("proxied", func(b *testing.B) { runBench(b, client, proxied+"/") })
}

// BenchmarkH2C measures h2c multiplexed requests through the proxy.
func BenchmarkH2C(b *testing.B) {
	_, proxied := benchSetup(b)
	client := &http.Client{Transport: &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, n, a string, _ *tls.Config) (net.Conn, error) {
		return net.Dial(n, a)
	}}}
	runBench(b, client, proxied+"/")
}
