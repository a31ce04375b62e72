package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/weftmesh/weft/internal/proxy/httpproxy"
	"github.com/weftmesh/weft/internal/proxy/upstream"
)

// ClusterSource gives tcp_proxy the current clusters.
type ClusterSource interface {
	Cluster(name string) *upstream.Cluster
}

// TCPObserver receives tcp_proxy connection events.
type TCPObserver interface {
	TCPOpened(cluster string, host *upstream.Host, conn *httpproxy.ConnInfo)
	// TCPClosed reports bytes sent to and received from the downstream.
	TCPClosed(cluster string, host *upstream.Host, conn *httpproxy.ConnInfo, flags string, sent, received int64)
}

// TCPStats are tcp_proxy counters.
type TCPStats struct {
	CxTotal, CxActive, BytesSent, BytesReceived, NoRoute, ConnectFail atomic.Int64
	// IdleTimeout counts connections closed by the idle timeout.
	IdleTimeout atomic.Int64
}

// Manager binds listeners and serves their connections. Apply swaps the
// configuration; Stop closes everything.
type Manager struct {
	log      *slog.Logger
	clusters ClusterSource
	// TCP are the tcp_proxy counters.
	TCP TCPStats
	// TCPObserver, when set, is told about tcp_proxy connections (Istio
	// TCP metrics). Set it before the first Apply.
	TCPObserver TCPObserver
	// Listen binds listener sockets; nil means net.Listen. Set it before
	// the first Apply (tests use it to bind inside a network namespace).
	Listen func(network, addr string) (net.Listener, error)
	// DrainTimeout bounds how long connections of a listener removed by
	// a configuration change may finish their requests (default 5s).
	DrainTimeout time.Duration

	srv   *http.Server
	queue *connQueue

	mu      sync.Mutex // guards bound and stopped; not used per request
	bound   map[string]*boundListener
	stopped bool
	// all maps "ip:port" and ":port" to listeners, for original-dst dispatch.
	all atomic.Pointer[map[string]*Listener]

	tcpMu    sync.Mutex
	tcpConns map[net.Conn]struct{}
	// tcpBound maps tcp_proxy connections to their chain (rebind.go).
	tcpBound sync.Map
	wg       sync.WaitGroup
	// http tracks HTTP connections for draining (drain.go).
	http httpConns
	// tcpDraining are tcp_proxy connections of removed listeners
	// (drain.go).
	tcpDraining sync.Map
}

type boundListener struct {
	ln  net.Listener
	cfg atomic.Pointer[Listener]
}

type ctxKey struct{}

// serverConn carries a connection's chain to the shared HTTP server.
type serverConn struct {
	net.Conn
	chain *Chain
	info  *httpproxy.ConnInfo
	// bound is the chain current for the latest listener set (rebind.go).
	bound atomic.Pointer[binding]
	// drain is the connection's draining state (drain.go).
	drain connDrain
}

// NewManager returns a manager serving HTTP through one shared server
// (HTTP/1.1, h2c with prior knowledge or Upgrade, h2 over TLS).
func NewManager(clusters ClusterSource, log *slog.Logger) *Manager {
	m := &Manager{log: log, clusters: clusters, bound: map[string]*boundListener{}, tcpConns: map[net.Conn]struct{}{}}
	empty := map[string]*Listener{}
	m.all.Store(&empty)
	m.queue = newConnQueue()
	// 1000 concurrent streams per connection: ample for multiplexing, and
	// a bounded number keeps a flood of streams from one client cheap.
	h2s := &http2.Server{IdleTimeout: time.Hour, MaxConcurrentStreams: 1000}
	dispatch := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sc, _ := r.Context().Value(ctxKey{}).(*serverConn)
		if sc == nil || sc.chain.HTTP == nil {
			http.Error(w, "no filter chain", http.StatusInternalServerError)
			return
		}
		m.serveDraining(sc, w, r)
	})
	m.srv = &http.Server{
		Handler:           h2c.NewHandler(dispatch, h2s),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       time.Hour,
		MaxHeaderBytes:    60 << 10, // Envoy's max_request_headers_kb default
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ConnState:         m.connState,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(*tls.Conn); ok {
				c = tc.NetConn()
			}
			sc, ok := c.(*serverConn)
			if !ok {
				return ctx
			}
			ctx = context.WithValue(ctx, ctxKey{}, sc)
			return httpproxy.WithConnInfo(ctx, sc.info)
		},
	}
	http2.ConfigureServer(m.srv, h2s)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.srv.Serve(m.queue)
	}()
	return m
}

// Apply installs listeners: new addresses are bound, existing ones get
// the new config for new connections, missing ones are closed. Binding
// errors are returned after everything else has been applied.
func (m *Manager) Apply(ls []*Listener) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return errors.New("listener manager stopped")
	}
	all := map[string]*Listener{}
	want := map[string]*Listener{}
	for _, l := range ls {
		all[l.Addr] = l
		ap, err := netip.ParseAddrPort(l.Addr)
		if err == nil && ap.Addr().IsUnspecified() {
			all[":"+itoa(l.Port)] = l
		}
		if l.BindToPort {
			want[l.Addr] = l
		}
	}
	m.all.Store(&all)
	m.drainRemoved(all)
	m.dropStaleTCP(all)
	var errs []error
	for addr, b := range m.bound {
		if l, ok := want[addr]; ok {
			b.cfg.Store(l)
			continue
		}
		b.ln.Close()
		delete(m.bound, addr)
	}
	for addr, l := range want {
		if _, ok := m.bound[addr]; ok {
			continue
		}
		listen := m.Listen
		if listen == nil {
			listen = net.Listen
		}
		ln, err := listen("tcp", addr)
		if err != nil {
			errs = append(errs, &BindError{Listener: l.Name, Addr: addr, Err: bindCause(err)})
			continue
		}
		b := &boundListener{ln: ln}
		b.cfg.Store(l)
		m.bound[addr] = b
		m.wg.Add(1)
		go m.accept(b)
	}
	return errors.Join(errs...)
}

// Addr returns the bound address of the listener configured for addr
// (useful with port 0 in tests), or "".
func (m *Manager) Addr(configured string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if b, ok := m.bound[configured]; ok {
		return b.ln.Addr().String()
	}
	return ""
}

// Stop closes all listeners and connections, letting HTTP requests
// finish until ctx is done.
func (m *Manager) Stop(ctx context.Context) {
	m.mu.Lock()
	m.stopped = true
	for addr, b := range m.bound {
		b.ln.Close()
		delete(m.bound, addr)
	}
	m.mu.Unlock()
	m.queue.Close()
	m.srv.Shutdown(ctx)
	m.srv.Close()
	m.tcpMu.Lock()
	for c := range m.tcpConns {
		c.Close()
	}
	m.tcpMu.Unlock()
	m.wg.Wait()
}

func (m *Manager) accept(b *boundListener) {
	defer m.wg.Done()
	var delay time.Duration
	for {
		c, err := b.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(delay*2, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return
		}
		delay = 0
		go m.serveConn(c, b.cfg.Load())
	}
}

// ServeConn serves a connection accepted elsewhere (the forward proxy
// port) as if it arrived on l.
func (m *Manager) ServeConn(c net.Conn, l *Listener) { m.serveConn(c, l) }

func (m *Manager) serveConn(c net.Conn, l *Listener) {
	info := &httpproxy.ConnInfo{Listener: l.Name, RemoteAddr: c.RemoteAddr().String(), LocalAddr: c.LocalAddr().String()}
	od := ""
	if t, ok := c.(*tunnelConn); ok {
		od = t.target // forward-proxy CONNECT: the target plays the original destination
	} else if l.UseOriginalDst || l.originalDstFilter {
		od = originalDst(c)
	}
	{
		if od != "" {
			info.OriginalDst = od
			info.LocalAddr = od
			if l.UseOriginalDst {
				if t := m.lookupVirtual(od); t != nil && t != l {
					l = t // hand off, like Envoy's use_original_dst
					info.Listener = l.Name
				}
			}
		}
	}
	var in inspected
	conn := c
	if l.inspectTLS || l.inspectHTTP {
		var err error
		conn, in, err = inspect(c, l.inspectTLS, l.inspectHTTP, l.inspectTimeout)
		if err != nil && !l.continueOnTimeout {
			c.Close()
			return
		}
	}
	facts := connFacts{in: in}
	info.ServerName = in.serverName // SNI seen by tls_inspector (access logs)
	facts.local, _ = netip.ParseAddrPort(info.LocalAddr)
	if !facts.local.IsValid() { // a host name target: match by port
		if _, p, err := net.SplitHostPort(info.LocalAddr); err == nil {
			if n, err := strconv.Atoi(p); err == nil {
				facts.local = netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(n))
			}
		}
	}
	facts.remote, _ = netip.ParseAddrPort(info.RemoteAddr)
	chain := l.selectChain(&facts)
	if chain == nil {
		c.Close()
		return
	}
	if chain.TLS == nil {
		if ok, details := chain.connAllowed(&facts, nil); !ok {
			m.denied(c, chain, info, details)
			return
		}
	}
	if chain.TCP != nil {
		if chain.TLS != nil {
			tc, err := terminateTLS(conn, chain, info)
			if err != nil {
				m.log.Debug("downstream TLS handshake", "listener", l.Name, "remote", info.RemoteAddr, "err", err)
				c.Close()
				return
			}
			st := tc.ConnectionState()
			if ok, details := chain.connAllowed(&facts, &st); !ok {
				m.denied(tc, chain, info, details)
				return
			}
			conn, raw := net.Conn(tc), net.Conn(tc)
			if negotiatedExchange(tc) {
				conn, raw, info.DownstreamPeer = exchangeDownstream(tc, chain.TCP.exchange)
			}
			m.proxyTCP(conn, raw, chain, info)
			return
		}
		m.proxyTCP(conn, c, chain, info)
		return
	}
	if chain.TLS == nil {
		conn = &strictConn{Conn: conn}
	}
	sc := &serverConn{Conn: conn, chain: chain, info: info}
	var hc net.Conn = sc
	if chain.TLS != nil {
		tc, err := terminateTLS(hc, chain, info)
		if err != nil {
			m.log.Debug("downstream TLS handshake", "listener", l.Name, "remote", info.RemoteAddr, "err", err)
			c.Close()
			return
		}
		st := tc.ConnectionState()
		if ok, details := chain.connAllowed(&facts, &st); !ok {
			m.denied(tc, chain, info, details)
			return
		}
		hc = tc
	}
	m.trackHTTP(sc)
	if !m.queue.Push(hc) {
		sc.Close()
		c.Close()
	}
}

func (m *Manager) lookupVirtual(od string) *Listener {
	all := *m.all.Load()
	if l, ok := all[od]; ok {
		return l
	}
	_, port, err := net.SplitHostPort(od)
	if err != nil {
		return nil
	}
	return all[":"+port]
}

// tcpProxy connects to the chain's cluster and copies both ways. raw is
// the accepted connection (for splice), conn may replay inspected bytes.
func (m *Manager) tcpProxy(conn, raw net.Conn, tp *TCPProxy, info *httpproxy.ConnInfo) {
	m.TCP.CxTotal.Add(1)
	m.TCP.CxActive.Add(1)
	defer m.TCP.CxActive.Add(-1)
	m.trackTCP(raw, true)
	defer m.trackTCP(raw, false)
	defer raw.Close()

	name := tp.Clusters[0].Name
	if len(tp.Clusters) > 1 {
		n := rand.Uint32N(tp.total)
		for _, w := range tp.Clusters {
			if n < w.Weight {
				name = w.Name
				break
			}
			n -= w.Weight
		}
	}
	cl := m.clusters.Cluster(name)
	if cl == nil {
		m.TCP.NoRoute.Add(1)
		return
	}
	obs := m.TCPObserver
	host := cl.Pick(info.OriginalDst, 0, false, nil)
	if host == nil {
		if obs != nil {
			obs.TCPOpened(name, nil, info)
			obs.TCPClosed(name, nil, info, "UH", 0, 0)
		}
		return
	}
	if obs != nil {
		obs.TCPOpened(name, host, info)
	}
	dctx, cancel := context.WithTimeout(context.Background(), cl.ConnectTimeout)
	up, err := cl.DialHost(dctx, host)
	cancel()
	if err != nil {
		m.TCP.ConnectFail.Add(1)
		cl.Record(host, 0)
		if obs != nil {
			obs.TCPClosed(name, host, info, "UF", 0, 0)
		}
		return
	}
	cl.Stats.CxTotal.Add(1)
	m.trackTCP(up, true)
	defer m.trackTCP(up, false)
	defer up.Close()
	// upR is what the upstream is read from: up, or a reader stripping
	// the server's late exchange frame.
	upR := up
	var early int64 // server bytes read during the exchange
	if negotiatedExchange(up) {
		var rest []byte
		upR, info.UpstreamPeer, rest = exchangeUpstream(up, tp.exchange)
		if len(rest) > 0 {
			w, err := raw.Write(rest)
			early = int64(w)
			if err != nil {
				if obs != nil {
					obs.TCPClosed(name, host, info, httpproxy.FlagDownstreamCancel, early, 0)
				}
				return
			}
		}
	}
	// Bytes read while inspecting the connection (sniffing, TLS
	// inspection) came from the downstream too: count them as received.
	var peeked int64
	if pc, ok := conn.(*peekConn); ok && len(pc.buf) > 0 {
		if _, err := up.Write(pc.buf); err != nil {
			if obs != nil {
				obs.TCPClosed(name, host, info, httpproxy.FlagReset, 0, 0)
			}
			return
		}
		peeked = int64(len(pc.buf))
		pc.buf = nil
	}
	done := make(chan struct{})
	var received int64
	idle := newIdleTracker(tp.IdleTimeout, raw, up, &m.TCP)
	go func() {
		n, _ := idle.copy(up, raw) // TCPConn to TCPConn: splice
		received = peeked + n
		m.TCP.BytesReceived.Add(peeked + n)
		if tc, ok := up.(interface{ CloseWrite() error }); ok {
			tc.CloseWrite()
		}
		close(done)
	}()
	n, _ := idle.copy(raw, upR)
	n += early
	m.TCP.BytesSent.Add(n)
	if tc, ok := raw.(interface{ CloseWrite() error }); ok {
		tc.CloseWrite()
	}
	<-done
	if obs != nil {
		obs.TCPClosed(name, host, info, "", n, received)
	}
}

func (m *Manager) trackTCP(c net.Conn, add bool) {
	m.tcpMu.Lock()
	if add {
		m.tcpConns[c] = struct{}{}
	} else {
		delete(m.tcpConns, c)
	}
	m.tcpMu.Unlock()
}

func itoa(n int) string {
	var b [8]byte
	i := len(b)
	if n == 0 {
		return "0"
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// connQueue is a net.Listener fed by the listeners' accept loops.
type connQueue struct {
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newConnQueue() *connQueue {
	return &connQueue{ch: make(chan net.Conn, 128), done: make(chan struct{})}
}

// Push hands c to the HTTP server; false once closed.
func (q *connQueue) Push(c net.Conn) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.done:
		return false
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.closed.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return &net.TCPAddr{} }
