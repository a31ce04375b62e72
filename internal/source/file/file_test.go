package file

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/source/sourcetest"
)

var (
	vs     = sourcetest.VirtualService
	docs   = sourcetest.Docs
	hasGen = sourcetest.HasGen
	find   = sourcetest.Find
)

func key(name string) model.Key { return sourcetest.Key(DefaultName, name) }

// newSource makes a file source over a fresh directory holding files.
func newSource(t *testing.T, files map[string]string, opts Options) (*Source, string) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		write(t, filepath.Join(dir, name), content)
	}
	opts.Dir = dir
	if opts.Debounce == 0 {
		opts.Debounce = 20 * time.Millisecond
	}
	opts.Logger = quietLogger()
	src, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return src, dir
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestEditInPlace(t *testing.T) {
	src, dir := newSource(t, map[string]string{"vs.yaml": vs("reviews", 1)}, Options{})
	r := sourcetest.Start(t, src)
	r.Wait("gen 1", func(st *model.SourceState) bool { return hasGen(st, key("reviews"), 1) })
	write(t, filepath.Join(dir, "vs.yaml"), vs("reviews", 2))
	r.Wait("gen 2", func(st *model.SourceState) bool { return hasGen(st, key("reviews"), 2) })
}

func TestAtomicSaves(t *testing.T) {
	// The default debounce covers the moment between an editor moving the
	// old file away and writing the new one.
	src, dir := newSource(t, map[string]string{"vs.yaml": vs("reviews", 1)}, Options{Debounce: DefaultDebounce})
	r := sourcetest.Start(t, src)
	r.Wait("gen 1", func(st *model.SourceState) bool { return hasGen(st, key("reviews"), 1) })
	path := filepath.Join(dir, "vs.yaml")

	// Write a temporary file and rename it over the original.
	writeAtomic(t, path, vs("reviews", 2))
	r.Wait("gen 2 after rename over", func(st *model.SourceState) bool { return hasGen(st, key("reviews"), 2) })

	// Vim's default: move the original to a backup, write a new file,
	// remove the backup.
	if err := os.Rename(path, path+"~"); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, ".vs.yaml.swp"), "swap file content, not YAML: {{{")
	write(t, path, vs("reviews", 3))
	if err := os.Remove(path + "~"); err != nil {
		t.Fatal(err)
	}
	st := r.Wait("gen 3 after backup-and-write", func(st *model.SourceState) bool { return hasGen(st, key("reviews"), 3) })
	if len(st.Diagnostics) != 0 {
		t.Errorf("editor files were read: %s", sourcetest.Describe(st))
	}
	for _, s := range r.States() {
		if find(s, key("reviews")) == nil {
			t.Errorf("the object vanished during an atomic save: %s", sourcetest.Describe(s))
		}
	}
}

func TestNewSubdirectories(t *testing.T) {
	src, dir := newSource(t, map[string]string{"top.yaml": vs("top", 1)}, Options{})
	r := sourcetest.Start(t, src)
	r.Wait("top", func(st *model.SourceState) bool { return hasGen(st, key("top"), 1) })

	// A new nested directory with a file in it: both levels get watched.
	write(t, filepath.Join(dir, "team", "deep", "a.yml"), vs("deep", 1))
	r.Wait("the nested file", func(st *model.SourceState) bool { return hasGen(st, key("deep"), 1) })
	write(t, filepath.Join(dir, "team", "b.yaml"), vs("middle", 1))
	r.Wait("a file added to the new directory", func(st *model.SourceState) bool { return hasGen(st, key("middle"), 1) })
	write(t, filepath.Join(dir, "team", "deep", "a.yml"), vs("deep", 2))
	r.Wait("an edit in the new directory", func(st *model.SourceState) bool { return hasGen(st, key("deep"), 2) })
}

func TestDeleteFileAndDirectory(t *testing.T) {
	src, dir := newSource(t, map[string]string{
		"keep.yaml":       vs("keep", 1),
		"gone.yaml":       vs("gone", 1),
		"sub/one.yaml":    vs("one", 1),
		"sub/x/two.yaml":  vs("two", 1),
		"other/stay.yaml": vs("stay", 1),
	}, Options{})
	r := sourcetest.Start(t, src)
	st := r.Wait("all five", func(st *model.SourceState) bool { return len(st.Configs) == 5 })
	keep := find(st, key("keep"))

	if err := os.Remove(filepath.Join(dir, "gone.yaml")); err != nil {
		t.Fatal(err)
	}
	r.Wait("gone deleted", func(st *model.SourceState) bool { return find(st, key("gone")) == nil })

	if err := os.RemoveAll(filepath.Join(dir, "sub")); err != nil {
		t.Fatal(err)
	}
	st = r.Wait("sub's objects deleted", func(st *model.SourceState) bool {
		return find(st, key("one")) == nil && find(st, key("two")) == nil
	})
	if find(st, key("keep")) != keep || !hasGen(st, key("stay"), 1) || len(st.Configs) != 2 {
		t.Errorf("removing a directory touched other objects: %s", sourcetest.Describe(st))
	}

	// The directory comes back: it is watched again.
	write(t, filepath.Join(dir, "sub", "one.yaml"), vs("one", 2))
	r.Wait("the recreated directory's file", func(st *model.SourceState) bool { return hasGen(st, key("one"), 2) })
	write(t, filepath.Join(dir, "sub", "one.yaml"), vs("one", 3))
	r.Wait("an edit in the recreated directory", func(st *model.SourceState) bool { return hasGen(st, key("one"), 3) })
}

func TestBurstCoalesces(t *testing.T) {
	src, dir := newSource(t, map[string]string{"vs.yaml": vs("busy", 0), "quiet.yaml": vs("quiet", 1)},
		Options{Debounce: DefaultDebounce})
	r := sourcetest.Start(t, src)
	r.Wait("gen 0", func(st *model.SourceState) bool { return hasGen(st, key("busy"), 0) })
	before := src.Decodes()
	if before != 2 {
		t.Errorf("initial read decoded %d times, want 2 (one per file)", before)
	}
	const edits = 50
	for gen := 1; gen <= edits; gen++ {
		writeAtomic(t, filepath.Join(dir, "vs.yaml"), vs("busy", gen))
	}
	r.Wait("the last edit", func(st *model.SourceState) bool { return hasGen(st, key("busy"), edits) })
	n := src.Decodes() - before
	t.Logf("%d edits caused %d decodes and %d states", edits, n, len(r.States())-1)
	if n > 10 {
		t.Errorf("%d edits caused %d decodes; want them coalesced", edits, n)
	}
}

func TestConstantChurnStillDelivers(t *testing.T) {
	// Edits arrive more often than the debounce period forever; MaxDelay
	// makes the source read anyway.
	src, dir := newSource(t, map[string]string{"vs.yaml": vs("busy", 0)},
		Options{Debounce: 200 * time.Millisecond, MaxDelay: 400 * time.Millisecond})
	r := sourcetest.Start(t, src)
	r.Wait("gen 0", func(st *model.SourceState) bool { return hasGen(st, key("busy"), 0) })

	ctx, cancel := context.WithCancel(context.Background())
	churned := make(chan int)
	go func() {
		gen := 1
		defer func() { churned <- gen }()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for ; gen < 100000; gen++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			tmp := filepath.Join(dir, ".churn.tmp")
			if os.WriteFile(tmp, []byte(vs("busy", gen)), 0o644) != nil || os.Rename(tmp, filepath.Join(dir, "vs.yaml")) != nil {
				return
			}
		}
	}()
	r.Wait("an edit read while edits keep coming", func(st *model.SourceState) bool {
		c := find(st, key("busy"))
		return c != nil && sourcetest.Gen(c) > 0
	})
	cancel()
	if gen := <-churned; gen >= 100000 {
		t.Fatalf("the writer ran out of edits before the source read one")
	}
}

func TestOnlyChangedFilesDecoded(t *testing.T) {
	src, dir := newSource(t, map[string]string{"a.yaml": vs("a", 1), "b.yaml": vs("b", 1), "c.yaml": vs("c", 1)}, Options{})
	r := sourcetest.Start(t, src)
	st := r.Wait("three objects", func(st *model.SourceState) bool { return len(st.Configs) == 3 })
	a1, c1 := find(st, key("a")), find(st, key("c"))
	if d := src.Decodes(); d != 3 {
		t.Errorf("initial read: %d decodes, want 3", d)
	}
	// Same content, new mtime: read and hashed, not decoded; no new state.
	write(t, filepath.Join(dir, "a.yaml"), vs("a", 1))
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "c.yaml"), future, future); err != nil {
		t.Fatal(err)
	}
	// A real edit, to know when the source has caught up.
	write(t, filepath.Join(dir, "b.yaml"), vs("b", 2))
	st = r.Wait("b at gen 2", func(st *model.SourceState) bool { return hasGen(st, key("b"), 2) })
	if d := src.Decodes(); d != 4 {
		t.Errorf("after one edit and two touches: %d decodes, want 4", d)
	}
	if find(st, key("a")) != a1 || find(st, key("c")) != c1 {
		t.Errorf("untouched objects changed pointers")
	}
	if n := len(r.States()); n != 2 {
		t.Errorf("%d states delivered, want 2: touches without content changes must not deliver one", n)
	}
}

func TestIgnoredFiles(t *testing.T) {
	src, _ := newSource(t, map[string]string{
		"real.yaml":              vs("real", 1),
		".hidden.yaml":           vs("hidden", 1),
		".git/config.yaml":       vs("git", 1),
		"sub/.cache/x.yaml":      vs("cache", 1),
		"backup.yaml~":           vs("backup", 1),
		"#autosave.yaml#":        vs("autosave", 1),
		"notes.md":               "# not yaml: {{{",
		"data.json":              `{"kind": "VirtualService"}`,
		"sub/..2026_01/cm.yaml":  vs("configmap-data", 1),
		"sub/nested/ok.yml":      vs("nested", 1),
		"sub/nested/.swp.yaml":   "{{{",
		"sub/nested/edit.yaml.x": "{{{",
	}, Options{})
	r := sourcetest.Start(t, src)
	st := r.Wait("the first state", func(*model.SourceState) bool { return true })
	if len(st.Configs) != 2 || !hasGen(st, key("real"), 1) || !hasGen(st, key("nested"), 1) || len(st.Diagnostics) != 0 {
		t.Errorf("want only real and nested read: %s", sourcetest.Describe(st))
	}
}

func TestConfigMapSymlinks(t *testing.T) {
	// The layout of a Kubernetes ConfigMap volume: visible files are
	// links into a hidden directory that is swapped atomically.
	src, dir := newSource(t, map[string]string{"..v1/vs.yaml": vs("cm", 1)}, Options{})
	if err := os.Symlink("..v1", filepath.Join(dir, "..data")); err != nil {
		t.Skipf("no symbolic links: %v", err)
	}
	if err := os.Symlink(filepath.Join("..data", "vs.yaml"), filepath.Join(dir, "vs.yaml")); err != nil {
		t.Fatal(err)
	}
	r := sourcetest.Start(t, src)
	r.Wait("gen 1 through links", func(st *model.SourceState) bool { return hasGen(st, key("cm"), 1) })

	write(t, filepath.Join(dir, "..v2", "vs.yaml"), vs("cm", 2))
	if err := os.Symlink("..v2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	r.Wait("gen 2 after the swap", func(st *model.SourceState) bool { return hasGen(st, key("cm"), 2) })
}

func TestBrokenFileKeepsLastGood(t *testing.T) {
	src, dir := newSource(t, map[string]string{
		"pair.yaml":  docs(vs("first", 1), vs("second", 1)),
		"other.yaml": vs("other", 1),
	}, Options{})
	r := sourcetest.Start(t, src)
	st := r.Wait("three objects", func(st *model.SourceState) bool { return len(st.Configs) == 3 })
	first, second := find(st, key("first")), find(st, key("second"))
	path := filepath.Join(dir, "pair.yaml")

	// A YAML syntax error breaks the whole file: both objects stay.
	write(t, path, vs("first", 2)+"---\nkind: [unclosed\n")
	st = r.Wait("an error in pair.yaml", func(st *model.SourceState) bool { return st.Diagnostics.HasErrors() })
	if find(st, key("second")) != second || find(st, key("other")) == nil {
		t.Errorf("a broken file took objects down: %s", sourcetest.Describe(st))
	}
	if c := find(st, key("first")); c == nil || (c != first && !hasGen(st, key("first"), 2)) {
		t.Errorf("first lost: %s", sourcetest.Describe(st))
	}
	var found bool
	for _, d := range st.Diagnostics {
		if d.Severity == model.SeverityError && d.Origin.File == path && (d.Origin.Line > 0 || strings.Contains(d.Message, "line ")) {
			found = true
		}
	}
	if !found {
		t.Errorf("no error names %s and a line: %s", path, sourcetest.Describe(st))
	}

	// One broken object in a valid file: only it keeps its last good
	// version; a removed object goes away.
	write(t, path, sourcetest.BrokenVirtualService("first"))
	st = r.Wait("second removed", func(st *model.SourceState) bool { return find(st, key("second")) == nil })
	if c := find(st, key("first")); c == nil || c.Revision != first.Revision && sourcetest.Gen(c) != 2 {
		t.Errorf("first lost its last good version: %s", sourcetest.Describe(st))
	}
	if !sourcetest.NamesObject(st, key("first")) {
		t.Errorf("no error names first: %s", sourcetest.Describe(st))
	}
	for _, d := range st.Diagnostics {
		if d.Name == "first" && d.Origin.File != path {
			t.Errorf("diagnostic without the file: %s", d)
		}
	}

	// Fixed: the errors go away.
	write(t, path, vs("first", 5))
	st = r.Wait("first fixed", func(st *model.SourceState) bool { return hasGen(st, key("first"), 5) })
	if len(st.Diagnostics) != 0 {
		t.Errorf("fixed input still has diagnostics: %s", sourcetest.Describe(st))
	}
}

func TestDuplicateKeys(t *testing.T) {
	src, dir := newSource(t, map[string]string{
		"a.yaml":     vs("dup", 1),
		"b/dup.yaml": vs("dup", 2),
		"c.yaml":     docs(vs("twice", 1), vs("twice", 2)),
	}, Options{})
	r := sourcetest.Start(t, src)
	st := r.Wait("the first state", func(*model.SourceState) bool { return true })
	// Path order: a.yaml < b/dup.yaml.
	if !hasGen(st, key("dup"), 1) || !hasGen(st, key("twice"), 1) || len(st.Configs) != 2 {
		t.Errorf("want the first definitions kept: %s", sourcetest.Describe(st))
	}
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b", "dup.yaml")
	var dupDiag, twiceDiag bool
	for _, d := range st.Diagnostics {
		s := d.String()
		if d.Severity == model.SeverityError && d.Name == "dup" && strings.Contains(s, a) && strings.Contains(s, b) {
			dupDiag = true
		}
		if d.Severity == model.SeverityError && d.Name == "twice" && strings.Contains(s, "duplicate") {
			twiceDiag = true
		}
	}
	if !dupDiag || !twiceDiag {
		t.Errorf("duplicates not reported naming both places: %s", sourcetest.Describe(st))
	}

	// Removing the first definition promotes the second.
	if err := os.Remove(a); err != nil {
		t.Fatal(err)
	}
	st = r.Wait("dup from b", func(st *model.SourceState) bool { return hasGen(st, key("dup"), 2) })
	for _, d := range st.Diagnostics {
		if d.Name == "dup" {
			t.Errorf("stale duplicate diagnostic: %s", d)
		}
	}
}

func TestSourceName(t *testing.T) {
	src, _ := newSource(t, map[string]string{"a.yaml": vs("a", 1)}, Options{Name: "local"})
	r := sourcetest.Start(t, src)
	st := r.Wait("the first state", func(*model.SourceState) bool { return true })
	if st.Source != "local" || !hasGen(st, sourcetest.Key("local", "a"), 1) {
		t.Errorf("objects not qualified by the source name: %s", sourcetest.Describe(st))
	}
}

func TestValidateOption(t *testing.T) {
	reject := func(c *model.Config) model.Diagnostics {
		if c.Name == "invalid" {
			return model.Diagnostics{model.Errorf(&c.Meta, "spec.hosts[0]", "rejected by the validator")}
		}
		return nil
	}
	src, dir := newSource(t, map[string]string{"a.yaml": docs(vs("valid", 1), vs("invalid", 1))}, Options{Validate: reject})
	r := sourcetest.Start(t, src)
	st := r.Wait("the first state", func(*model.SourceState) bool { return true })
	if find(st, key("invalid")) != nil || !hasGen(st, key("valid"), 1) || !sourcetest.NamesObject(st, key("invalid")) {
		t.Errorf("validator errors not applied: %s", sourcetest.Describe(st))
	}
	want := fmt.Sprintf("%s:", filepath.Join(dir, "a.yaml"))
	for _, d := range st.Diagnostics {
		if d.Name == "invalid" && (!strings.HasPrefix(d.String(), want) || d.Field != "spec.hosts[0]") {
			t.Errorf("diagnostic lacks file or field: %s", d)
		}
	}
}

func TestRunErrors(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without Dir: no error")
	}
	src, err := New(Options{Dir: filepath.Join(t.TempDir(), "missing"), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	err = src.Run(context.Background(), func(*model.SourceState) { t.Error("sink called") })
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Run on a missing directory: err = %v", err)
	}
}

func TestStoreIntegration(t *testing.T) {
	src, dir := newSource(t, map[string]string{"vs.yaml": vs("reviews", 1)}, Options{})
	store := model.NewStore()
	changes, stop := store.Subscribe()
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, func(st *model.SourceState) { store.Update(st) }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	wait := func(what string, cond func(*model.Snapshot) bool) *model.Snapshot {
		t.Helper()
		timeout := time.NewTimer(sourcetest.WaitTimeout)
		defer timeout.Stop()
		for {
			if snap := store.Snapshot(); cond(snap) {
				return snap
			}
			select {
			case <-changes:
			case <-timeout.C:
				t.Fatalf("no snapshot with %s", what)
			}
		}
	}
	s1 := wait("reviews at gen 1", func(s *model.Snapshot) bool {
		c := s.Get(key("reviews"))
		return s.Synced() && c != nil && sourcetest.Gen(c) == 1
	})
	write(t, filepath.Join(dir, "vs.yaml"), vs("reviews", 2))
	s2 := wait("reviews at gen 2", func(s *model.Snapshot) bool {
		c := s.Get(key("reviews"))
		return c != nil && sourcetest.Gen(c) == 2
	})
	cs := model.Diff(s1, s2)
	if len(cs.Configs) != 1 || cs.Configs[0] != key("reviews") {
		t.Errorf("Diff = %+v, want just reviews", cs.Configs)
	}
}

func TestDefaultValidation(t *testing.T) {
	// Decodes fine but breaks Istio's rules: a route without a host.
	const invalid = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: nohost
spec:
  hosts:
  - nohost
  http:
  - route:
    - destination:
        port:
          number: 80
`
	src, _ := newSource(t, map[string]string{"a.yaml": docs(vs("fine", 1), invalid)}, Options{})
	r := sourcetest.Start(t, src)
	st := r.Wait("the first state", func(*model.SourceState) bool { return true })
	if find(st, key("nohost")) != nil || !hasGen(st, key("fine"), 1) || !sourcetest.NamesObject(st, key("nohost")) {
		t.Errorf("validate.Object not applied by default: %s", sourcetest.Describe(st))
	}
}

func TestRootRemoved(t *testing.T) {
	src, dir := newSource(t, map[string]string{"a.yaml": vs("a", 1), "sub/b.yaml": vs("b", 1)}, Options{})
	r := sourcetest.Start(t, src)
	r.Wait("two objects", func(st *model.SourceState) bool { return len(st.Configs) == 2 })
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	st := r.Wait("everything removed", func(st *model.SourceState) bool { return len(st.Configs) == 0 })
	if !st.Diagnostics.HasErrors() || !strings.Contains(st.Diagnostics[0].String(), dir) {
		t.Errorf("no error names the removed directory: %s", sourcetest.Describe(st))
	}
}

func TestDirWithTrailingSlash(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), vs("a", 1))
	src, err := New(Options{Dir: dir + "/", Debounce: 20 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	r := sourcetest.Start(t, src)
	for gen := 2; gen <= 4; gen++ {
		write(t, filepath.Join(dir, "a.yaml"), vs("a", gen))
		r.Wait(fmt.Sprintf("gen %d", gen), func(st *model.SourceState) bool { return hasGen(st, key("a"), gen) })
	}
}
