// Package testport hands out TCP ports for servers a test starts and binds
// later (weftd, weft-proxy, backends). Two things can take a port before
// it is bound:
//
//   - the test itself: asking the kernel for port 0 twice may return the
//     same port (a proxy's admin, ready, stats and forward ports are four
//     such picks; about 1 proxy in 1500 got a duplicate and exited with
//     "address already in use");
//   - any process's outgoing connection, whose local port comes from the
//     same ephemeral range (CI runs packages in parallel, with thousands
//     of loopback connections).
//
// Free avoids both: it picks from below the ephemeral range, where
// neither port 0 nor connect() allocate, and never hands out a port twice
// in this test binary.
package testport

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// MinPort is the lowest port Free hands out.
const MinPort = 20000

var ports struct {
	mu    sync.Mutex
	given map[int]bool
	// max is one past the highest port handed out: the first port of the
	// ephemeral range (0 until read).
	max int
}

// Free returns a TCP port free on host, below the kernel's ephemeral
// range and not returned before by this test binary.
func Free(t testing.TB, host string) int {
	t.Helper()
	ports.mu.Lock()
	if ports.given == nil {
		ports.given = map[int]bool{}
		ports.max = EphemeralLow()
	}
	hi := ports.max
	ports.mu.Unlock()
	if hi-MinPort < 1000 {
		return kernelPort(t, host)
	}
	for range 1000 {
		p := MinPort + rand.IntN(hi-MinPort)
		ports.mu.Lock()
		taken := ports.given[p]
		ports.given[p] = true
		ports.mu.Unlock()
		if taken {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			continue // some other process's
		}
		l.Close()
		return p
	}
	t.Fatalf("no free port on %s in [%d, %d)", host, MinPort, hi)
	return 0
}

// kernelPort is the fallback when the ephemeral range leaves too little
// room below it: a port-0 pick, retried while it repeats one handed out.
func kernelPort(t testing.TB, host string) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatalf("free port on %s: %v", host, err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		ports.mu.Lock()
		taken := ports.given[p]
		ports.given[p] = true
		ports.mu.Unlock()
		if !taken {
			return p
		}
	}
	t.Fatalf("no new free port on %s", host)
	return 0
}

// EphemeralLow is the first port of Linux's ephemeral range (0 when it
// cannot be read, e.g. on other systems).
func EphemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil {
		return 0
	}
	return lo
}
