// Package source defines the contract shared by configuration sources: a
// source reads Istio configuration objects from somewhere (a directory, an
// in-memory set, a Kubernetes API server) and hands a complete
// model.SourceState to a sink every time its state changes.
//
// The contract every implementation keeps (and that package sourcetest
// checks):
//
//   - Run delivers states from one goroutine, in order; each state is
//     complete and immutable once delivered.
//   - The first state is delivered after the initial read, with Synced set.
//   - Objects whose content did not change keep their pointers from one
//     state to the next, so model.Diff stays cheap.
//   - Object keys carry the source's name (Meta.Source).
//   - When the input for an object that was once valid becomes invalid,
//     the last good version stays in Configs and Diagnostics name the
//     problem; an object that was never valid is reported and absent.
//   - A change applied as one unit (a file, an Apply call) is delivered in
//     one state: consumers never see half of it.
package source

import (
	"context"
	"reflect"

	"github.com/weftmesh/weft/internal/model"
)

// Source is a configuration source.
type Source interface {
	// Name is the source's name; it qualifies the keys of its objects.
	Name() string
	// Run reads the source's input and calls sink with its complete state
	// after the initial read and after each change, until ctx is done. It
	// returns nil when ctx is done, or an error if the source cannot run.
	// sink is called from one goroutine at a time and must not modify the
	// state it is given.
	Run(ctx context.Context, sink func(*model.SourceState)) error
}

// Reuse returns prev if it describes the same object as cur with the same
// content and metadata, and cur otherwise. Sources call it when they read
// an object again so that unchanged objects keep their pointers.
func Reuse(prev, cur *model.Config) *model.Config {
	if prev == nil || cur == nil || prev == cur {
		return cur
	}
	if SameConfig(prev, cur) {
		return prev
	}
	return cur
}

// SameConfig reports whether a and b have the same metadata (origin
// included) and revision. Revisions are content hashes set by the decoder,
// so equal revisions mean equal specs.
func SameConfig(a, b *model.Config) bool {
	if a.Revision == "" || a.Revision != b.Revision {
		return false
	}
	return reflect.DeepEqual(a.Meta, b.Meta)
}
