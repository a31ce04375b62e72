// Package sourcetest is the contract test suite every configuration source
// must pass. A source's tests call Run with a Harness that knows how to
// feed that kind of source; the suite then checks the behaviour the
// source.Source contract promises, the same way for every source.
package sourcetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/source"
)

// Harness makes backends of one source implementation.
type Harness interface {
	// New returns a new, empty backend whose source is named name.
	New(t *testing.T, name string) Backend
}

// Backend is the input of one source, organised in units: a unit holds
// YAML documents and is changed as a whole, in one step (for a file source
// a unit is a file, replaced atomically; for a memory source it is a
// transaction).
type Backend interface {
	// Source returns the source reading this backend; the suite calls it
	// once and runs the source.
	Source() source.Source
	// Write makes unit hold exactly the objects of the multi-document YAML
	// docs, as one change. The input may be invalid: that is not an error
	// of Write.
	Write(t *testing.T, unit, docs string)
	// Remove deletes unit and its objects, as one change.
	Remove(t *testing.T, unit string)
}

// WaitTimeout bounds how long the suite waits for a source to deliver an
// expected state before failing. It detects hangs; it is not a speed
// requirement.
var WaitTimeout = 20 * time.Second

// Run runs the contract tests against the source made by h.
func Run(t *testing.T, h Harness) {
	t.Run("InitialSync", func(t *testing.T) { testInitialSync(t, h) })
	t.Run("AddUpdateDelete", func(t *testing.T) { testAddUpdateDelete(t, h) })
	t.Run("UnchangedKeepPointers", func(t *testing.T) { testUnchangedKeepPointers(t, h) })
	t.Run("BrokenUpdateKeepsLastGood", func(t *testing.T) { testBrokenUpdate(t, h) })
	t.Run("BrokenFromStart", func(t *testing.T) { testBrokenFromStart(t, h) })
	t.Run("QualifiedNames", func(t *testing.T) { testQualifiedNames(t, h) })
	t.Run("AtomicMultiObject", func(t *testing.T) { testAtomicMultiObject(t, h) })
}

// VirtualService returns a valid VirtualService document for host name in
// namespace default whose route timeout is gen seconds, so that different
// gens are different contents of the same object.
func VirtualService(name string, gen int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: %s
  namespace: default
spec:
  hosts:
  - %s
  http:
  - timeout: %ds
    route:
    - destination:
        host: %s
`, name, name, gen, name)
}

// BrokenVirtualService returns a VirtualService document for name with an
// unknown spec field, which every decoder rejects naming the object.
func BrokenVirtualService(name string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: %s
  namespace: default
spec:
  hosts:
  - %s
  notAField: true
`, name, name)
}

// Docs joins YAML documents into one multi-document stream.
func Docs(docs ...string) string { return strings.Join(docs, "---\n") }

// Gen returns the gen of a VirtualService made by VirtualService, or -1.
func Gen(c *model.Config) int {
	vs, ok := c.Spec.(*networking.VirtualService)
	if !ok || len(vs.Http) == 0 || vs.Http[0].Timeout == nil {
		return -1
	}
	return int(vs.Http[0].Timeout.Seconds)
}

// Key returns the key of VirtualService default/name in source src.
func Key(src, name string) model.Key {
	return model.Key{Source: src, Kind: model.KindVirtualService, Namespace: "default", Name: name}
}

// Recorder runs a source and records the states it delivers.
type Recorder struct {
	t      testing.TB
	mu     sync.Mutex
	states []*model.SourceState
	signal chan struct{}
	next   int // index of the first state Wait has not looked at
}

// Start runs src until the test ends and records its states. The test
// fails if Run returns an error.
func Start(t testing.TB, src source.Source) *Recorder {
	r := &Recorder{t: t, signal: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, r.sink) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("source %s: Run: %v", src.Name(), err)
		}
	})
	return r
}

func (r *Recorder) sink(st *model.SourceState) {
	r.mu.Lock()
	r.states = append(r.states, st)
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

// States returns every state delivered so far.
func (r *Recorder) States() []*model.SourceState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*model.SourceState(nil), r.states...)
}

// Wait returns the first state delivered after those returned by earlier
// calls that satisfies cond, failing the test if none comes within
// WaitTimeout. what describes the awaited state in the failure message.
func (r *Recorder) Wait(what string, cond func(*model.SourceState) bool) *model.SourceState {
	r.t.Helper()
	deadline := time.NewTimer(WaitTimeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		states := r.states[r.next:]
		r.mu.Unlock()
		for _, st := range states {
			r.next++
			if cond(st) {
				return st
			}
		}
		select {
		case <-r.signal:
		case <-deadline.C:
			last := "no state at all"
			if all := r.States(); len(all) > 0 {
				last = Describe(all[len(all)-1])
			}
			r.t.Fatalf("no state with %s after %d states; last: %s", what, r.next, last)
		}
	}
}

// Describe summarises a state for failure messages.
func Describe(st *model.SourceState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "source=%s synced=%v configs=[", st.Source, st.Synced)
	for i, c := range st.Configs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s gen=%d", c.Key(), Gen(c))
	}
	b.WriteString("] diagnostics=[")
	for i, d := range st.Diagnostics {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(d.String())
	}
	b.WriteString("]")
	return b.String()
}

// Find returns the object with key k in st, or nil.
func Find(st *model.SourceState, k model.Key) *model.Config {
	for _, c := range st.Configs {
		if c.Key() == k {
			return c
		}
	}
	return nil
}

// HasGen reports whether st holds VirtualService name at gen.
func HasGen(st *model.SourceState, k model.Key, gen int) bool {
	c := Find(st, k)
	return c != nil && Gen(c) == gen
}

// NamesObject reports whether st has an error diagnostic naming the
// object with key k.
func NamesObject(st *model.SourceState, k model.Key) bool {
	for _, d := range st.Diagnostics {
		if d.Severity == model.SeverityError && d.Kind == k.Kind && d.Namespace == k.Namespace && d.Name == k.Name {
			return true
		}
	}
	return false
}

func testInitialSync(t *testing.T, h Harness) {
	b := h.New(t, "alpha")
	b.Write(t, "one", VirtualService("a", 1))
	b.Write(t, "two", Docs(VirtualService("b", 1), VirtualService("c", 1)))
	src := b.Source()
	if src.Name() != "alpha" {
		t.Errorf("Name() = %q, want alpha", src.Name())
	}
	r := Start(t, src)
	st := r.Wait("the first state", func(*model.SourceState) bool { return true })
	if !st.Synced {
		t.Errorf("first state not Synced: %s", Describe(st))
	}
	if st.Source != "alpha" {
		t.Errorf("state Source = %q, want alpha", st.Source)
	}
	for _, n := range []string{"a", "b", "c"} {
		if !HasGen(st, Key("alpha", n), 1) {
			t.Errorf("first state lacks %s at gen 1: %s", Key("alpha", n), Describe(st))
		}
	}
	if len(st.Configs) != 3 {
		t.Errorf("first state has %d objects, want 3: %s", len(st.Configs), Describe(st))
	}
	if st.Diagnostics.HasErrors() {
		t.Errorf("valid input reported errors: %s", Describe(st))
	}
}

func testAddUpdateDelete(t *testing.T, h Harness) {
	b := h.New(t, "alpha")
	b.Write(t, "a", VirtualService("a", 1))
	r := Start(t, b.Source())
	ka, kb := Key("alpha", "a"), Key("alpha", "b")
	st := r.Wait("a at gen 1", func(st *model.SourceState) bool { return HasGen(st, ka, 1) })
	a1 := Find(st, ka)

	b.Write(t, "b", VirtualService("b", 1))
	st = r.Wait("b added", func(st *model.SourceState) bool { return HasGen(st, kb, 1) })
	if Find(st, ka) != a1 {
		t.Errorf("adding b replaced the unchanged object a")
	}
	b1 := Find(st, kb)

	b.Write(t, "a", VirtualService("a", 2))
	st = r.Wait("a updated to gen 2", func(st *model.SourceState) bool { return HasGen(st, ka, 2) })
	if a2 := Find(st, ka); a2.Revision == a1.Revision {
		t.Errorf("a changed but kept revision %q", a2.Revision)
	}
	if Find(st, kb) != b1 {
		t.Errorf("updating a replaced the unchanged object b")
	}

	b.Remove(t, "b")
	st = r.Wait("b deleted", func(st *model.SourceState) bool { return Find(st, kb) == nil })
	if !HasGen(st, ka, 2) {
		t.Errorf("deleting b lost a: %s", Describe(st))
	}
	if len(st.Configs) != 1 {
		t.Errorf("after deletes, %d objects, want 1: %s", len(st.Configs), Describe(st))
	}
}

func testUnchangedKeepPointers(t *testing.T, h Harness) {
	b := h.New(t, "alpha")
	b.Write(t, "u", Docs(VirtualService("ex", 1), VirtualService("why", 1)))
	r := Start(t, b.Source())
	kx, ky := Key("alpha", "ex"), Key("alpha", "why")
	st := r.Wait("ex and why", func(st *model.SourceState) bool { return HasGen(st, kx, 1) && HasGen(st, ky, 1) })
	x1, y1 := Find(st, kx), Find(st, ky)

	// Change y in the same unit: x must keep its pointer.
	b.Write(t, "u", Docs(VirtualService("ex", 1), VirtualService("why", 2)))
	st = r.Wait("y at gen 2", func(st *model.SourceState) bool { return HasGen(st, ky, 2) })
	if Find(st, kx) != x1 {
		t.Errorf("x was not changed but its pointer was")
	}
	if Find(st, ky) == y1 {
		t.Errorf("y changed but kept its pointer")
	}

	// Rewrite the unit with identical content, then change another unit:
	// nothing in u may change.
	y2 := Find(st, ky)
	b.Write(t, "u", Docs(VirtualService("ex", 1), VirtualService("why", 2)))
	b.Write(t, "other", VirtualService("z", 1))
	st = r.Wait("z", func(st *model.SourceState) bool { return HasGen(st, Key("alpha", "z"), 1) })
	if Find(st, kx) != x1 || Find(st, ky) != y2 {
		t.Errorf("rewriting identical content replaced objects")
	}
	for _, s := range r.States() {
		if c := Find(s, kx); c != nil && c != x1 {
			t.Fatalf("some state had another pointer for the unchanged x: %s", Describe(s))
		}
	}
}

func testBrokenUpdate(t *testing.T, h Harness) {
	b := h.New(t, "alpha")
	b.Write(t, "r", VirtualService("reviews", 1))
	b.Write(t, "other", VirtualService("ratings", 1))
	r := Start(t, b.Source())
	kr, ko := Key("alpha", "reviews"), Key("alpha", "ratings")
	st := r.Wait("reviews", func(st *model.SourceState) bool { return HasGen(st, kr, 1) })
	good := Find(st, kr)

	b.Write(t, "r", BrokenVirtualService("reviews"))
	st = r.Wait("an error naming reviews", func(st *model.SourceState) bool { return NamesObject(st, kr) })
	if c := Find(st, kr); c == nil || c.Revision != good.Revision || Gen(c) != 1 {
		t.Errorf("broken update did not keep the last good reviews: %s", Describe(st))
	}
	if !HasGen(st, ko, 1) {
		t.Errorf("broken reviews took ratings down: %s", Describe(st))
	}

	// Fixing it clears the diagnostic and serves the new version.
	b.Write(t, "r", VirtualService("reviews", 3))
	st = r.Wait("reviews at gen 3", func(st *model.SourceState) bool { return HasGen(st, kr, 3) })
	if NamesObject(st, kr) {
		t.Errorf("fixed object still reported: %s", Describe(st))
	}
}

func testBrokenFromStart(t *testing.T, h Harness) {
	b := h.New(t, "alpha")
	b.Write(t, "bad", BrokenVirtualService("bad"))
	b.Write(t, "good", VirtualService("good", 1))
	r := Start(t, b.Source())
	st := r.Wait("the first state", func(*model.SourceState) bool { return true })
	if Find(st, Key("alpha", "bad")) != nil {
		t.Errorf("an object broken from the start is served: %s", Describe(st))
	}
	if !NamesObject(st, Key("alpha", "bad")) {
		t.Errorf("no error diagnostic names the broken object: %s", Describe(st))
	}
	if !HasGen(st, Key("alpha", "good"), 1) {
		t.Errorf("a broken object took a good one down: %s", Describe(st))
	}
	if !st.Synced {
		t.Errorf("broken input kept the source from syncing")
	}
}

func testQualifiedNames(t *testing.T, h Harness) {
	ba, bb := h.New(t, "alpha"), h.New(t, "beta")
	ba.Write(t, "u", VirtualService("same", 1))
	bb.Write(t, "u", VirtualService("same", 2))
	// The states are fed to the store from this goroutine, as they are
	// examined.
	store := model.NewStore()
	update := func(st *model.SourceState) { store.Update(st) }
	ra, rb := Start(t, ba.Source()), Start(t, bb.Source())
	ra.Wait("alpha's object", func(st *model.SourceState) bool {
		for _, c := range st.Configs {
			if c.Source != "alpha" {
				t.Errorf("alpha delivered %s with Meta.Source %q", c.Key(), c.Source)
			}
		}
		update(st)
		return HasGen(st, Key("alpha", "same"), 1)
	})
	rb.Wait("beta's object", func(st *model.SourceState) bool {
		update(st)
		return HasGen(st, Key("beta", "same"), 2)
	})
	snap := store.Snapshot()
	a, bc := snap.Get(Key("alpha", "same")), snap.Get(Key("beta", "same"))
	if a == nil || bc == nil || Gen(a) != 1 || Gen(bc) != 2 {
		t.Fatalf("store does not hold both sources' objects: alpha=%v beta=%v", a != nil, bc != nil)
	}
	if n := len(snap.List(model.KindVirtualService)); n != 2 {
		t.Errorf("store lists %d VirtualServices, want 2", n)
	}
}

func testAtomicMultiObject(t *testing.T, h Harness) {
	const rounds = 20
	names := []string{"m1", "m2", "m3", "m4"}
	unit := func(gen int) string {
		var docs []string
		for _, n := range names {
			docs = append(docs, VirtualService(n, gen))
		}
		return Docs(docs...)
	}
	b := h.New(t, "alpha")
	b.Write(t, "multi", unit(1))
	r := Start(t, b.Source())
	for gen := 2; gen <= rounds; gen++ {
		b.Write(t, "multi", unit(gen))
	}
	r.Wait(fmt.Sprintf("all objects at gen %d", rounds), func(st *model.SourceState) bool {
		return HasGen(st, Key("alpha", "m1"), rounds) && HasGen(st, Key("alpha", "m4"), rounds)
	})
	for _, st := range r.States() {
		gens := map[int]bool{}
		for _, n := range names {
			c := Find(st, Key("alpha", n))
			if c == nil {
				t.Fatalf("a state lacks %s: %s", n, Describe(st))
			}
			gens[Gen(c)] = true
		}
		if len(gens) != 1 {
			t.Fatalf("a state shows a half-applied change: %s", Describe(st))
		}
	}
}
