package upstream

import (
	"net"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
)

// requestCountingConn counts the requests sent on one upstream
// connection, for max_requests_per_connection.
type requestCountingConn struct {
	net.Conn
	requests atomic.Int64
}

// traced returns a copy of req whose connection choice is observed:
// the local address of the chosen connection is stored in *local (when
// local is not nil), and, with max_requests_per_connection, the
// connection's last allowed request marks it for closing:
//
//   - HTTP/1.1: "Connection: close", so that the transport does not reuse
//     the connection and the upstream closes it after responding;
//   - HTTP/2: req.Close, which makes x/net/http2 stop opening streams on
//     the connection once this request's stream is open; the streams in
//     flight finish and the connection closes when the last one ends (it
//     drains), while new requests open a new connection.
//
// A request the transport retries on another connection (for instance
// because the one it reserved stopped taking streams) is counted on that
// connection and the mark follows the new count.
func (cl *Cluster) traced(req *http.Request, local *net.Addr) *http.Request {
	hdr := req.Header
	h1Limit := cl.maxPerConn > 0 && !cl.HTTP2
	if h1Limit {
		hdr = req.Header.Clone() // the caller's header map is not ours to change
	}
	limit := cl.maxPerConn
	var out *http.Request
	marked := false
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		// GotConn runs on the caller's goroutine before the request is
		// written; the header map is shared with the transport's copy.
		if local != nil {
			*local = info.Conn.LocalAddr()
		}
		c, ok := info.Conn.(*requestCountingConn)
		if !ok || limit <= 0 {
			return
		}
		n := c.requests.Add(1)
		last := n >= limit
		if n == limit {
			cl.Stats.CxMaxRequests.Add(1)
		}
		if last == marked {
			return
		}
		marked, out.Close = last, last
		if h1Limit {
			if last {
				hdr.Set("Connection", "close")
			} else {
				hdr.Del("Connection")
			}
		}
	}}
	out = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	out.Header = hdr
	return out
}
