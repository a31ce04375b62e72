package listener

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/weftmesh/weft/internal/proxy/httpproxy"
)

// ForwardHandler serves HTTP forward-proxy requests (absolute-form
// targets sent by clients using HTTP_PROXY): the target's port selects the
// listener, as the original destination would, and its HTTP filter chain
// routes by Host.
func (m *Manager) ForwardHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodConnect {
			m.connect(w, r)
			return
		}
		if !r.URL.IsAbs() || r.URL.Scheme != "http" {
			http.Error(w, "forward proxy: absolute http:// target required", http.StatusBadRequest)
			return
		}
		port := r.URL.Port()
		if port == "" {
			port = "80"
		}
		p, err := strconv.Atoi(port)
		if err != nil || p <= 0 || p > 65535 {
			http.Error(w, "forward proxy: bad port", http.StatusBadRequest)
			return
		}
		host := r.URL.Hostname()
		l := m.lookupVirtual(net.JoinHostPort(host, port))
		if l == nil {
			l = (*m.all.Load())[":"+port]
		}
		if l == nil {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		facts := connFacts{in: inspected{transport: "raw_buffer", httpProto: "http/1.1"}}
		if a, err := netip.ParseAddr(host); err == nil {
			facts.local = netip.AddrPortFrom(a, uint16(p))
		} else {
			facts.local = netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(p))
		}
		facts.remote, _ = netip.ParseAddrPort(r.RemoteAddr)
		chain := l.selectChain(&facts)
		if chain == nil || chain.HTTP == nil {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		// Strip proxy-only headers; keep the URL so routing sees the target.
		r.Header.Del("Proxy-Connection")
		r.Header.Del("Proxy-Authorization")
		if strings.Contains(r.Host, "@") {
			http.Error(w, "forward proxy: userinfo not allowed", http.StatusBadRequest)
			return
		}
		ci := &httpproxy.ConnInfo{Listener: l.Name, RemoteAddr: r.RemoteAddr, LocalAddr: facts.local.String(), OriginalDst: net.JoinHostPort(host, port)}
		chain.HTTP.ServeHTTP(w, r.WithContext(httpproxy.WithConnInfo(r.Context(), ci)))
	})
}

// tunnelConn is a CONNECT tunnel's client side; target is the requested
// host:port, used as the original destination.
type tunnelConn struct {
	net.Conn
	target string
}

// connect serves CONNECT host:port (HTTPS_PROXY clients): the tunnel is
// handled like an intercepted connection to host:port, through the
// use_original_dst listener (virtualOutbound) if there is one, else the
// listener for the port.
func (m *Manager) connect(w http.ResponseWriter, r *http.Request) {
	target := r.Host
	if _, _, err := net.SplitHostPort(target); err != nil {
		http.Error(w, "forward proxy: CONNECT needs host:port", http.StatusBadRequest)
		return
	}
	var l *Listener
	all := *m.all.Load()
	for _, c := range all {
		if c.UseOriginalDst && (l == nil || c.Name < l.Name) {
			l = c
		}
	}
	if l == nil {
		l = m.lookupVirtual(target)
	}
	if l == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	if _, err := c.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		c.Close()
		return
	}
	var conn net.Conn = c
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		conn = &peekConn{Conn: c, buf: append([]byte(nil), b...)}
	}
	m.serveConn(&tunnelConn{Conn: conn, target: target}, l)
}
