package upstream

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// h2cBackend is an HTTP/2 (prior knowledge) server that counts its
// connections and the requests each one carried.
type h2cBackend struct {
	*httptest.Server
	opened  atomic.Int64
	mu      sync.Mutex
	perConn map[net.Conn]int
	nonH2   atomic.Int64
}

type connKey struct{}

func newH2CBackend(t *testing.T, delay time.Duration) *h2cBackend {
	b := &h2cBackend{perConn: map[net.Conn]int{}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			b.nonH2.Add(1)
		}
		c := r.Context().Value(connKey{}).(net.Conn)
		b.mu.Lock()
		b.perConn[c]++
		b.mu.Unlock()
		time.Sleep(delay)
		io.WriteString(w, "ok")
	})
	b.Server = httptest.NewUnstartedServer(h2c.NewHandler(h, &http2.Server{}))
	b.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) }
	b.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.opened.Add(1)
		}
	}
	b.Start()
	t.Cleanup(b.Close)
	return b
}

// maxRequests reports the most requests one connection carried.
func (b *h2cBackend) maxRequests() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, v := range b.perConn {
		n = max(n, v)
	}
	return n
}

func h2Cluster(t *testing.T, addr string, maxPerConn uint32) *Cluster {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	var p uint32
	fmt.Sscan(port, &p)
	po := &httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}}},
	}
	if maxPerConn > 0 {
		po.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{MaxRequestsPerConnection: wrapperspb.UInt32(maxPerConn)}
	}
	opts, err := anypb.New(po)
	if err != nil {
		t.Fatal(err)
	}
	c := &clusterv3.Cluster{
		Name: "outbound|80||h2", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}, ConnectTimeout: durationpb.New(time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "outbound|80||h2", Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: p}}}}}},
		}}}}},
		TypedExtensionProtocolOptions: map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": opts},
	}
	cl, err := Compile(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !cl.HTTP2 {
		t.Fatal("cluster is not HTTP/2")
	}
	t.Cleanup(cl.Close)
	return cl
}

func send(t *testing.T, cl *Cluster, addr string) {
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	var local net.Addr
	resp, err := cl.RoundTripLocal(req, &local)
	if err != nil {
		t.Error(err)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Errorf("status %d proto %s", resp.StatusCode, resp.Proto)
	}
}

// TestMaxRequestsPerConnectionHTTP2: an HTTP/2 upstream connection
// carries at most max_requests_per_connection streams; then it takes no
// new stream, closes once its streams are done, and a new connection
// carries the next requests.
func TestMaxRequestsPerConnectionHTTP2(t *testing.T) {
	t.Run("sequential", func(t *testing.T) {
		b := newH2CBackend(t, 0)
		addr := b.Listener.Addr().String()
		cl := h2Cluster(t, addr, 3)
		for range 9 {
			send(t, cl, addr)
		}
		if n := b.opened.Load(); n != 3 {
			t.Errorf("9 requests with max_requests_per_connection 3 used %d connections, want 3", n)
		}
		// Every connection reached its limit: all are closed (drained),
		// not left idle in the pool.
		deadline := time.Now().Add(5 * time.Second)
		for cl.Stats.CxActive.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := cl.Stats.CxActive.Load(); n != 0 {
			t.Errorf("%d of 3 connections still open after reaching the limit", n)
		}
		if n := cl.Stats.CxMaxRequests.Load(); n != 3 {
			t.Errorf("upstream_cx_max_requests %d, want 3", n)
		}
		if b.nonH2.Load() != 0 {
			t.Error("requests reached the backend over HTTP/1.1")
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		// Streams overlap: the limit still holds per connection, and
		// in-flight streams of a draining connection complete.
		b := newH2CBackend(t, 5*time.Millisecond)
		addr := b.Listener.Addr().String()
		cl := h2Cluster(t, addr, 4)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 5 {
					send(t, cl, addr)
				}
			})
		}
		wg.Wait()
		if m := b.maxRequests(); m > 4 {
			t.Errorf("a connection carried %d requests, limit 4", m)
		}
		if n := b.opened.Load(); n < 10 {
			t.Errorf("40 requests with limit 4 used %d connections, want at least 10", n)
		}
	})
	t.Run("unlimited", func(t *testing.T) {
		b := newH2CBackend(t, 0)
		addr := b.Listener.Addr().String()
		cl := h2Cluster(t, addr, 0)
		for range 9 {
			send(t, cl, addr)
		}
		if n := b.opened.Load(); n != 1 {
			t.Errorf("no limit: 9 requests used %d connections, want 1", n)
		}
	})
}
