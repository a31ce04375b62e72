package httpproxy

import (
	"context"
	"io"
	"sync/atomic"
	"time"
)

// idleWatch cancels a request that makes no progress for d (Envoy's
// route idle_timeout and stream_idle_timeout, flag SI). Progress only
// stores a timestamp; the timer, when it fires early, re-arms itself
// for the time left, so a streamed body costs no timer operation per
// read.
type idleWatch struct {
	d       time.Duration
	t       *time.Timer
	cancel  context.CancelFunc
	fired   atomic.Bool
	stopped atomic.Bool
	last    atomic.Int64 // monotonic nanoseconds since start of the last progress
	start   time.Time
	rd      idleReader // the response body reader (reader)
}

func newIdleWatch(ctx context.Context, d time.Duration) (context.Context, *idleWatch) {
	ctx, cancel := context.WithCancel(ctx)
	w := &idleWatch{d: d, cancel: cancel, start: time.Now()}
	// Armed only once w.t is set: check uses it.
	w.t = time.AfterFunc(time.Duration(1<<62), w.check)
	w.t.Reset(d)
	return ctx, w
}

// check runs when the timer fires: it cancels the request if nothing
// happened for d, else waits for the rest of d after the last progress.
func (w *idleWatch) check() {
	if w.stopped.Load() {
		return
	}
	idle := time.Duration(int64(time.Since(w.start)) - w.last.Load())
	if idle < w.d {
		w.t.Reset(w.d - idle)
		return
	}
	w.fired.Store(true)
	w.cancel()
}

// kick records progress.
func (w *idleWatch) kick() { w.last.Store(int64(time.Since(w.start))) }

func (w *idleWatch) stop() {
	w.stopped.Store(true)
	w.t.Stop()
	w.cancel()
}

// reader kicks the watch on every read that returns data. One watch
// has one response body, so its reader is part of the watch.
func (w *idleWatch) reader(r io.Reader) io.Reader {
	w.rd = idleReader{r: r, w: w}
	return &w.rd
}

type idleReader struct {
	r io.Reader
	w *idleWatch
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.w.kick()
	}
	return n, err
}

type idleReadCloser struct {
	idleReader
	c io.Closer
}

func (r *idleReadCloser) Close() error { return r.c.Close() }
