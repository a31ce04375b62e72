package xdstest

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// givenPorts are the ports freePort has returned in this process.
var givenPorts struct {
	mu sync.Mutex
	m  map[int]bool
}

// freePort returns a TCP port free on 127.0.0.1 for a listener bound
// later. A port-0 pick comes from the kernel's ephemeral range, where any
// outgoing connection may take it before the listener binds (tests of
// other packages run alongside: the proxy then NACKs its listener with
// "address already in use" and never gets ready), and two picks may
// return the same port. So it picks below that range and never returns a
// port twice in one process.
func freePort(t testing.TB) int {
	t.Helper()
	givenPorts.mu.Lock()
	defer givenPorts.mu.Unlock()
	if givenPorts.m == nil {
		givenPorts.m = map[int]bool{}
	}
	lo, hi := 20000, ephemeralLow()
	for range 1000 {
		var p int
		if hi-lo >= 1000 {
			p = lo + rand.IntN(hi-lo)
		} else { // no room below the range: ask the kernel
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			p = l.Addr().(*net.TCPAddr).Port
			l.Close()
		}
		if givenPorts.m[p] {
			continue
		}
		givenPorts.m[p] = true
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p)); err == nil {
			l.Close()
			return p
		}
	}
	t.Fatal("xdstest: no free port on 127.0.0.1")
	return 0
}

// ephemeralLow is the first port of Linux's ephemeral range (0 when it
// cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	lo, _ := strconv.Atoi(f[0])
	return lo
}
