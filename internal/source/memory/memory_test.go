package memory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/source"
	"github.com/weftmesh/weft/internal/source/sourcetest"
)

// harness feeds memory sources: a unit is the set of objects last applied
// under its name, replaced in one transaction.
type harness struct{}

type backend struct {
	src   *Source
	units map[string][]model.Key
}

func (harness) New(t *testing.T, name string) sourcetest.Backend {
	return &backend{src: New(Options{Name: name}), units: map[string][]model.Key{}}
}

func (b *backend) Source() source.Source { return b.src }

func (b *backend) Write(t *testing.T, unit, docs string) {
	t.Helper()
	cfgs, _ := manifest.Decode(unit, []byte(docs), b.src.Name())
	var keys []model.Key
	next := map[model.Key]bool{}
	for _, c := range cfgs {
		keys = append(keys, c.Key())
		next[c.Key()] = true
	}
	_, err := b.src.Update(func(tx *Txn) error {
		tx.Apply(unit, []byte(docs))
		for _, k := range b.units[unit] {
			if !next[k] {
				tx.Delete(k)
			}
		}
		return nil
	})
	var rej *RejectedError
	switch {
	case errors.As(err, &rej):
		return // broken input is part of the contract tests
	case err != nil:
		t.Fatalf("Update: %v", err)
	}
	b.units[unit] = keys
}

func (b *backend) Remove(t *testing.T, unit string) {
	b.src.Delete(b.units[unit]...)
	delete(b.units, unit)
}

func TestContract(t *testing.T) { sourcetest.Run(t, harness{}) }

func key(name string) model.Key { return sourcetest.Key(DefaultName, name) }

func TestApplyAllOrNothing(t *testing.T) {
	s := New(Options{})
	r := sourcetest.Start(t, s)
	if _, err := s.Apply("one.yaml", []byte(sourcetest.Docs(sourcetest.VirtualService("a", 1), sourcetest.VirtualService("b", 1)))); err != nil {
		t.Fatal(err)
	}
	st := r.Wait("a and b", func(st *model.SourceState) bool { return len(st.Configs) == 2 })
	a1 := sourcetest.Find(st, key("a"))

	// One broken object rejects the whole apply.
	diags, err := s.Apply("two.yaml", []byte(sourcetest.Docs(
		sourcetest.VirtualService("a", 2), sourcetest.VirtualService("c", 1), sourcetest.BrokenVirtualService("b"))))
	var rej *RejectedError
	if !errors.As(err, &rej) || !diags.HasErrors() {
		t.Fatalf("Apply with a broken object: err = %v", err)
	}
	if !strings.Contains(err.Error(), "VirtualService default/b") || !strings.Contains(err.Error(), "two.yaml") {
		t.Errorf("rejection does not name the object and file: %v", err)
	}
	st = r.Wait("the rejection reported", func(st *model.SourceState) bool { return sourcetest.NamesObject(st, key("b")) })
	if sourcetest.Find(st, key("a")) != a1 || sourcetest.Find(st, key("c")) != nil || !sourcetest.HasGen(st, key("b"), 1) {
		t.Errorf("a rejected apply changed objects: %s", sourcetest.Describe(st))
	}
	for _, s := range r.States() {
		if sourcetest.Find(s, key("c")) != nil {
			t.Errorf("part of a rejected apply was delivered: %s", sourcetest.Describe(s))
		}
	}

	// A YAML syntax error names no object; it is reported under the file
	// until that file is applied successfully.
	if _, err := s.Apply("three.yaml", []byte("kind: [unclosed\n")); err == nil {
		t.Fatal("Apply of invalid YAML: no error")
	}
	r.Wait("the syntax error reported", func(st *model.SourceState) bool {
		for _, d := range st.Diagnostics {
			if d.Origin.File == "three.yaml" {
				return true
			}
		}
		return false
	})
	if _, err := s.Apply("three.yaml", []byte(sourcetest.VirtualService("d", 1))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply("fix.yaml", []byte(sourcetest.VirtualService("b", 2))); err != nil {
		t.Fatal(err)
	}
	st = r.Wait("b fixed", func(st *model.SourceState) bool { return sourcetest.HasGen(st, key("b"), 2) })
	if len(st.Diagnostics) != 0 {
		t.Errorf("fixed input still reported: %s", sourcetest.Describe(st))
	}
}

func TestSetAndDelete(t *testing.T) {
	s := New(Options{Name: "api"})
	cfgs, diags := manifest.Decode("x.yaml", []byte(sourcetest.VirtualService("a", 1)), "somewhere-else")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if _, err := s.Set(cfgs...); err != nil {
		t.Fatal(err)
	}
	k := sourcetest.Key("api", "a")
	got := s.Get(k)
	if got == nil || got.Source != "api" || got == cfgs[0] {
		t.Fatalf("Set did not store a copy qualified by the source: %+v", got)
	}
	if cfgs[0].Source != "somewhere-else" {
		t.Errorf("Set modified the caller's object")
	}
	// Setting equal content keeps the stored pointer.
	again, _ := manifest.Decode("x.yaml", []byte(sourcetest.VirtualService("a", 1)), "api")
	if _, err := s.Set(again...); err != nil {
		t.Fatal(err)
	}
	if s.Get(k) != got {
		t.Errorf("equal content replaced the object")
	}

	bad := []*model.Config{
		nil,
		{Meta: model.Meta{Kind: "Service", Name: "x"}, Spec: cfgs[0].Spec},
		{Meta: model.Meta{Kind: model.KindVirtualService}, Spec: cfgs[0].Spec},
		{Meta: model.Meta{Kind: model.KindVirtualService, Name: "nospec"}},
		{Meta: model.Meta{Kind: model.KindDestinationRule, Name: "wrongtype"}, Spec: cfgs[0].Spec},
	}
	for i, c := range bad {
		if _, err := s.Set(c); err == nil {
			t.Errorf("bad object %d accepted", i)
		}
	}
	if _, err := s.Set(bad[4], again[0]); err == nil {
		t.Errorf("a set with one bad object accepted")
	}

	// A config without a revision gets one.
	noRev := *cfgs[0]
	noRev.Revision, noRev.Name = "", "b"
	if _, err := s.Set(&noRev); err != nil {
		t.Fatal(err)
	}
	if c := s.Get(sourcetest.Key("api", "b")); c == nil || c.Revision == "" {
		t.Errorf("no revision computed: %+v", c)
	}

	s.Delete(model.Key{Kind: model.KindVirtualService, Namespace: "default", Name: "a"})
	if s.Get(k) != nil {
		t.Errorf("Delete ignored a key without a source")
	}
}

func TestUpdateErrorAppliesNothing(t *testing.T) {
	s := New(Options{})
	boom := errors.New("boom")
	_, err := s.Update(func(tx *Txn) error {
		tx.Apply("a.yaml", []byte(sourcetest.VirtualService("a", 1)))
		return boom
	})
	if !errors.Is(err, boom) || s.Get(key("a")) != nil {
		t.Errorf("Update with a failing fn: err = %v, applied = %v", err, s.Get(key("a")) != nil)
	}
}

func TestValidateOption(t *testing.T) {
	s := New(Options{Validate: func(c *model.Config) model.Diagnostics {
		if c.Name == "invalid" {
			return model.Diagnostics{model.Errorf(&c.Meta, "spec.hosts", "rejected")}
		}
		return model.Diagnostics{model.Warningf(&c.Meta, "spec", "just a warning")}
	}})
	diags, err := s.Apply("a.yaml", []byte(sourcetest.VirtualService("valid", 1)))
	if err != nil || len(diags) != 1 || diags[0].Severity != model.SeverityWarning {
		t.Errorf("warnings: diags = %v, err = %v", diags, err)
	}
	if _, err := s.Apply("b.yaml", []byte(sourcetest.VirtualService("invalid", 1))); err == nil || s.Get(key("invalid")) != nil {
		t.Errorf("validator error did not reject: %v", err)
	}
}

func TestConcurrentWriters(t *testing.T) {
	// Writers apply multi-object changes while the source runs; every
	// delivered state holds whole changes only.
	s := New(Options{})
	r := sourcetest.Start(t, s)
	const writers, rounds = 4, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for gen := 1; gen <= rounds; gen++ {
				doc := sourcetest.Docs(
					sourcetest.VirtualService(fmt.Sprintf("w%d-a", w), gen),
					sourcetest.VirtualService(fmt.Sprintf("w%d-b", w), gen))
				if _, err := s.Apply(fmt.Sprintf("w%d.yaml", w), []byte(doc)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	r.Wait("every writer's last change", func(st *model.SourceState) bool {
		for w := range writers {
			if !sourcetest.HasGen(st, key(fmt.Sprintf("w%d-b", w)), rounds) {
				return false
			}
		}
		return true
	})
	for _, st := range r.States() {
		for w := range writers {
			a, b := sourcetest.Find(st, key(fmt.Sprintf("w%d-a", w))), sourcetest.Find(st, key(fmt.Sprintf("w%d-b", w)))
			if (a == nil) != (b == nil) || a != nil && sourcetest.Gen(a) != sourcetest.Gen(b) {
				t.Fatalf("half-applied change delivered: %s", sourcetest.Describe(st))
			}
		}
	}
}

func TestRunTwice(t *testing.T) {
	s := New(Options{})
	sourcetest.Start(t, s).Wait("the first state", func(*model.SourceState) bool { return true })
	if err := s.Run(context.Background(), func(*model.SourceState) {}); err == nil {
		t.Error("a second concurrent Run did not fail")
	}
}

func TestDefaultValidation(t *testing.T) {
	s := New(Options{})
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
	_, err := s.Apply("a.yaml", []byte(invalid))
	if err == nil || !strings.Contains(err.Error(), "VirtualService default/nohost") {
		t.Errorf("validate.Object not applied by default: %v", err)
	}
	t.Log(err)
}
