package xds_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/translate"
	"github.com/weftmesh/weft/internal/xds"
	"github.com/weftmesh/weft/internal/xds/loadtest"
)

// TestPushThrottle runs the initial configuration and an endpoint change
// for 30 proxies with room for only two unacknowledged pushes: tokens
// come back with the acknowledgements, so every proxy converges, and
// well before the throttle's timeout would free them.
func TestPushThrottle(t *testing.T) {
	for _, delta := range []bool{false, true} {
		store := model.NewStore()
		store.Update(loadtest.Mesh("t", 20, 2, 0))
		srv := xds.New(xds.Options{
			Generator: translate.NewCache().Generate, Store: store, Debounce: time.Millisecond,
			PushThrottle: 2, PushThrottleTimeout: time.Minute,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx, lis) }()
		res, err := loadtest.Run(ctx, loadtest.Config{Target: lis.Addr().String(), Clients: 30, Delta: delta, Settle: 200 * time.Millisecond, Timeout: 30 * time.Second},
			func(context.Context) error { store.Update(loadtest.Mesh("t", 20, 2, 1)); return nil })
		cancel()
		if rerr := <-done; rerr != nil {
			t.Errorf("Run: %v", rerr)
		}
		if err != nil {
			t.Fatalf("delta=%v: %v", delta, err)
		}
		if res.Updated != 30 {
			t.Errorf("delta=%v: %d of 30 proxies received the change", delta, res.Updated)
		}
	}
}
