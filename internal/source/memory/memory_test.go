package memory

import (
	"errors"
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
