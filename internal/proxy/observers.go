package proxy

import (
	"github.com/weftmesh/weft/internal/proxy/httpproxy"
	"github.com/weftmesh/weft/internal/proxy/listener"
	"github.com/weftmesh/weft/internal/proxy/upstream"
)

// observers fans request and tcp_proxy events out to telemetry and the
// access log. It is built once in New and never changed.
type observers struct {
	http []httpproxy.Observer
	tcp  []listener.TCPObserver
}

// Observe implements httpproxy.Observer.
func (o *observers) Observe(in *httpproxy.Info) {
	for _, h := range o.http {
		h.Observe(in)
	}
}

// TCPOpened implements listener.TCPObserver.
func (o *observers) TCPOpened(cluster string, host *upstream.Host, conn *httpproxy.ConnInfo) {
	for _, t := range o.tcp {
		t.TCPOpened(cluster, host, conn)
	}
}

// TCPClosed implements listener.TCPObserver.
func (o *observers) TCPClosed(cluster string, host *upstream.Host, conn *httpproxy.ConnInfo, flags string, sent, received int64) {
	for _, t := range o.tcp {
		t.TCPClosed(cluster, host, conn, flags, sent, received)
	}
}
