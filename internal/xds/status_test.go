package xds

import (
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

func TestCurrentForNamedDeltaSubscription(t *testing.T) {
	eds := resource.EndpointType
	ps := &proxyState{
		target:       map[string]string{eds: "v2"},
		targetHashes: map[string]map[string]string{eds: {"a": "ha2", "b": "hb1"}},
		dump:         map[string]*typeDump{eds: {typeURL: eds, delta: map[string]deltaEntry{"b": {version: "hb1"}}}},
	}
	// Wildcard: only the type version counts.
	if ps.current(eds, &TypeStatus{Sent: "v1"}) {
		t.Error("wildcard subscription at v1 counted current at v2")
	}
	if !ps.current(eds, &TypeStatus{Sent: "v2"}) {
		t.Error("wildcard subscription at v2 not current")
	}
	// By name: current while the resources it holds are unchanged.
	if !ps.current(eds, &TypeStatus{Sent: "v1", byName: true}) {
		t.Error("named subscription holding only unchanged b not current")
	}
	ps.dump[eds].delta["a"] = deltaEntry{version: "ha1"}
	if ps.current(eds, &TypeStatus{Sent: "v1", byName: true}) {
		t.Error("named subscription holding an old a counted current")
	}
}
