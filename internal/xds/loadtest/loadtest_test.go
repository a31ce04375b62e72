package loadtest_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/xds"
	"github.com/weftmesh/weft/internal/xds/loadtest"
)

// serve runs an xDS server with the fixture generator on loopback.
func serve(tb testing.TB, store *model.Store, debounce time.Duration) string {
	tb.Helper()
	srv := xds.New(xds.Options{Generator: loadtest.Generator, Store: store, Debounce: debounce,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, lis) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run: %v", err)
		}
	})
	return lis.Addr().String()
}

func TestGeneratorOutputValidates(t *testing.T) {
	store := model.NewStore()
	snap := store.Update(loadtest.Mesh("t", 30, 3, 0))
	res := loadtest.Generator(snap, &model.Proxy{ID: "p", Namespace: "ns-1"})
	if len(res.Clusters) != 30 || len(res.Endpoints) != 30 || len(res.Listeners) != 1 || len(res.Routes) != 1 {
		t.Fatalf("got %d clusters, %d assignments, %d listeners, %d routes", len(res.Clusters), len(res.Endpoints), len(res.Listeners), len(res.Routes))
	}
	type validator interface{ ValidateAll() error }
	var all []validator
	for _, r := range res.Clusters {
		all = append(all, r)
	}
	for _, r := range res.Endpoints {
		all = append(all, r)
	}
	for _, r := range res.Listeners {
		all = append(all, r)
	}
	for _, r := range res.Routes {
		all = append(all, r)
	}
	for _, r := range all {
		if err := r.ValidateAll(); err != nil {
			t.Error(err)
		}
	}
}

func TestRun(t *testing.T) {
	for _, delta := range []bool{false, true} {
		store := model.NewStore()
		store.Update(loadtest.Mesh("t", 20, 2, 0))
		addr := serve(t, store, 10*time.Millisecond)
		res, err := loadtest.Run(context.Background(), loadtest.Config{Target: addr, Clients: 10, Delta: delta, Settle: 100 * time.Millisecond},
			func(context.Context) error {
				store.Update(loadtest.Mesh("t", 20, 2, 1))
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("delta=%v: %v", delta, res)
		if res.Updated != 10 || res.Responses["eds"] != 10 || res.Responses["cds"] != 0 || res.P50 <= 0 || res.Max < res.P99 {
			t.Errorf("delta=%v: %+v", delta, res)
		}
	}
}

// cpuTime returns the CPU time the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPushFanout measures one endpoint change pushed to 200
// connected proxies (100 services, 2 endpoints each): the time from the
// store update until every proxy has received its EDS update.
func BenchmarkPushFanout(b *testing.B) {
	for _, delta := range []bool{false, true} {
		name := "sotw"
		if delta {
			name = "delta"
		}
		b.Run(name, func(b *testing.B) {
			const proxies = 200
			store := model.NewStore()
			store.Update(loadtest.Mesh("t", 100, 2, 0))
			addr := serve(b, store, time.Millisecond)
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var eds, ready atomic.Int64
			done := make(chan error, proxies)
			for i := range proxies {
				c := &loadtest.Client{Node: loadtest.Node(i), Delta: delta}
				var seen bool
				c.OnResponse = func(ev loadtest.Response) {
					if ev.TypeURL == resource.EndpointType {
						eds.Add(1)
					}
					if !seen && ev.TypeURL == resource.RouteType {
						seen = true
						ready.Add(1)
					}
				}
				go func() { done <- c.Run(ctx, conn) }()
			}
			for ready.Load() < proxies {
				time.Sleep(time.Millisecond)
			}
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := range b.N {
				want := eds.Load() + proxies
				store.Update(loadtest.Mesh("t", 100, 2, i+1))
				for eds.Load() < want {
					time.Sleep(100 * time.Microsecond)
				}
			}
			b.StopTimer()
			// The machine is shared: CPU time per push (server and
			// clients together) is steadier than wall time.
			b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(proxies), "proxies")
			cancel()
			for range proxies {
				if err := <-done; err != nil {
					b.Error(err)
				}
			}
		})
	}
}
