package xds

import (
	"testing"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/translate"
	"github.com/weftmesh/weft/internal/xds/loadtest"
)

// benchPush measures one push of a 1000-service mesh to 100 sidecars in
// ten namespaces (the load test's proxies): generation and snapshot
// building, alternating between two endpoint generations so that every
// iteration is a new model version.
func benchPush(b *testing.B, shared bool) {
	store := model.NewStore()
	snaps := []*model.Snapshot{store.Update(loadtest.Mesh("b", 1000, 2, 0)), store.Update(loadtest.Mesh("b", 1000, 2, 1))}
	var proxies []*model.Proxy
	for i := range 100 {
		p, err := ProxyFromNode(loadtest.Node(i))
		if err != nil {
			b.Fatal(err)
		}
		proxies = append(proxies, p)
	}
	c := translate.NewCache()
	var built builtMemo
	var enc encodingMemo
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		snap := snaps[i%2]
		version := uint64(i + 1) // a new model version per push
		for _, p := range proxies {
			var err error
			if shared {
				_, err = built.build(version, c.Generate(snap, p), &enc)
			} else {
				_, err = buildSnapshot(translate.Generate(snap, p), &enc)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		if shared {
			c = translate.NewCache() // the next push regenerates, as after a real change
		}
	}
}

// BenchmarkPush100Shared is a push through the translator's cache and the
// built memo, as the server does.
func BenchmarkPush100Shared(b *testing.B) { benchPush(b, true) }

// BenchmarkPush100Plain is the same push generating and building every
// proxy on its own, as before proxies shared work.
func BenchmarkPush100Plain(b *testing.B) { benchPush(b, false) }
