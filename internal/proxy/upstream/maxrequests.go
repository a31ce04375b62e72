package upstream

import (
	"net"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
)

// requestCountingConn counts the requests sent on one upstream
// HTTP/1.1 connection, for max_requests_per_connection.
type requestCountingConn struct {
	net.Conn
	requests atomic.Int64
}

// countRequest returns a copy of req that, once the transport has
// chosen its connection, asks for that connection to be closed after
// the response ("Connection: close") if it is the connection's last
// allowed request. The transport then does not reuse it, and the
// upstream closes it after responding.
func (cl *Cluster) countRequest(req *http.Request) *http.Request {
	hdr := req.Header.Clone()
	limit := cl.maxPerConn
	var out *http.Request
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		if c, ok := info.Conn.(*requestCountingConn); ok && c.requests.Add(1) >= limit {
			// GotConn runs before the request is written; the header
			// map is shared with the transport's internal copy.
			hdr.Set("Connection", "close")
			out.Close = true
		}
	}}
	out = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	out.Header = hdr
	return out
}
