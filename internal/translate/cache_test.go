package translate

import (
	"bytes"
	"sync"
	"testing"

	"github.com/weftmesh/weft/internal/model"
)

// TestCacheConcurrent generates several proxies at once through one cache
// (run with -race) while the snapshot changes under it.
func TestCacheConcurrent(t *testing.T) {
	c := NewCache()
	snaps := []*model.Snapshot{loadCase(t, "jason-v2"), loadCase(t, "locality")}
	proxies := []*model.Proxy{sidecarProxy("productpage", "v1", "10.1.0.11"), localitySidecar(), sidecarProxy("reviews", "v2", "10.1.0.14")}
	want := map[[2]int][]byte{}
	for si, s := range snaps {
		for pi, p := range proxies {
			want[[2]int{si, pi}] = marshalResources(t, Generate(s, p))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 6; i++ {
				si, pi := (g+i)%len(snaps), i%len(proxies)
				if got := marshalResources(t, c.Generate(snaps[si], proxies[pi])); !bytes.Equal(got, want[[2]int{si, pi}]) {
					errs <- "cached output differs"
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
