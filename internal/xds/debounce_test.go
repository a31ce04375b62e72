package xds_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/xds"
	"github.com/weftmesh/weft/internal/xds/loadtest"
)

// TestDebounceCoalesces sends a burst of changes with a quiet period so
// long that only the maximum delay can end it: the burst becomes one push,
// carrying the last state.
func TestDebounceCoalesces(t *testing.T) {
	store := model.NewStore()
	store.Update(loadtest.Mesh("test", 5, 1, 0))
	reg := prometheus.NewRegistry()
	srv := xds.New(xds.Options{Generator: loadtest.Generator, Store: store, Debounce: time.Hour, DebounceMax: 300 * time.Millisecond,
		Registerer: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, lis) }()
	defer func() { cancel(); <-done }()
	e := &env{t: t, store: store, srv: srv, reg: reg}
	e.conn = dial(t, lis.Addr().String())
	node := loadtest.Node(0)
	c := e.connect(node, false, nil)
	waitFor(t, "sync", func() bool { return e.synced(node.Id, 1) })

	var last *model.Snapshot
	for g := 1; g <= 10; g++ {
		last = store.Update(loadtest.Mesh("test", 5, 1, g))
	}
	waitFor(t, "sync after burst", func() bool { return e.synced(node.Id, last.Version) })
	if got := metric(t, reg, "weft_xds_push_triggers_total", ""); got != 1 {
		t.Errorf("%v pushes for a burst of 10 changes, want 1", got)
	}
	if got := c.counts()["eds"]; got != 2 {
		t.Errorf("%d EDS responses, want 2 (initial and one for the burst)", got)
	}
	if got := metric(t, reg, "pilot_debounce_time", ""); got != 1 {
		t.Errorf("pilot_debounce_time has %v observations, want 1", got)
	}
}
