package upstream

import "syscall"

// socketIdle peeks at the socket without blocking: an idle keep-alive
// connection has nothing to read (EAGAIN); EOF, an error or bytes mean the
// upstream closed it or broke the protocol.
func socketIdle(rc syscall.RawConn) bool {
	idle := false
	err := rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		idle = n <= 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
		return true // never wait for readiness
	})
	return err == nil && idle
}
