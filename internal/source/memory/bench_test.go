package memory

import (
	"fmt"
	"testing"

	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/source/sourcetest"
)

// BenchmarkSetOne measures replacing one object among 1000 and building
// the state a running source would deliver.
func BenchmarkSetOne(b *testing.B) {
	s := New(Options{})
	for i := range 1000 {
		if _, err := s.Apply("init.yaml", []byte(sourcetest.VirtualService(fmt.Sprintf("vs%d", i), 1))); err != nil {
			b.Fatal(err)
		}
	}
	var docs [][]byte
	for gen := range 2 {
		docs = append(docs, []byte(sourcetest.VirtualService("vs7", gen+2)))
	}
	i := 0
	for b.Loop() {
		c, _ := manifest.Decode("x.yaml", docs[i%2], DefaultName)
		if _, err := s.Set(c...); err != nil {
			b.Fatal(err)
		}
		s.mu.Lock()
		s.state()
		s.mu.Unlock()
		i++
	}
}
