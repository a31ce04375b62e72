package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// h1Pool is a cluster's lean HTTP/1.1 client for the common request: it
// writes the request and reads the response headers on the caller's
// goroutine, with one bufio.Writer and one bufio.Reader per pooled
// connection, and no goroutine or channel per connection (net/http's
// Transport runs a read and a write loop per connection and hands every
// request and response across channels). The response body returns the
// connection to the pool when it reaches EOF, if both sides allow keep-
// alive; a body closed early or failing discards the connection.
//
// Requests it does not handle (see handles) go to the cluster's
// net/http transport.
type h1Pool struct {
	cl *Cluster
	// idle is the idle timeout of a pooled connection.
	idle time.Duration
	// keepAlive is false with max_requests_per_connection 1.
	keepAlive bool
	// maxPerConn > 1 closes a connection after that many requests.
	maxPerConn int64
	// maxIdle caps the idle connections kept per address.
	maxIdle int

	mu     sync.Mutex // guards conns, closed and h1Conn.inIdle
	conns  map[string][]*h1Conn
	closed bool
}

// maxResponseHeaderBytes bounds a response's header, as the fallback
// transport's MaxResponseHeaderBytes.
const maxResponseHeaderBytes = 1 << 20

// maxSyncBody is the largest in-memory request body written before the
// response is read; larger or streamed bodies are written by a goroutine
// of their own, so that an upstream answering before it read the whole
// body cannot deadlock the exchange.
const maxSyncBody = 64 << 10

func newH1Pool(cl *Cluster, idle time.Duration, maxPerConn uint32) *h1Pool {
	p := &h1Pool{cl: cl, idle: idle, keepAlive: maxPerConn != 1, maxIdle: int(min(cl.maxConnections, 4096)), conns: map[string][]*h1Conn{}}
	if maxPerConn > 1 {
		p.maxPerConn = int64(maxPerConn)
	}
	p.maxIdle = max(p.maxIdle, 1)
	return p
}

// handles reports whether the lean path serves req. Everything unusual
// goes to net/http's transport: upgrades (WebSocket), CONNECT,
// Expect (100-continue), request trailers, a non-nil body of length 0
// (net/http probes it), and anything but an http:// URL (TLS origination
// is the dialer's job, so the URL scheme is always http).
func (p *h1Pool) handles(req *http.Request) bool {
	if req.URL == nil || req.URL.Scheme != "http" || req.Method == http.MethodConnect || len(req.Trailer) > 0 {
		return false
	}
	if req.Body != nil && req.Body != http.NoBody && req.ContentLength == 0 {
		return false
	}
	h := req.Header
	return len(h["Upgrade"]) == 0 && len(h["Expect"]) == 0
}

// errHeaderTooLarge is returned when a response header passes
// maxResponseHeaderBytes.
var errHeaderTooLarge = fmt.Errorf("upstream response header exceeds %d bytes", maxResponseHeaderBytes)

// errBodyClosed is returned by a response body read after Close.
var errBodyClosed = errors.New("http: read on closed response body")

// roundTrip sends req on a pooled or new connection to req.URL.Host and
// reads the response headers. A request that fails on a reused
// connection before any response byte arrived, and whose body can be
// sent again, is retried once on a new connection (the upstream may
// have closed the idle connection), as net/http does.
func (p *h1Pool) roundTrip(req *http.Request, local *net.Addr) (*http.Response, error) {
	for k, vs := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			closeRequestBody(req)
			return nil, fmt.Errorf("net/http: invalid header field name %q", k)
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				closeRequestBody(req)
				return nil, fmt.Errorf("net/http: invalid header field value for %q", k)
			}
		}
	}
	ctx := req.Context()
	addr := req.URL.Host
	if !hasPort(addr) {
		addr = net.JoinHostPort(strings.Trim(addr, "[]"), "80")
	}
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	for fresh := false; ; fresh = true {
		c, err := p.get(ctx, addr, fresh, !replayable)
		if err != nil {
			closeRequestBody(req)
			return nil, err
		}
		if local != nil {
			*local = c.nc.LocalAddr()
		}
		if tr := httptrace.ContextClientTrace(ctx); tr != nil && tr.GotConn != nil {
			tr.GotConn(httptrace.GotConnInfo{Conn: c.nc}) // as net/http (callers read the TLS peer)
		}
		resp, retry, err := c.do(ctx, req)
		if err == nil {
			return resp, nil
		}
		if !retry || fresh || !replayable || ctx.Err() != nil {
			return nil, err
		}
		if req.GetBody != nil {
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, err
			}
			r2 := *req
			r2.Body = body
			req = &r2
		}
	}
}

func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// hasPort reports whether an authority carries a port.
func hasPort(s string) bool { return strings.LastIndexByte(s, ':') > strings.LastIndexByte(s, ']') }

// staleCheckAfter is how long a connection may sit idle before it is
// checked for a close by the upstream when it is taken for a request
// that could not be sent again: keep-alive timeouts close connections
// after seconds, and a connection reused sooner costs no extra syscall.
const staleCheckAfter = time.Second

// get returns an idle connection to addr (unless fresh) or dials one.
// With mustBeLive (the request's body cannot be replayed, so a failure
// on a closed connection could not be retried), an idle connection that
// has waited long is first checked for a close by the upstream.
func (p *h1Pool) get(ctx context.Context, addr string, fresh, mustBeLive bool) (*h1Conn, error) {
	for !fresh {
		p.mu.Lock()
		list := p.conns[addr]
		if len(list) == 0 {
			p.mu.Unlock()
			break
		}
		c := list[len(list)-1]
		list[len(list)-1] = nil
		if len(list) == 1 {
			delete(p.conns, addr)
		} else {
			p.conns[addr] = list[:len(list)-1]
		}
		c.inIdle = false
		p.mu.Unlock()
		c.idleTimer.Stop()
		if mustBeLive && time.Since(c.idleSince) > staleCheckAfter && !c.live() {
			c.close()
			continue
		}
		c.reused = true
		return c, nil
	}
	nc, err := p.cl.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &h1Conn{pool: p, addr: addr, nc: nc}
	c.io.nc = nc
	c.io.limit = -1
	c.br = bufio.NewReaderSize(&c.io, 4096)
	c.bw = bufio.NewWriterSize(&c.io, 4096)
	return c, nil
}

// put returns a connection whose exchange completed to the idle list, or
// closes it when the pool is closed or full or the upstream sent bytes
// nobody asked for.
func (p *h1Pool) put(c *h1Conn) {
	if c.br.Buffered() > 0 {
		c.close()
		return
	}
	p.mu.Lock()
	list := p.conns[c.addr]
	if p.closed || len(list) >= p.maxIdle {
		p.mu.Unlock()
		c.close()
		return
	}
	p.conns[c.addr] = append(list, c)
	c.inIdle = true
	c.idleSince = time.Now()
	if c.idleTimer == nil {
		c.idleTimer = time.AfterFunc(p.idle, c.idleExpired)
	} else {
		c.idleTimer.Reset(p.idle)
	}
	p.mu.Unlock()
}

// remove takes c off its idle list; it reports whether c was idle.
// p.mu is held.
func (p *h1Pool) remove(c *h1Conn) bool {
	if !c.inIdle {
		return false
	}
	c.inIdle = false
	list := p.conns[c.addr]
	for i, x := range list {
		if x == c {
			copy(list[i:], list[i+1:])
			list[len(list)-1] = nil
			list = list[:len(list)-1]
			break
		}
	}
	if len(list) == 0 {
		delete(p.conns, c.addr)
	} else {
		p.conns[c.addr] = list
	}
	return true
}

// close closes every idle connection; connections in use are closed
// when their exchange ends.
func (p *h1Pool) close() {
	p.mu.Lock()
	p.closed = true
	var idle []*h1Conn
	for _, list := range p.conns {
		idle = append(idle, list...)
	}
	p.conns = map[string][]*h1Conn{}
	for _, c := range idle {
		c.inIdle = false
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.idleTimer.Stop()
		c.close()
	}
}

// h1Conn is one pooled HTTP/1.1 connection. It is owned by one request
// at a time (from get to the end of the response body) or by the pool
// while idle.
type h1Conn struct {
	pool *h1Pool
	addr string
	nc   net.Conn
	io   h1ConnIO
	br   *bufio.Reader
	bw   *bufio.Writer
	// requests counts the requests sent (max_requests_per_connection).
	requests int64
	// reused is set once the connection served a request.
	reused bool
	// aborted is set when the request's context ended mid-exchange.
	aborted   atomic.Bool
	idleTimer *time.Timer
	inIdle    bool      // guarded by pool.mu
	idleSince time.Time // when the connection last went idle
}

// live reports whether an idle connection is still open: its socket has
// neither a close (EOF, reset) nor unexpected bytes waiting. A connection
// whose socket cannot be inspected counts as live.
func (c *h1Conn) live() bool {
	rc := rawConn(c.nc)
	if rc == nil {
		return true
	}
	return socketIdle(rc)
}

// rawConn unwraps TLS and counting wrappers down to the socket.
func rawConn(nc net.Conn) syscall.RawConn {
	for range 4 {
		switch c := nc.(type) {
		case interface{ NetConn() net.Conn }:
			nc = c.NetConn()
		case syscall.Conn:
			rc, err := c.SyscallConn()
			if err != nil {
				return nil
			}
			return rc
		default:
			return nil
		}
	}
	return nil
}

// h1ConnIO sits under the connection's bufio reader and writer: it
// bounds the bytes read while a response header is parsed and remembers
// a write error (telling a broken connection from a failing request
// body).
type h1ConnIO struct {
	nc    net.Conn
	limit int64 // bytes still allowed to be read; < 0: unbounded
	werr  error
}

func (x *h1ConnIO) Read(p []byte) (int, error) {
	if x.limit >= 0 {
		if x.limit == 0 {
			return 0, errHeaderTooLarge
		}
		if int64(len(p)) > x.limit {
			p = p[:x.limit]
		}
	}
	n, err := x.nc.Read(p)
	if x.limit >= 0 {
		x.limit -= int64(n)
	}
	return n, err
}

func (x *h1ConnIO) Write(p []byte) (int, error) {
	n, err := x.nc.Write(p)
	if err != nil && x.werr == nil {
		x.werr = err
	}
	return n, err
}

// idleExpired closes the connection when its idle timeout passes while
// it is still idle.
func (c *h1Conn) idleExpired() {
	p := c.pool
	p.mu.Lock()
	idle := p.remove(c)
	p.mu.Unlock()
	if idle {
		c.close()
	}
}

func (c *h1Conn) close() { c.nc.Close() }

// abort ends the exchange when the request's context is done: blocked
// reads and writes return at once.
func (c *h1Conn) abort() {
	c.aborted.Store(true)
	c.nc.SetDeadline(time.Unix(1, 0))
}

// wantsClose reports whether the request asks to close the connection.
func wantsClose(req *http.Request) bool {
	return req.Close || httpguts.HeaderValuesContainsToken(req.Header["Connection"], "close")
}

// syncBody reports whether req's body is written before the response is
// read: no body, or a small replayable (in-memory) one.
func syncBody(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil && req.ContentLength > 0 && req.ContentLength <= maxSyncBody
}

// do sends req on c and reads the response header. retry tells that the
// request failed before any response byte on a connection that may have
// been closed by the upstream while idle. c is discarded on error.
func (c *h1Conn) do(ctx context.Context, req *http.Request) (resp *http.Response, retry bool, err error) {
	p := c.pool
	c.requests++
	last := !p.keepAlive || wantsClose(req)
	if p.maxPerConn > 0 && c.requests >= p.maxPerConn {
		if c.requests == p.maxPerConn {
			p.cl.Stats.CxMaxRequests.Add(1)
		}
		last = true
	}
	wreq := req
	if last && !req.Close {
		r2 := *req
		r2.Close = true // Request.Write sends "Connection: close"
		wreq = &r2
	}
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, c.abort)
	}
	fail := func(e error) (*http.Response, bool, error) {
		if stop != nil {
			stop()
		}
		c.close()
		if c.aborted.Load() && ctx.Err() != nil {
			e = ctx.Err()
		}
		return nil, false, e
	}

	var written chan error
	if syncBody(req) {
		var err error
		if bodiless(req) {
			err = writeHead(c.bw, wreq)
		} else {
			err = wreq.Write(c.bw)
		}
		if err == nil {
			err = c.bw.Flush()
		}
		if err != nil {
			broken := c.io.werr != nil
			_, _, err = fail(err)
			return nil, broken && c.reused, err
		}
	} else {
		written = make(chan error, 1)
		go func() {
			err := wreq.Write(c.bw)
			if err == nil {
				err = c.bw.Flush()
			}
			if err != nil {
				c.close() // the upstream must not wait for the rest
			}
			written <- err
		}()
	}

	c.io.limit = maxResponseHeaderBytes + int64(c.br.Size())
	if _, err := c.br.Peek(1); err != nil {
		// Nothing was received: the connection was closed or reset.
		if written != nil {
			// The writer may be blocked reading the request body: never
			// wait for it here (it ends when the body does).
			c.close()
			select {
			case werr := <-written:
				if werr != nil && c.io.werr == nil {
					err = werr // the request body failed
				}
			default:
			}
			_, _, err = fail(err)
			return nil, false, err
		}
		_, _, err = fail(err)
		return nil, c.reused && !c.aborted.Load(), err
	}
	for {
		resp, err = http.ReadResponse(c.br, req)
		if err != nil {
			break
		}
		// 1xx informational responses (103 Early Hints) are skipped, as
		// net/http does; 101 ends the exchange.
		if resp.StatusCode < 100 || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	c.io.limit = -1
	if err != nil {
		_, _, err = fail(err)
		return nil, false, err
	}
	body := &h1Body{c: c, rc: resp.Body, ctx: ctx, stop: stop, written: written, reusable: !last && !resp.Close && resp.StatusCode != http.StatusSwitchingProtocols}
	if resp.Body == http.NoBody {
		body.finish(true)
	} else {
		resp.Body = body
	}
	return resp, false, nil
}

// h1Body is a lean response body: at EOF it hands the connection back
// to the pool (or closes it); closed early or failing, it closes it.
type h1Body struct {
	c        *h1Conn
	rc       io.ReadCloser
	stop     func() bool
	written  chan error // the body writer's result; nil when written synchronously
	reusable bool
	sawEOF   bool // Read returned io.EOF (Read's own state)
	done     atomic.Bool
	ctx      context.Context
}

// Read reads the response body.
func (b *h1Body) Read(p []byte) (int, error) {
	if b.sawEOF {
		return 0, io.EOF
	}
	if b.done.Load() {
		return 0, errBodyClosed
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.sawEOF = true
		b.finish(true)
		return n, io.EOF
	}
	if err != nil {
		aborted := b.c.aborted.Load()
		b.finish(false)
		if aborted && b.ctx.Err() != nil {
			err = b.ctx.Err()
		}
	}
	return n, err
}

// Close ends the body; before EOF it discards the connection.
func (b *h1Body) Close() error {
	b.finish(false)
	return nil
}

// finish ends the exchange once: the connection goes back to the pool
// when the body was read to the end, the request was fully written, both
// sides allow keep-alive and the context did not end it; otherwise it is
// closed.
func (b *h1Body) finish(eof bool) {
	if !b.done.CompareAndSwap(false, true) {
		return
	}
	c := b.c
	reuse := eof && b.reusable
	if b.stop != nil && !b.stop() {
		reuse = false // the context ended: the deadline may be set
	}
	if b.written != nil {
		select {
		case err := <-b.written:
			reuse = reuse && err == nil
		default:
			// Still writing (the upstream answered early): the writer
			// fails on the closed connection, or ends with the request
			// body; it is not waited for.
			reuse = false
		}
	}
	if reuse {
		c.pool.put(c)
		return
	}
	c.close()
}
