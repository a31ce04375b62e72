package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/weftmesh/weft/internal/proxy/accesslog"
)

// openAccessLog opens the configured access log: "-" is stdout, "" none.
func openAccessLog(path string) (*accesslog.Logger, io.Closer, error) {
	switch path {
	case "":
		return nil, nil, nil
	case "-":
		return accesslog.New(os.Stdout, 0), nil, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("access log: %w", err)
	}
	return accesslog.New(f, 0), f, nil
}

// AccessLogDropped returns how many access log entries were dropped
// because the writer could not keep up (0 without an access log).
func (p *Proxy) AccessLogDropped() int64 {
	if p.accessLog == nil {
		return 0
	}
	return p.accessLog.Dropped()
}

// Drain stops accepting connections and lets the open ones finish their
// in-flight requests until none is left or ctx is done; readiness fails
// from the start. Run drains the same way when it ends; Drain is for
// callers (/drain_listeners, tests) that drain without exiting.
func (p *Proxy) Drain(ctx context.Context) {
	p.ready.Store(false)
	p.listeners.Drain(ctx)
}

// Draining reports whether the listeners are draining or drained.
func (p *Proxy) Draining() bool { return p.listeners.Draining() }

// drainTimeout is the configured drain duration (default 5s).
func (p *Proxy) drainTimeout() time.Duration {
	if d := time.Duration(p.cfg.DrainTimeout); d > 0 {
		return d
	}
	return 5 * time.Second
}

// drainListeners is Envoy's POST /drain_listeners: stop accepting and
// drain for the drain duration, without exiting.
func (p *Proxy) drainListeners(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST required", http.StatusMethodNotAllowed)
		return
	}
	io.WriteString(w, "OK\n")
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), p.drainTimeout())
		defer cancel()
		p.Drain(ctx)
	}()
}
