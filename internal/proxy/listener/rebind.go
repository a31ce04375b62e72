package listener

import (
	"net"
	"net/http"

	"github.com/weftmesh/weft/internal/proxy/httpproxy"
)

// Configuration changes reach established HTTP connections: a request is
// served by the current filter chain of the same name on the connection's
// listener (so an updated AuthorizationPolicy or route applies to
// keep-alive connections at once, where Envoy drains them), and a request
// whose chain is gone or no longer fits the connection (a plain-text
// connection whose chain PeerAuthentication STRICT removed) is aborted,
// which closes an HTTP/1.1 connection and resets an h2 stream.

// binding is the chain a connection resolved against one listener set.
type binding struct {
	all   *map[string]*Listener
	chain *Chain
}

// currentChain returns the chain that serves sc's next request, or nil
// when the connection's chain no longer exists.
func (m *Manager) currentChain(sc *serverConn) *Chain {
	all := m.all.Load()
	if b := sc.bound.Load(); b != nil && b.all == all {
		return b.chain
	}
	chain := sc.chain
	if sc.chain.Name != "" {
		chain = nil
		for _, l := range *all {
			if l.Name != sc.info.Listener {
				continue
			}
			fits := func(c *Chain) bool {
				return c != nil && c.Name == sc.chain.Name && (c.TLS != nil) == (sc.chain.TLS != nil) && c.HTTP != nil
			}
			for _, c := range l.Chains {
				if fits(c) {
					chain = c
				}
			}
			if fits(l.Default) {
				chain = l.Default
			}
			break
		}
	}
	sc.bound.Store(&binding{all: all, chain: chain})
	return chain
}

// serveCurrent serves r with the connection's current chain.
func (m *Manager) serveCurrent(sc *serverConn, w http.ResponseWriter, r *http.Request) {
	chain := m.currentChain(sc)
	if chain == nil {
		m.log.Debug("filter chain removed by a configuration change; aborting request", "listener", sc.info.Listener, "chain", sc.chain.Name, "remote", sc.info.RemoteAddr)
		panic(http.ErrAbortHandler)
	}
	chain.HTTP.ServeHTTP(w, r)
}

// tcpBinding is what a tcp_proxy connection was accepted under.
type tcpBinding struct {
	listener, chain string
	tls             bool
}

// proxyTCP runs tcp_proxy for a connection of chain, registered so that a
// configuration removing the chain closes it (dropStaleTCP).
func (m *Manager) proxyTCP(conn, raw net.Conn, chain *Chain, info *httpproxy.ConnInfo) {
	// Unnamed chains are tracked too, so that removing their listener
	// drains them (drain.go).
	m.tcpBound.Store(raw, tcpBinding{listener: info.Listener, chain: chain.Name, tls: chain.TLS != nil})
	defer m.tcpBound.Delete(raw)
	m.tcpProxy(conn, raw, chain.TCP, info)
}

// dropStaleTCP closes tcp_proxy connections whose chain the new listener
// set no longer has (or has with another transport): for instance plain
// text after PeerAuthentication switched the port to STRICT.
func (m *Manager) dropStaleTCP(all map[string]*Listener) {
	m.tcpBound.Range(func(k, v any) bool {
		b := v.(tcpBinding)
		for _, l := range all {
			if l.Name != b.listener {
				continue
			}
			for _, c := range l.Chains {
				if c.Name == b.chain && (c.TLS != nil) == b.tls && c.TCP != nil {
					return true
				}
			}
			if c := l.Default; c != nil && c.Name == b.chain && (c.TLS != nil) == b.tls && c.TCP != nil {
				return true
			}
		}
		if m.listenerRemoved(all, b.listener) {
			m.drainTCP(k.(net.Conn), b.listener)
			return true
		}
		if b.chain == "" {
			return true // an unnamed chain cannot be matched by name; it lives as long as its listener
		}
		m.log.Debug("filter chain removed by a configuration change; closing TCP connection", "listener", b.listener, "chain", b.chain)
		go k.(net.Conn).Close() // a TLS close_notify may block; not under the manager lock
		return true
	})
}
