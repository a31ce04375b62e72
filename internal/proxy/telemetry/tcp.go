package telemetry

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/weftmesh/weft/internal/proxy/httpproxy"
	"github.com/weftmesh/weft/internal/proxy/upstream"
)

// tcpSeries holds Istio's TCP metrics for one label set.
type tcpSeries struct {
	labels                         string
	opened, closed, sent, received atomic.Uint64
}

// tcpMetrics are kept apart from HTTP series: connections are far rarer
// than requests, so one mutex around the map is enough.
type tcpMetrics struct {
	mu sync.Mutex
	m  map[seriesKey]*tcpSeries
}

func (m *Metrics) tcpSeries(cluster string, host *upstream.Host, conn *httpproxy.ConnInfo, flags string) *tcpSeries {
	k := seriesKey{host: host, cluster: cluster, flags: flags}
	k.inbound = strings.HasPrefix(cluster, "inbound|") || strings.HasPrefix(cluster, "InboundPassthroughCluster") ||
		conn != nil && conn.Listener == "virtualInbound"
	if k.inbound && conn != nil {
		if conn.Peer != nil {
			k.mtls, k.principal = true, conn.Peer.Principal
		}
		// The client's metadata from the TCP exchange is known before
		// the connection is reported opened. The server's (outbound) is
		// learned after, so the client side keeps the endpoint
		// metadata, for opened and closed to share their labels.
		if conn.DownstreamPeer != nil {
			k.exchanged = *conn.DownstreamPeer
		}
	}
	m.tcp.mu.Lock()
	defer m.tcp.mu.Unlock()
	if m.tcp.m == nil {
		m.tcp.m = map[seriesKey]*tcpSeries{}
	}
	s := m.tcp.m[k]
	if s == nil {
		l := m.render(k)
		if i := strings.Index(l, `,response_code=`); i >= 0 {
			l = l[:i] // TCP metrics have no response_code or grpc_response_status
		}
		l = strings.Replace(l, `request_protocol="http"`, `request_protocol="tcp"`, 1)
		s = &tcpSeries{labels: l}
		m.tcp.m[k] = s
	}
	return s
}

// TCPOpened records a proxied TCP connection to host of cluster.
func (m *Metrics) TCPOpened(cluster string, host *upstream.Host, conn *httpproxy.ConnInfo) {
	m.tcpSeries(cluster, host, conn, "").opened.Add(1)
}

// TCPClosed records the end of a proxied TCP connection and its bytes:
// sent is what went to the downstream, received what came from it.
// flags holds Envoy response flags (e.g. UF when the connect failed).
func (m *Metrics) TCPClosed(cluster string, host *upstream.Host, conn *httpproxy.ConnInfo, flags string, sent, received int64) {
	s := m.tcpSeries(cluster, host, conn, flags)
	s.closed.Add(1)
	s.sent.Add(uint64(sent))
	s.received.Add(uint64(received))
}

func (m *Metrics) writeTCP(w io.Writer) {
	m.tcp.mu.Lock()
	all := make([]*tcpSeries, 0, len(m.tcp.m))
	for _, s := range m.tcp.m {
		all = append(all, s)
	}
	m.tcp.mu.Unlock()
	if len(all) == 0 {
		return
	}
	sort.Slice(all, func(i, j int) bool { return all[i].labels < all[j].labels })
	for _, metric := range []struct {
		name string
		get  func(*tcpSeries) uint64
	}{
		{"istio_tcp_connections_opened_total", func(s *tcpSeries) uint64 { return s.opened.Load() }},
		{"istio_tcp_connections_closed_total", func(s *tcpSeries) uint64 { return s.closed.Load() }},
		{"istio_tcp_sent_bytes_total", func(s *tcpSeries) uint64 { return s.sent.Load() }},
		{"istio_tcp_received_bytes_total", func(s *tcpSeries) uint64 { return s.received.Load() }},
	} {
		fmt.Fprintf(w, "# TYPE %s counter\n", metric.name)
		for _, s := range all {
			fmt.Fprintf(w, "%s{%s} %d\n", metric.name, s.labels, metric.get(s))
		}
	}
}
