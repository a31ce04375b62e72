package listener

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// soOriginalDst is SO_ORIGINAL_DST (and IP6T_SO_ORIGINAL_DST).
const soOriginalDst = 80

// originalDst returns the pre-NAT destination of an intercepted TCP
// connection, or "" when it was not redirected.
func originalDst(c net.Conn) string {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return ""
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return ""
	}
	local, _ := netip.ParseAddrPort(c.LocalAddr().String())
	var out string
	rc.Control(func(fd uintptr) {
		if local.Addr().Is4() || local.Addr().Is4In6() {
			// sockaddr_in fits in the 20-byte IPv6Mreq.
			m, err := unix.GetsockoptIPv6Mreq(int(fd), syscall.SOL_IP, soOriginalDst)
			if err != nil {
				return
			}
			b := m.Multiaddr[:]
			port := binary.BigEndian.Uint16(b[2:4])
			ip := netip.AddrFrom4([4]byte{b[4], b[5], b[6], b[7]})
			out = netip.AddrPortFrom(ip, port).String()
			return
		}
		// sockaddr_in6 fits in the 32-byte IPv6MTUInfo.
		mi, err := unix.GetsockoptIPv6MTUInfo(int(fd), syscall.SOL_IPV6, soOriginalDst)
		if err != nil {
			return
		}
		var p [2]byte
		binary.NativeEndian.PutUint16(p[:], mi.Addr.Port) // stored in network order
		port := binary.BigEndian.Uint16(p[:])
		out = netip.AddrPortFrom(netip.AddrFrom16(mi.Addr.Addr), port).String()
	})
	if out == c.LocalAddr().String() {
		return "" // not redirected
	}
	return out
}
