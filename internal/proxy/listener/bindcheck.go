package listener

import (
	"fmt"
	"net"
	"net/netip"
)

// BindError is a listener whose address cannot be bound. Like Envoy,
// which binds a listener's socket while handling the LDS update, the
// proxy NACKs the update that brought it.
type BindError struct {
	// Listener is the listener's name, Addr its configured address.
	Listener, Addr string
	Err            error
}

// Error names the listener, the address and the cause.
func (e *BindError) Error() string {
	return fmt.Sprintf("listener %s: cannot bind '%s': %v", e.Listener, e.Addr, e.Err)
}

// Unwrap returns the bind error.
func (e *BindError) Unwrap() error { return e.Err }

// CheckBind reports whether l's address could be bound now: nil for a
// listener that does not bind, or whose address this manager already
// serves. Otherwise it binds the address once and releases it at once,
// so that a listener which cannot be bound (address in use, address not
// local, bad port) is rejected before its update is applied. A port
// this manager holds on another address is left to Apply, which releases
// removed addresses before it binds new ones.
func (m *Manager) CheckBind(l *Listener) error {
	if l == nil || !l.BindToPort {
		return nil
	}
	ap, perr := netip.ParseAddrPort(l.Addr)
	m.mu.Lock()
	_, held := m.bound[l.Addr]
	if !held && perr == nil && ap.Port() != 0 {
		for addr := range m.bound {
			if b, err := netip.ParseAddrPort(addr); err == nil && b.Port() == ap.Port() {
				held = true
				break
			}
		}
	}
	listen := m.Listen
	m.mu.Unlock()
	if held {
		return nil
	}
	if listen == nil {
		listen = net.Listen
	}
	ln, err := listen("tcp", l.Addr)
	if err != nil {
		return &BindError{Listener: l.Name, Addr: l.Addr, Err: bindCause(err)}
	}
	ln.Close()
	return nil
}

// bindCause strips net.OpError's "listen tcp addr:" prefix, which the
// BindError already says.
func bindCause(err error) error {
	if oe, ok := err.(*net.OpError); ok && oe.Err != nil {
		return oe.Err
	}
	return err
}
