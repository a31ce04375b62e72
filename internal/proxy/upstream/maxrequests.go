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

// traced returns a copy of req whose connection choice is observed:
// the local address of the chosen connection is stored in *local (when
// local is not nil), and, with max_requests_per_connection, the
// connection's last allowed request asks for it to be closed after the
// response ("Connection: close"), so that the transport does not reuse
// it and the upstream closes it after responding.
func (cl *Cluster) traced(req *http.Request, local *net.Addr) *http.Request {
	hdr := req.Header
	if cl.maxPerConn > 0 {
		hdr = req.Header.Clone() // the caller's header map is not ours to change
	}
	limit := cl.maxPerConn
	var out *http.Request
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		// GotConn runs on the caller's goroutine before the request is
		// written; the header map is shared with the transport's copy.
		if local != nil {
			*local = info.Conn.LocalAddr()
		}
		if c, ok := info.Conn.(*requestCountingConn); ok && limit > 0 && c.requests.Add(1) >= limit {
			hdr.Set("Connection", "close")
			out.Close = true
		}
	}}
	out = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	out.Header = hdr
	return out
}
