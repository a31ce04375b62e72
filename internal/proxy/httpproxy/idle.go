package httpproxy

import (
	"context"
	"io"
	"sync/atomic"
	"time"
)

// idleWatch cancels a request that makes no progress for d (Envoy's
// route idle_timeout and stream_idle_timeout, flag SI).
type idleWatch struct {
	d      time.Duration
	t      *time.Timer
	cancel context.CancelFunc
	fired  atomic.Bool
}

func newIdleWatch(ctx context.Context, d time.Duration) (context.Context, *idleWatch) {
	ctx, cancel := context.WithCancel(ctx)
	w := &idleWatch{d: d, cancel: cancel}
	w.t = time.AfterFunc(d, func() {
		w.fired.Store(true)
		cancel()
	})
	return ctx, w
}

// kick records progress.
func (w *idleWatch) kick() { w.t.Reset(w.d) }

func (w *idleWatch) stop() {
	w.t.Stop()
	w.cancel()
}

// reader kicks the watch on every read that returns data.
func (w *idleWatch) reader(r io.Reader) io.Reader { return &idleReader{r: r, w: w} }

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
