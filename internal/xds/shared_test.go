package xds

import (
	"testing"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/translate"
	"github.com/weftmesh/weft/internal/xds/loadtest"
)

// TestBuiltMemo checks that one generated configuration is built once per
// model version, that distinct ones are built apart, and that a newer
// version or an older caller never gets another version's entry.
func TestBuiltMemo(t *testing.T) {
	snap := model.NewStore().Update(loadtest.Mesh("t", 5, 2, 0))
	a := loadtest.Generator(snap, &model.Proxy{ID: "a", Namespace: "ns-0"})
	b := loadtest.Generator(snap, &model.Proxy{ID: "b", Namespace: "ns-0"})
	var m builtMemo
	var enc encodingMemo
	pa, err := m.build(2, a, &enc)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := m.build(2, a, &enc); again != pa {
		t.Error("the same configuration was built twice for one model version")
	}
	pb, _ := m.build(2, b, &enc)
	if pb == pa {
		t.Error("two distinct configurations share one snapshot")
	}
	if !mapsEqualStr(pa.versions, pb.versions) {
		t.Errorf("equal content, different versions: %v, %v", pa.versions, pb.versions)
	}
	if old, _ := m.build(1, a, &enc); old == pa {
		t.Error("an older model version got the newer version's entry")
	}
	if next, _ := m.build(3, a, &enc); next == pa {
		t.Error("a newer model version reused the previous version's entry")
	}
	if p, err := m.build(3, nil, &enc); err != nil || p == nil {
		t.Errorf("nil configuration: %v, %v", p, err)
	}
}

func mapsEqualStr(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestSharedGenerationMatchesPlain checks that the snapshot a proxy gets
// through the translator's shared generation and the built memo has the
// versions of its own, unshared, translation.
func TestSharedGenerationMatchesPlain(t *testing.T) {
	store := model.NewStore()
	snaps := []*model.Snapshot{store.Update(loadtest.Mesh("t", 30, 2, 0)), store.Update(loadtest.Mesh("t", 30, 2, 1)), store.Update(loadtest.Mesh("t", 31, 2, 1))}
	c := translate.NewCache()
	var m builtMemo
	var enc encodingMemo
	for _, snap := range snaps {
		byNS := map[string]*proxySnapshot{}
		for i := range 12 {
			p, err := ProxyFromNode(loadtest.Node(i))
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.build(snap.Version, c.Generate(snap, p), &enc)
			if err != nil {
				t.Fatal(err)
			}
			want, err := buildSnapshot(translate.Generate(snap, p), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !mapsEqualStr(got.versions, want.versions) {
				t.Errorf("model %d, proxy %d: shared versions %v, own %v", snap.Version, i, got.versions, want.versions)
			}
			if first, ok := byNS[p.Namespace]; ok && first != got {
				t.Errorf("model %d, proxy %d: sidecars of namespace %s do not share their snapshot", snap.Version, i, p.Namespace)
			}
			byNS[p.Namespace] = got
		}
	}
}
