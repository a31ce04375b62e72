// Package memory is a configuration source holding Istio objects in
// memory. Tests use it, and so does `weft apply`: objects are set, deleted
// or applied from YAML, one change or a whole transaction at a time, and
// every change is all or nothing.
package memory

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/source"
	"github.com/weftmesh/weft/internal/validate"
)

// DefaultName is the source name used when Options.Name is empty.
const DefaultName = "memory"

// Options configures a memory source.
type Options struct {
	// Name is the source name that qualifies object keys; DefaultName if empty.
	Name string
	// Validate checks one object before it is accepted, after the checks
	// for a known kind, a name and a spec of the right type; an object with
	// error diagnostics rejects the whole change. Nil means validate.Object,
	// Istio's rules.
	Validate func(*model.Config) model.Diagnostics
}

// Source is a memory source. Its methods are safe for concurrent use.
type Source struct {
	opts Options

	mu      sync.Mutex
	objs    map[model.Key]*model.Config
	rejects map[rejectKey]model.Diagnostics // problems of rejected changes, until fixed
	gen     uint64                          // bumped by every change to objs or rejects
	wake    chan struct{}
	running bool
}

// rejectKey says what a rejected change's diagnostics are about: one
// object, or (for problems naming no object) the file applied.
type rejectKey struct {
	key  model.Key
	file string
}

var _ source.Source = (*Source)(nil)

// New returns an empty memory source.
func New(opts Options) *Source {
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	if opts.Validate == nil {
		opts.Validate = validate.Object
	}
	return &Source{
		opts:    opts,
		objs:    map[model.Key]*model.Config{},
		rejects: map[rejectKey]model.Diagnostics{},
		wake:    make(chan struct{}, 1),
	}
}

// Name returns the source name.
func (s *Source) Name() string { return s.opts.Name }

// RejectedError is returned when a change is refused because some object
// in it is invalid; nothing of the change was applied.
type RejectedError struct {
	Diagnostics model.Diagnostics
}

// Error lists the error diagnostics, one a line.
func (e *RejectedError) Error() string {
	var b strings.Builder
	b.WriteString("change rejected, nothing applied:")
	for _, d := range e.Diagnostics {
		if d.Severity == model.SeverityError {
			b.WriteString("\n  ")
			b.WriteString(d.String())
		}
	}
	return b.String()
}

// Txn collects the operations of one atomic change; see Source.Update.
type Txn struct {
	src   *Source
	sets  map[model.Key]*model.Config
	dels  map[model.Key]bool
	files []string
	diags model.Diagnostics
}

// Set adds or replaces objects. Each object is copied with Meta.Source set
// to the source name; its Spec is shared and must not be modified later.
func (tx *Txn) Set(cfgs ...*model.Config) {
	for _, c := range cfgs {
		c, ds := tx.src.check(c)
		tx.diags = append(tx.diags, ds...)
		if c == nil || ds.HasErrors() {
			continue
		}
		k := c.Key()
		delete(tx.dels, k)
		tx.sets[k] = c
	}
}

// Delete removes the objects with the given keys; Key.Source is ignored.
// Deleting an absent object is not an error.
func (tx *Txn) Delete(keys ...model.Key) {
	for _, k := range keys {
		k.Source = tx.src.opts.Name
		delete(tx.sets, k)
		tx.dels[k] = true
	}
}

// Apply decodes multi-document YAML with manifest.Decode and sets every
// object in it. file names the input in diagnostics.
func (tx *Txn) Apply(file string, data []byte) {
	cfgs, ds := manifest.Decode(file, data, tx.src.opts.Name)
	tx.files = append(tx.files, file)
	tx.diags = append(tx.diags, ds...)
	tx.Set(cfgs...)
}

// Update runs fn to collect a change and applies it atomically: if fn
// returns an error, nothing is applied and that error is returned; if any
// object is invalid, nothing is applied, the problems are reported in the
// source's Diagnostics until a later change fixes or deletes the objects
// concerned, and a *RejectedError is returned. Otherwise the change is
// applied as one new state and the warnings found are returned.
func (s *Source) Update(fn func(tx *Txn) error) (model.Diagnostics, error) {
	tx := &Txn{src: s, sets: map[model.Key]*model.Config{}, dels: map[model.Key]bool{}}
	if err := fn(tx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if tx.diags.HasErrors() {
		for rk, ds := range groupRejects(tx.diags, s.opts.Name) {
			s.rejects[rk] = ds
		}
		s.changed()
		return tx.diags, &RejectedError{Diagnostics: tx.diags}
	}
	changed := false
	for k, c := range tx.sets {
		if cur := source.Reuse(s.objs[k], c); cur != s.objs[k] {
			s.objs[k] = cur
			changed = true
		}
		if s.clearRejects(rejectKey{key: k}) {
			changed = true
		}
	}
	for k := range tx.dels {
		if _, ok := s.objs[k]; ok {
			delete(s.objs, k)
			changed = true
		}
		if s.clearRejects(rejectKey{key: k}) {
			changed = true
		}
	}
	for _, f := range tx.files {
		if s.clearRejects(rejectKey{file: f}) {
			changed = true
		}
	}
	if changed {
		s.changed()
	}
	return tx.diags, nil
}

// Set adds or replaces objects atomically; see Txn.Set and Update.
func (s *Source) Set(cfgs ...*model.Config) (model.Diagnostics, error) {
	return s.Update(func(tx *Txn) error { tx.Set(cfgs...); return nil })
}

// Delete removes objects atomically; see Txn.Delete.
func (s *Source) Delete(keys ...model.Key) {
	_, _ = s.Update(func(tx *Txn) error { tx.Delete(keys...); return nil })
}

// Apply sets every object of a multi-document YAML input atomically: all
// of them, or none when any has an error. See Txn.Apply and Update.
func (s *Source) Apply(file string, data []byte) (model.Diagnostics, error) {
	return s.Update(func(tx *Txn) error { tx.Apply(file, data); return nil })
}

// Get returns the object with key k (Key.Source is ignored), or nil.
func (s *Source) Get(k model.Key) *model.Config {
	k.Source = s.opts.Name
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.objs[k]
}

// Run calls sink with the current state (Synced set), then again after
// every change until ctx is done. Changes made while sink runs are
// coalesced into the next state. Only one Run may be active at a time.
func (s *Source) Run(ctx context.Context, sink func(*model.SourceState)) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("memory source: already running")
	}
	s.running = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	}()
	var sent uint64
	first := true
	for {
		s.mu.Lock()
		gen := s.gen
		var st *model.SourceState
		if first || gen != sent {
			st = s.state()
		}
		s.mu.Unlock()
		if st != nil {
			sink(st)
			sent, first = gen, false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		}
	}
}

// changed records a change and wakes Run. s.mu must be held.
func (s *Source) changed() {
	s.gen++
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// clearRejects forgets the problems recorded under rk. s.mu must be held.
func (s *Source) clearRejects(rk rejectKey) bool {
	if _, ok := s.rejects[rk]; !ok {
		return false
	}
	delete(s.rejects, rk)
	return true
}

// state builds the current state. s.mu must be held.
func (s *Source) state() *model.SourceState {
	st := &model.SourceState{Source: s.opts.Name, Synced: true}
	for _, c := range s.objs {
		st.Configs = append(st.Configs, c)
	}
	slices.SortFunc(st.Configs, func(a, b *model.Config) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	for _, ds := range s.rejects {
		st.Diagnostics = append(st.Diagnostics, ds...)
	}
	slices.SortStableFunc(st.Diagnostics, func(a, b model.Diagnostic) int { return strings.Compare(a.String(), b.String()) })
	return st
}

// check copies c for storing and reports what is wrong with it.
func (s *Source) check(c *model.Config) (*model.Config, model.Diagnostics) {
	if c == nil {
		return nil, model.Diagnostics{{Message: "nil object"}}
	}
	cp := *c
	cp.Source = s.opts.Name
	if cp.Namespace == "" {
		cp.Namespace = manifest.DefaultNamespace
	}
	ki, ok := model.LookupKind(cp.Kind)
	switch {
	case !ok:
		return nil, model.Diagnostics{model.Errorf(&cp.Meta, "kind", "unknown kind %q", cp.Kind)}
	case cp.Name == "":
		return nil, model.Diagnostics{model.Errorf(&cp.Meta, "metadata.name", "required")}
	case cp.Spec == nil:
		return nil, model.Diagnostics{model.Errorf(&cp.Meta, "spec", "required")}
	}
	if got, want := cp.Spec.ProtoReflect().Descriptor().FullName(), ki.NewSpec().ProtoReflect().Descriptor().FullName(); got != want {
		return nil, model.Diagnostics{model.Errorf(&cp.Meta, "spec", "is a %s, want %s for kind %s", got, want, cp.Kind)}
	}
	if cp.Revision == "" {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(cp.Spec)
		if err != nil {
			return nil, model.Diagnostics{model.Errorf(&cp.Meta, "spec", "%v", err)}
		}
		cp.Revision = fmt.Sprintf("%x", sha256.Sum256(b))[:16]
	}
	return &cp, s.opts.Validate(&cp)
}

// groupRejects files the diagnostics of a rejected change under the
// object they name, or under their file when they name no known object.
func groupRejects(diags model.Diagnostics, name string) map[rejectKey]model.Diagnostics {
	out := map[rejectKey]model.Diagnostics{}
	for _, d := range diags {
		var rk rejectKey
		if _, ok := model.LookupKind(d.Kind); ok && d.Name != "" {
			ns := d.Namespace
			if ns == "" {
				ns = manifest.DefaultNamespace
			}
			rk.key = model.Key{Source: name, Kind: d.Kind, Namespace: ns, Name: d.Name}
		} else {
			rk.file = d.Origin.File
		}
		out[rk] = append(out[rk], d)
	}
	return out
}
