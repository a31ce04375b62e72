package xds

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/xds/loadtest"
)

// Environment of the helper process that runs BenchmarkProxyMemory's
// simulated proxies (so that their memory is not the server's).
const (
	helperAddrEnv = "WEFT_XDS_BENCH_HELPER_ADDR"
	helperNEnv    = "WEFT_XDS_BENCH_HELPER_PROXIES"
)

// BenchmarkProxyMemory serves a 1000-service mesh to N sidecars in ten
// namespaces (loadtest.Node), each on its own gRPC connection from a
// helper process, and reports the server's memory per connected proxy
// (live heap and goroutine stacks, after GC, over the server without
// proxies: B/proxy). Each iteration is an endpoint change of every
// service, timed until every proxy has acknowledged it.
func BenchmarkProxyMemory(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("proxies=%d", n), func(b *testing.B) { benchProxyMemory(b, n) })
	}
}

func benchProxyMemory(b *testing.B, n int) {
	store := model.NewStore()
	gens := []*model.SourceState{loadtest.Mesh("b", 1000, 1, 0), loadtest.Mesh("b", 1000, 1, 1)}
	store.Update(gens[0])
	s, addr := runServer(b, store, nil)
	base := liveBytes()

	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchHelperClients$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), helperAddrEnv+"="+addr, helperNEnv+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // the helper exits when it closes
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	waitSynced(b, s, n, store.Snapshot().Version)
	perProxy := float64(liveBytes()-base) / float64(n)

	for i := 0; b.Loop(); i++ {
		snap := store.Update(gens[(i+1)%2])
		waitSynced(b, s, n, snap.Version)
	}
	b.ReportMetric(perProxy, "B/proxy")
}

// liveBytes is the live heap and the goroutine stacks after a collection.
func liveBytes() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc + m.StackInuse)
}

// TestBenchHelperClients is BenchmarkProxyMemory's helper process: it
// runs the simulated proxies until its standard input closes.
func TestBenchHelperClients(t *testing.T) {
	addr := os.Getenv(helperAddrEnv)
	if addr == "" {
		t.Skip("the helper process of BenchmarkProxyMemory; runs only when started by it")
	}
	n, err := strconv.Atoi(os.Getenv(helperNEnv))
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int, n)
	for i := range ids {
		ids[i] = i
	}
	runClients(t, addr, ids)
	_, _ = io.Copy(io.Discard, os.Stdin)
}
