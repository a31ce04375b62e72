// Package model is Weft's mesh model: the Istio configuration objects, the
// services and endpoints they describe, and the immutable, versioned
// snapshots in which consumers see them.
//
// Sources (package source/...) produce [SourceState] values; a [Store] merges
// the states of all sources into a [Snapshot]. A Snapshot never changes after
// it is published: consumers may read it from any goroutine without locks,
// and must not modify anything reachable from it.
package model
