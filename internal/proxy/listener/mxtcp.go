package listener

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"time"

	"github.com/weftmesh/weft/internal/proxy/telemetry/peermeta"
)

// Istio's TCP metadata exchange: on a mesh mTLS connection whose ALPN is
// peermeta.ALPN, both sidecars send an exchange frame with their node
// metadata before any application byte (istio/proxy's network
// metadata_exchange filter, on the inbound listener and the outbound
// cluster). The frames are never forwarded to the applications.

// Waits for the peer's frame. A weft-proxy or Envoy client sends its
// frame as soon as it has data or received ours; an Envoy server answers
// ours at once.
var (
	downstreamFrameWait = time.Second
	upstreamFrameWait   = 5 * time.Second
)

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// negotiatedExchange reports whether c is a TLS connection that
// negotiated Istio's exchange protocol.
func negotiatedExchange(c net.Conn) bool {
	tc, ok := c.(*tls.Conn)
	return ok && tc.ConnectionState().NegotiatedProtocol == peermeta.ALPN
}

// exchangeDownstream is the server side on an accepted connection c: it
// reads the client's frame and answers with ours (x nil: none). It
// returns the connections for tcpProxy (conn replays bytes read that
// were not a frame; raw is what the copies read) and the client's
// metadata, nil if it sent none. When nothing arrives in time (a
// server-first application behind a client that sends its frame only
// with data), ours goes first and the client's is stripped when it comes.
func exchangeDownstream(c net.Conn, x *peermeta.Exchange) (conn, raw net.Conn, peer *peermeta.Peer) {
	c.SetReadDeadline(time.Now().Add(downstreamFrameWait))
	peer, rest, err := peermeta.ReadTCPFrame(c)
	c.SetReadDeadline(time.Time{})
	switch {
	case err == nil:
		writeFrame(c, x)
		return c, c, peer
	case isTimeout(err) && len(rest) == 0:
		writeFrame(c, x)
		s := &stripConn{Conn: c}
		return s, s, nil
	default: // not the protocol (or the connection failed): pass the bytes on
		return &peekConn{Conn: c, buf: rest}, c, nil
	}
}

// exchangeUpstream is the client side on a dialed upstream connection:
// it sends our frame and reads the server's. It returns the connection
// to read the upstream from, the server's metadata (nil if none) and
// bytes the server sent that were not a frame, which belong to the
// downstream.
func exchangeUpstream(up net.Conn, x *peermeta.Exchange) (read net.Conn, peer *peermeta.Peer, rest []byte) {
	writeFrame(up, x)
	up.SetReadDeadline(time.Now().Add(upstreamFrameWait))
	peer, rest, err := peermeta.ReadTCPFrame(up)
	up.SetReadDeadline(time.Time{})
	switch {
	case err == nil:
		return up, peer, nil
	case isTimeout(err) && len(rest) == 0:
		return &stripConn{Conn: up}, nil, nil
	default:
		return up, nil, rest
	}
}

// preferExchange makes a tcp_proxy chain's TLS server choose Istio's
// exchange protocol whenever the client offers it, as Envoy does with
// Istio's TCP chains (their ALPN list starts with it). Go's server picks
// by its own order, which sds sets HTTP first for HTTP chains; a client
// cluster offers http/1.1 too.
func preferExchange(cfg *tls.Config) {
	for i, p := range cfg.NextProtos {
		if p == peermeta.ALPN && i > 0 {
			protos := append([]string{peermeta.ALPN}, cfg.NextProtos[:i]...)
			cfg.NextProtos = append(protos, cfg.NextProtos[i+1:]...)
			return
		}
	}
}

func writeFrame(c net.Conn, x *peermeta.Exchange) {
	if x != nil {
		c.Write(x.TCPFrame())
	}
}

// stripConn removes a peer's exchange frame that arrives late, at the
// start of what is read; other bytes pass unchanged.
type stripConn struct {
	net.Conn
	checked bool
	buf     []byte
}

func (s *stripConn) Read(p []byte) (int, error) {
	if !s.checked {
		s.checked = true
		_, rest, err := peermeta.ReadTCPFrame(s.Conn)
		s.buf = rest
		if err != nil && !errors.Is(err, peermeta.ErrNotExchange) && len(rest) == 0 {
			return 0, err
		}
	}
	if len(s.buf) > 0 {
		n := copy(p, s.buf)
		s.buf = s.buf[n:]
		return n, nil
	}
	return s.Conn.Read(p)
}

// CloseWrite half-closes the underlying connection when it can.
func (s *stripConn) CloseWrite() error {
	if cw, ok := s.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
