package listener

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"
)

// inspected is what the listener filters learned from a connection's
// first bytes.
type inspected struct {
	transport  string // "tls" or "raw_buffer"
	serverName string
	alpn       []string
	httpProto  string // "http/1.1", "http/1.0", "h2c" or ""
}

// peekConn replays bytes read during inspection before reading the
// underlying connection.
type peekConn struct {
	net.Conn
	buf []byte
}

func (c *peekConn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

var errHelloCaptured = errors.New("client hello captured")

// recordingConn feeds a TLS server from a connection while recording the
// bytes; writes are discarded.
type recordingConn struct {
	net.Conn
	rec bytes.Buffer
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.rec.Write(p[:n])
	return n, err
}

func (c *recordingConn) Write(p []byte) (int, error) { return len(p), nil }

// inspect reads enough of the connection to learn its transport
// protocol, SNI and ALPN (TLS) or HTTP version (plaintext). The returned
// conn replays what was read.
func inspect(c net.Conn, tlsWanted, httpWanted bool, timeout time.Duration) (net.Conn, inspected, error) {
	in := inspected{transport: "raw_buffer"}
	if timeout > 0 {
		c.SetReadDeadline(time.Now().Add(timeout))
		defer c.SetReadDeadline(time.Time{})
	}
	first := make([]byte, 1)
	if _, err := io.ReadFull(c, first); err != nil {
		return c, in, err
	}
	if first[0] == 0x16 && tlsWanted {
		rc := &recordingConn{Conn: &peekConn{Conn: c, buf: first}}
		var hello *tls.ClientHelloInfo
		srv := tls.Server(rc, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			hello = h
			return nil, errHelloCaptured
		}})
		srv.Handshake()
		out := &peekConn{Conn: c, buf: rc.rec.Bytes()}
		if hello == nil {
			return out, in, nil // not TLS after all: treat as raw bytes
		}
		in.transport = "tls"
		in.serverName = hello.ServerName
		in.alpn = hello.SupportedProtos
		return out, in, nil
	}
	buf := first
	if httpWanted {
		tmp := make([]byte, 4096)
		for len(buf) < 4096 && bytes.IndexByte(buf, '\n') < 0 {
			n, err := c.Read(tmp[:4096-len(buf)])
			buf = append(buf, tmp[:n]...)
			if err != nil {
				break
			}
		}
		in.httpProto = httpVersion(buf)
	}
	return &peekConn{Conn: c, buf: buf}, in, nil
}

// httpVersion recognises an HTTP/1.x request line or the h2 preface.
func httpVersion(b []byte) string {
	if bytes.HasPrefix(b, []byte("PRI * HTTP/2.0")) {
		return "h2c"
	}
	line := b
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		line = bytes.TrimRight(b[:i], "\r")
	} else {
		return ""
	}
	switch {
	case bytes.HasSuffix(line, []byte(" HTTP/1.1")):
		return "http/1.1"
	case bytes.HasSuffix(line, []byte(" HTTP/1.0")):
		return "http/1.0"
	}
	return ""
}
