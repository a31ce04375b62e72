package file

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/fsnotify/fsnotify"

	"github.com/weftmesh/weft/internal/source/sourcetest"
)

// benchSource makes a source over n files of one VirtualService each and
// reads them once, without running the watch loop.
func benchSource(b *testing.B, n int) (*Source, *scanner, string) {
	b.Helper()
	dir := b.TempDir()
	for i := range n {
		write(b, filepath.Join(dir, fmt.Sprintf("d%d", i%10), fmt.Sprintf("vs%d.yaml", i)), sourcetest.VirtualService(fmt.Sprintf("vs%d", i), 1))
	}
	src, err := New(Options{Dir: dir, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { w.Close() })
	src.files = map[string]*fileState{}
	return src, &scanner{src: src, w: w, watched: map[string]bool{}}, dir
}

// BenchmarkInitialRead measures reading and decoding 500 files.
func BenchmarkInitialRead(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		src, sc, _ := benchSource(b, 500)
		b.StartTimer()
		sc.scan(nil)
		src.state()
	}
}

// BenchmarkOneFileChanged measures the work after one of 500 files
// changed: a walk with stats, one decode and a new state.
func BenchmarkOneFileChanged(b *testing.B) {
	src, sc, dir := benchSource(b, 500)
	sc.scan(nil)
	gen := 1
	for b.Loop() {
		gen++
		path := filepath.Join(dir, "d3", "vs3.yaml")
		write(b, path, sourcetest.VirtualService("vs3", gen))
		if !sc.scan(map[string]bool{path: true}) {
			b.Fatal("change not seen")
		}
		src.state()
	}
	b.ReportMetric(float64(src.Decodes()-500)/float64(b.N), "decodes/op")
}
