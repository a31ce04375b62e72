package listener

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
)

// maxHeadBytes is the request head limit (Envoy's 60 KiB default).
const maxHeadBytes = 60 << 10

// strictConn validates HTTP/1.1 request framing strictly (RFC 9112)
// before net/http sees any byte: a malformed request head or chunk
// header gets a 4xx written here and never reaches the router or an
// upstream. Bytes are released to the reader only once validated.
type strictConn struct {
	net.Conn
	in     []byte // read but not yet validated
	out    []byte // validated, not yet returned
	outBuf []byte // backing storage reused for out
	state  strictState
	remain int64 // body bytes left (fixed length or current chunk)
	served int   // requests validated on this connection
	err    error
	rbuf   []byte
}

type strictState uint8

const (
	stHead strictState = iota
	stFixedBody
	stChunkSize
	stChunkData
	stChunkCRLF
	stTrailer
	stPassthrough
)

// httpError is a framing error with the status to answer.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func bad(msg string) error { return &httpError{400, msg} }

func (c *strictConn) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		if len(c.in) == 0 {
			switch c.state {
			case stPassthrough:
				return c.Conn.Read(p)
			case stFixedBody, stChunkData:
				// Body bytes need no parsing: read them straight through.
				n, err := c.Conn.Read(p[:min(int64(len(p)), c.remain)])
				c.remain -= int64(n)
				if c.remain == 0 {
					if c.state == stFixedBody {
						c.state = stHead
					} else {
						c.state = stChunkCRLF
					}
				}
				return n, err
			}
		}
		if c.rbuf == nil {
			c.rbuf = make([]byte, 16<<10)
		}
		n, err := c.Conn.Read(c.rbuf)
		c.in = append(c.in, c.rbuf[:n]...)
		if perr := c.advance(); perr != nil {
			c.reject(perr)
			return 0, c.err
		}
		if err != nil {
			if len(c.out) == 0 {
				return 0, err
			}
			c.err = err
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	if len(c.out) == 0 {
		c.out = nil
	}
	return n, nil
}

// reject answers a framing error if no earlier request is pending, and
// ends the connection for net/http.
func (c *strictConn) reject(err error) {
	var he *httpError
	status := 400
	if errors.As(err, &he) {
		status = he.status
	}
	if len(c.out) == 0 {
		body := "Bad Request: " + err.Error() + "\n"
		if status == 431 {
			body = "Request Header Fields Too Large\n"
		}
		resp := "HTTP/1.1 " + strconv.Itoa(status) + " " + statusText(status) + "\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: " +
			strconv.Itoa(len(body)) + "\r\n\r\n" + body
		c.Conn.Write([]byte(resp))
		c.err = io.EOF
		c.out = nil
		return
	}
	c.err = io.ErrUnexpectedEOF
}

func statusText(s int) string {
	switch s {
	case 431:
		return "Request Header Fields Too Large"
	case 501:
		return "Not Implemented"
	}
	return "Bad Request"
}

// advance validates as much of c.in as possible, moving it to c.out.
func (c *strictConn) advance() error {
	for len(c.in) > 0 {
		switch c.state {
		case stPassthrough:
			c.release(len(c.in))
		case stHead:
			// Tolerate empty lines before a request (RFC 9112 2.2).
			if c.in[0] == '\r' && len(c.in) >= 2 && c.in[1] == '\n' {
				c.release(2)
				continue
			}
			if bytes.HasPrefix(c.in, []byte("PRI * HTTP/2.0")) || len(c.in) < 14 && bytes.HasPrefix([]byte("PRI * HTTP/2.0"), c.in) {
				if len(c.in) < 14 {
					return nil
				}
				c.state = stPassthrough // h2c prior knowledge
				continue
			}
			end := bytes.Index(c.in, []byte("\r\n\r\n"))
			if end < 0 {
				if len(c.in) > maxHeadBytes {
					return &httpError{431, "request head too large"}
				}
				if i := bytes.IndexByte(c.in, '\n'); i >= 0 && (i == 0 || c.in[i-1] != '\r') {
					return bad("bare LF in request head")
				}
				return nil
			}
			if end+4 > maxHeadBytes {
				return &httpError{431, "request head too large"}
			}
			next, remain, err := validateHead(c.in[:end+2])
			if err != nil {
				return err
			}
			c.release(end + 4)
			c.served++
			c.state, c.remain = next, remain
			if next == stFixedBody && remain == 0 {
				c.state = stHead
			}
		case stFixedBody:
			n := int(min(int64(len(c.in)), c.remain))
			c.release(n)
			c.remain -= int64(n)
			if c.remain == 0 {
				c.state = stHead
			}
		case stChunkSize, stTrailer:
			i := bytes.Index(c.in, []byte("\r\n"))
			if i < 0 {
				if len(c.in) > 4096 {
					return bad("chunk header too long")
				}
				if bytes.IndexByte(c.in, '\n') >= 0 {
					return bad("bare LF in chunked body")
				}
				return nil
			}
			line := c.in[:i]
			if bytes.IndexByte(line, '\n') >= 0 || bytes.IndexByte(line, '\r') >= 0 {
				return bad("bare CR or LF in chunked body")
			}
			if c.state == stTrailer {
				c.release(i + 2)
				if i == 0 {
					c.state = stHead
				} else if err := validateField(line); err != nil {
					return err
				}
				continue
			}
			size, err := parseChunkSize(line)
			if err != nil {
				return err
			}
			c.release(i + 2)
			if size == 0 {
				c.state = stTrailer
			} else {
				c.state, c.remain = stChunkData, size
			}
		case stChunkData:
			n := int(min(int64(len(c.in)), c.remain))
			c.release(n)
			c.remain -= int64(n)
			if c.remain == 0 {
				c.state = stChunkCRLF
			}
		case stChunkCRLF:
			if len(c.in) < 2 {
				if c.in[0] != '\r' {
					return bad("chunk data not followed by CRLF")
				}
				return nil
			}
			if c.in[0] != '\r' || c.in[1] != '\n' {
				return bad("chunk data not followed by CRLF")
			}
			c.release(2)
			c.state = stChunkSize
		}
	}
	return nil
}

func (c *strictConn) release(n int) {
	if len(c.out) == 0 {
		c.out = c.outBuf[:0]
	}
	c.out = append(c.out, c.in[:n]...)
	if cap(c.out) > cap(c.outBuf) {
		c.outBuf = c.out[:0]
	}
	c.in = c.in[n:]
	if len(c.in) == 0 {
		c.in = c.in[:0]
	}
}

func parseChunkSize(line []byte) (int64, error) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i] // chunk extensions are ignored
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 15 {
		return 0, bad("invalid chunk size")
	}
	var n int64
	for _, b := range line {
		var d byte
		switch {
		case '0' <= b && b <= '9':
			d = b - '0'
		case 'a' <= b && b <= 'f':
			d = b - 'a' + 10
		case 'A' <= b && b <= 'F':
			d = b - 'A' + 10
		default:
			return 0, bad("invalid chunk size")
		}
		n = n<<4 | int64(d)
	}
	return n, nil
}

func isTchar(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
}

func validateField(line []byte) error {
	if len(line) == 0 {
		return bad("empty header line")
	}
	if line[0] == ' ' || line[0] == '\t' {
		return bad("obsolete line folding")
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return bad("header line without a name")
	}
	for _, b := range line[:colon] {
		if !isTchar(b) {
			return bad("invalid character in header name")
		}
	}
	for _, b := range line[colon+1:] {
		if b < 0x20 && b != '\t' || b == 0x7f {
			return bad("control character in header value")
		}
	}
	return nil
}

// validateHead checks a request head (ending in CRLF) and returns how
// the body is framed. It does not allocate.
func validateHead(head []byte) (strictState, int64, error) {
	head = head[:len(head)-2]
	if bytes.IndexByte(head, '\r') >= 0 || bytes.IndexByte(head, '\n') >= 0 {
		// Only CRLF pairs may appear; check each line below.
		for i := 0; i < len(head); i++ {
			switch head[i] {
			case '\r':
				if i+1 >= len(head) || head[i+1] != '\n' {
					return 0, 0, bad("bare CR in request head")
				}
				i++
			case '\n':
				return 0, 0, bad("bare LF in request head")
			}
		}
	}
	rl, rest, _ := bytes.Cut(head, crlf)
	sp1 := bytes.IndexByte(rl, ' ')
	sp2 := bytes.LastIndexByte(rl, ' ')
	if sp1 <= 0 || sp2 <= sp1+1 || bytes.IndexByte(rl[sp1+1:sp2], ' ') >= 0 {
		return 0, 0, bad("malformed request line")
	}
	method, target, version := rl[:sp1], rl[sp1+1:sp2], rl[sp2+1:]
	for _, b := range method {
		if !isTchar(b) {
			return 0, 0, bad("invalid method")
		}
	}
	http10 := string(version) == "HTTP/1.0"
	if string(version) != "HTTP/1.1" && !http10 {
		return 0, 0, bad("unsupported HTTP version")
	}
	for _, b := range target {
		if b <= 0x20 || b == 0x7f || b >= 0x80 {
			return 0, 0, bad("invalid request target")
		}
	}
	var host []byte
	hosts := 0
	var length int64 = -1
	chunked, otherTE, upgrade := false, false, false
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, crlf)
		if err := validateField(line); err != nil {
			return 0, 0, err
		}
		colon := bytes.IndexByte(line, ':')
		name, value := line[:colon], bytes.Trim(line[colon+1:], " \t")
		switch {
		case bytes.EqualFold(name, []byte("host")):
			hosts++
			host = value
		case bytes.EqualFold(name, []byte("content-length")):
			for len(value) > 0 {
				var v []byte
				v, value, _ = bytes.Cut(value, []byte(","))
				n, ok := parseDecimal(bytes.Trim(v, " \t"))
				if !ok {
					return 0, 0, bad("invalid Content-Length")
				}
				if length >= 0 && n != length {
					return 0, 0, bad("conflicting Content-Length values")
				}
				length = n
			}
		case bytes.EqualFold(name, []byte("transfer-encoding")):
			for len(value) > 0 {
				var v []byte
				v, value, _ = bytes.Cut(value, []byte(","))
				v = bytes.Trim(v, " \t")
				if chunked {
					otherTE = true // chunked must be the final coding
				}
				if bytes.EqualFold(v, []byte("chunked")) {
					chunked = true
				} else {
					otherTE = true
				}
			}
		case bytes.EqualFold(name, []byte("upgrade")):
			upgrade = true
		}
	}
	if !http10 && hosts != 1 || hosts > 1 {
		return 0, 0, bad("exactly one Host header is required")
	}
	for _, b := range host {
		if b <= 0x20 || b >= 0x7f || bytes.IndexByte([]byte(`"<>\^`+"`{|}/?#@"), b) >= 0 {
			return 0, 0, bad("invalid Host header")
		}
	}
	if i := bytes.Index(target, []byte("://")); i > 0 && target[0] != '/' {
		auth := target[i+3:]
		if j := bytes.IndexAny(auth, "/?#"); j >= 0 {
			auth = auth[:j]
		}
		if bytes.IndexByte(auth, '@') >= 0 {
			return 0, 0, bad("userinfo in request target")
		}
		if hosts == 1 && !bytes.EqualFold(host, auth) {
			return 0, 0, bad("Host header disagrees with the request target")
		}
	} else if target[0] != '/' && !(string(target) == "*" && string(method) == "OPTIONS") && string(method) != "CONNECT" {
		return 0, 0, bad("invalid request target")
	}
	if chunked || otherTE {
		switch {
		case http10:
			return 0, 0, bad("Transfer-Encoding in HTTP/1.0")
		case length >= 0:
			return 0, 0, bad("both Content-Length and Transfer-Encoding")
		case otherTE:
			return 0, 0, &httpError{501, "unsupported transfer coding"}
		case upgrade:
			return stPassthrough, 0, nil
		}
		return stChunkSize, 0, nil
	}
	if upgrade || string(method) == "CONNECT" {
		return stPassthrough, 0, nil
	}
	return stFixedBody, max(length, 0), nil
}

var crlf = []byte("\r\n")

// parseDecimal parses 1*DIGIT without sign, rejecting overflow.
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// Strict wraps ln so that every accepted connection gets strict
// HTTP/1.1 framing validation (for servers outside the Manager, such as
// the forward proxy).
func Strict(ln net.Listener) net.Listener { return strictListener{ln} }

type strictListener struct{ net.Listener }

func (l strictListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &strictConn{Conn: c}, nil
}
