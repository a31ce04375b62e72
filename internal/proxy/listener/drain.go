package listener

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Draining, as Envoy does it: a draining HTTP connection finishes the
// requests it has in flight; its responses carry "Connection: close"
// (which makes the HTTP/2 server send GOAWAY), an idle HTTP/1.1
// connection is closed, and whatever is left is closed at the deadline.
//
// Drain drains everything (SIGTERM, /drain_listeners, /quitquitquit); a
// listener that a configuration change removes drains its own
// connections for DrainTimeout instead of cutting them.

// defaultDrainTimeout is Istio's terminationDrainDuration.
const defaultDrainTimeout = 5 * time.Second

// connDrain is one HTTP connection's draining state.
type connDrain struct {
	inflight atomic.Int32
	idle     atomic.Bool // HTTP/1.1 between requests (ConnState)
	draining atomic.Bool
	// removed: the connection's listener is gone; requests are served by
	// the chain the connection last used.
	removed   atomic.Bool
	closeOnce sync.Once
	m         *Manager // set before the connection is served
}

// httpConns is the set of open HTTP connections.
type httpConns struct {
	mu    sync.Mutex
	conns map[*serverConn]struct{}
	// changed is signalled (non-blocking) whenever a connection closes.
	changed chan struct{}
	// draining is set by Drain: new connections drain at once.
	draining bool
}

func (h *httpConns) init() {
	if h.conns == nil {
		h.conns = map[*serverConn]struct{}{}
		h.changed = make(chan struct{}, 1)
	}
}

// trackHTTP registers sc until it is closed.
func (m *Manager) trackHTTP(sc *serverConn) {
	sc.drain.m = m
	m.http.mu.Lock()
	m.http.init()
	m.http.conns[sc] = struct{}{}
	draining := m.http.draining
	m.http.mu.Unlock()
	if draining {
		sc.startDrain(false)
	}
}

// Close closes the connection and forgets it.
func (sc *serverConn) Close() error {
	sc.drain.closeOnce.Do(func() {
		if m := sc.drain.m; m != nil {
			m.http.mu.Lock()
			delete(m.http.conns, sc)
			m.http.mu.Unlock()
			select {
			case m.http.changed <- struct{}{}:
			default:
			}
		}
	})
	return sc.Conn.Close()
}

// startDrain marks sc draining and closes it if it is idle.
func (sc *serverConn) startDrain(removed bool) {
	if removed {
		sc.drain.removed.Store(true)
	}
	if sc.drain.draining.Swap(true) {
		return
	}
	// An idle HTTP/1.1 connection is closed now. HTTP/2 connections are
	// not: a stream may be arriving, and a GOAWAY (from Shutdown, or from
	// the Connection: close of the next response) lets the server close
	// them cleanly once their streams end; the deadline closes the rest.
	if sc.drain.inflight.Load() == 0 && sc.drain.idle.Load() {
		sc.Close()
	}
}

// serveDraining serves r on sc, counting it in flight and asking the
// client to close a draining connection.
func (m *Manager) serveDraining(sc *serverConn, w http.ResponseWriter, r *http.Request) {
	sc.drain.inflight.Add(1)
	defer sc.drain.inflight.Add(-1)
	if sc.drain.draining.Load() {
		w.Header().Set("Connection", "close")
		if sc.drain.removed.Load() {
			chain := sc.chain
			if b := sc.bound.Load(); b != nil && b.chain != nil {
				chain = b.chain
			}
			chain.HTTP.ServeHTTP(w, r)
			return
		}
	}
	m.serveCurrent(sc, w, r)
}

// connState follows HTTP/1.1 connections between requests: a draining
// one is closed as soon as its response is written.
func (m *Manager) connState(c net.Conn, st http.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(*serverConn)
	if !ok {
		return
	}
	switch st {
	case http.StateIdle:
		sc.drain.idle.Store(true)
		if sc.drain.draining.Load() {
			c.Close()
		}
	case http.StateActive:
		sc.drain.idle.Store(false)
	}
}

// drainRemoved drains the HTTP connections of listeners that all no
// longer has, closing what is left after DrainTimeout.
func (m *Manager) drainRemoved(all map[string]*Listener) {
	names := make(map[string]bool, len(all))
	for _, l := range all {
		names[l.Name] = true
	}
	var gone []*serverConn
	m.http.mu.Lock()
	for sc := range m.http.conns {
		if !names[sc.info.Listener] && !sc.drain.removed.Load() {
			gone = append(gone, sc)
		}
	}
	m.http.mu.Unlock()
	if len(gone) == 0 {
		return
	}
	d := m.drainTimeout()
	for _, sc := range gone {
		m.log.Debug("listener removed; draining connection", "listener", sc.info.Listener, "remote", sc.info.RemoteAddr)
		sc.startDrain(true)
		time.AfterFunc(d, func() { sc.Close() })
	}
}

// Drain stops accepting connections on every listener and drains the
// open ones: HTTP connections finish their in-flight requests (HTTP/1.1
// responses carry Connection: close, HTTP/2 connections get GOAWAY) and
// tcp_proxy connections run on. It returns when no connection is left or
// ctx is done, whichever is first; then it closes what remains. Stop
// still has to be called.
func (m *Manager) Drain(ctx context.Context) {
	// Responses written from now on say Connection: close. Shutdown (run
	// below in its own goroutine) would too, but only once it has run: a
	// request in flight could be answered before that and keep its
	// connection. Set before the listeners close, so whoever sees them
	// refuse connections also sees keep-alives off.
	m.srv.SetKeepAlivesEnabled(false)
	m.mu.Lock()
	m.stopped = true
	for addr, b := range m.bound {
		b.ln.Close()
		delete(m.bound, addr)
	}
	m.mu.Unlock()
	m.queue.Close()

	m.http.mu.Lock()
	m.http.init()
	m.http.draining = true
	conns := make([]*serverConn, 0, len(m.http.conns))
	for sc := range m.http.conns {
		conns = append(conns, sc)
	}
	m.http.mu.Unlock()
	for _, sc := range conns {
		sc.startDrain(false)
	}
	// Shutdown sends GOAWAY on HTTP/2 connections and makes HTTP/1.1
	// responses say Connection: close.
	go m.srv.Shutdown(ctx)

	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for m.openConns() > 0 {
		select {
		case <-ctx.Done():
			m.closeAll()
			return
		case <-m.http.changed:
		case <-tick.C: // tcp_proxy connections close without a signal
		}
	}
}

// openConns counts open HTTP and tcp_proxy downstream connections.
func (m *Manager) openConns() int {
	m.http.mu.Lock()
	n := len(m.http.conns)
	m.http.mu.Unlock()
	return n + int(m.TCP.CxActive.Load())
}

// closeAll closes every open connection.
func (m *Manager) closeAll() {
	m.http.mu.Lock()
	conns := make([]*serverConn, 0, len(m.http.conns))
	for sc := range m.http.conns {
		conns = append(conns, sc)
	}
	m.http.mu.Unlock()
	for _, sc := range conns {
		sc.Close()
	}
	m.tcpMu.Lock()
	for c := range m.tcpConns {
		c.Close()
	}
	m.tcpMu.Unlock()
}

// Draining reports whether Drain has been called.
func (m *Manager) Draining() bool {
	m.http.mu.Lock()
	defer m.http.mu.Unlock()
	return m.http.draining
}

// listenerRemoved reports whether all has no listener called name.
func (m *Manager) listenerRemoved(all map[string]*Listener, name string) bool {
	for _, l := range all {
		if l.Name == name {
			return false
		}
	}
	return true
}

// drainTCP lets a tcp_proxy connection of a removed listener run for the
// drain duration, then closes it (Envoy closes them when the drain ends).
func (m *Manager) drainTCP(c net.Conn, listener string) {
	if _, loaded := m.tcpDraining.LoadOrStore(c, true); loaded {
		return
	}
	m.log.Debug("listener removed; draining TCP connection", "listener", listener)
	time.AfterFunc(m.drainTimeout(), func() {
		c.Close()
		m.tcpDraining.Delete(c)
	})
}

func (m *Manager) drainTimeout() time.Duration {
	if m.DrainTimeout > 0 {
		return m.DrainTimeout
	}
	return defaultDrainTimeout
}
