package listener

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// idleChunk bounds one spliced copy so that activity is noticed while a
// connection streams.
const idleChunk = 1 << 20

// errIdle ends a tcp_proxy copy closed by the idle timeout.
var errIdle = errors.New("tcp_proxy idle timeout")

// idleTracker enforces tcp_proxy's idle_timeout on a pair of
// connections: both copy directions share the time of the last byte
// moved; a direction whose read deadline passes with no activity in
// either direction for the timeout closes both connections. Copies stay
// spliced (TCPConn.ReadFrom accepts an *io.LimitedReader).
type idleTracker struct {
	timeout time.Duration
	a, b    net.Conn
	stats   *TCPStats
	last    atomic.Int64 // unix nanoseconds of the last activity
	once    sync.Once
}

func newIdleTracker(timeout time.Duration, a, b net.Conn, stats *TCPStats) *idleTracker {
	t := &idleTracker{timeout: timeout, a: a, b: b, stats: stats}
	t.last.Store(time.Now().UnixNano())
	return t
}

// copy copies src to dst until EOF, an error or the idle timeout.
func (t *idleTracker) copy(dst, src net.Conn) (int64, error) {
	if t.timeout <= 0 {
		return io.Copy(dst, src)
	}
	var total int64
	for {
		deadline := time.Unix(0, t.last.Load()).Add(t.timeout)
		src.SetReadDeadline(deadline)
		n, err := io.Copy(dst, &io.LimitedReader{R: src, N: idleChunk})
		total += n
		if n > 0 {
			t.last.Store(time.Now().UnixNano())
		}
		switch {
		case err == nil && n < idleChunk:
			return total, nil // EOF
		case err == nil:
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			if n == 0 && time.Since(time.Unix(0, t.last.Load())) >= t.timeout {
				t.expire()
				return total, errIdle
			}
		default:
			return total, err
		}
	}
}

// expire closes both connections once.
func (t *idleTracker) expire() {
	t.once.Do(func() {
		t.stats.IdleTimeout.Add(1)
		t.a.Close()
		t.b.Close()
	})
}
