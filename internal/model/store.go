package model

import (
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
)

// Store merges the states of all sources into snapshots and tells
// subscribers when a new one is published. Its methods are safe for
// concurrent use.
type Store struct {
	mu      sync.Mutex
	states  map[string]*SourceState
	version uint64
	derive  deriver
	current atomic.Pointer[Snapshot]
	subs    map[chan struct{}]struct{}
}

// NewStore returns a store holding the empty snapshot at version 0.
func NewStore() *Store {
	s := &Store{states: map[string]*SourceState{}, subs: map[chan struct{}]struct{}{}}
	s.current.Store(EmptySnapshot())
	return s
}

// Snapshot returns the current snapshot.
func (s *Store) Snapshot() *Snapshot { return s.current.Load() }

// Update replaces the state of source st.Source and publishes a new
// snapshot built from it and the other sources' current states. The store
// keeps st: the caller must not modify it afterwards.
func (s *Store) Update(st *SourceState) *Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.states[st.Source] = st
	names := make([]string, 0, len(s.states))
	for n := range s.states {
		names = append(names, n)
	}
	sort.Strings(names)
	states := make([]*SourceState, 0, len(names))
	for _, n := range names {
		states = append(states, s.states[n])
	}
	s.version++
	snap := buildSnapshot(s.version, states, &s.derive)
	s.current.Store(snap)
	for ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default: // already signalled; the subscriber will read the latest
		}
	}
	return snap
}

// Subscribe returns a channel that receives a value whenever a snapshot
// newer than the last one read may be available, and a function that ends
// the subscription. Signals coalesce: a slow subscriber sees only the
// latest snapshot, never a queue of stale ones.
func (s *Store) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}
}

// ChangeSet lists what differs between two snapshots.
type ChangeSet struct {
	// Configs are the keys of objects added, changed or removed.
	Configs []Key
	// Services are the hostnames of services added, changed or removed,
	// or whose endpoints changed.
	Services []string
	// EndpointsOnly is true when only endpoints changed: no configuration
	// object and no service definition.
	EndpointsOnly bool
}

// Empty reports whether nothing changed.
func (c ChangeSet) Empty() bool { return len(c.Configs) == 0 && len(c.Services) == 0 }

// Diff compares two snapshots. Objects are compared by identity and
// revision, so sources that keep unchanged objects' pointers make it cheap.
func Diff(old, cur *Snapshot) ChangeSet {
	var cs ChangeSet
	for k, c := range cur.configs {
		o, ok := old.configs[k]
		if !ok || (o != c && (c.Revision == "" || o.Revision != c.Revision)) {
			cs.Configs = append(cs.Configs, k)
		}
	}
	for k := range old.configs {
		if _, ok := cur.configs[k]; !ok {
			cs.Configs = append(cs.Configs, k)
		}
	}
	sort.Slice(cs.Configs, func(i, j int) bool { return cs.Configs[i].String() < cs.Configs[j].String() })

	svcChanged := map[string]bool{}
	defs := func(s *Snapshot) map[string][]*Service {
		m := map[string][]*Service{}
		for _, svc := range s.services {
			m[svc.Hostname] = append(m[svc.Hostname], svc)
		}
		return m
	}
	oldDefs, curDefs := defs(old), defs(cur)
	for h, list := range curDefs {
		if !slices.EqualFunc(oldDefs[h], list, (*Service).equal) {
			svcChanged[h] = true
		}
	}
	for h := range oldDefs {
		if _, ok := curDefs[h]; !ok {
			svcChanged[h] = true
		}
	}
	definitionsChanged := len(svcChanged) > 0
	for h, eps := range cur.endpoints {
		if !slices.EqualFunc(old.endpoints[h], eps, (*Endpoint).equal) {
			svcChanged[h] = true
		}
	}
	for h := range old.endpoints {
		if _, ok := cur.endpoints[h]; !ok {
			svcChanged[h] = true
		}
	}
	for h := range svcChanged {
		cs.Services = append(cs.Services, h)
	}
	sort.Strings(cs.Services)
	// Configs that only declare endpoints (WorkloadEntry) count as
	// endpoint changes.
	onlyWorkloads := true
	for _, k := range cs.Configs {
		if k.Kind != KindWorkloadEntry {
			onlyWorkloads = false
			break
		}
	}
	cs.EndpointsOnly = !cs.Empty() && onlyWorkloads && !definitionsChanged
	return cs
}

func (svc *Service) equal(o *Service) bool {
	if svc == o {
		return true
	}
	return svc.Hostname == o.Hostname && svc.Namespace == o.Namespace && svc.Resolution == o.Resolution &&
		svc.MeshExternal == o.MeshExternal && slices.Equal(svc.Addresses, o.Addresses) &&
		slices.Equal(svc.ExportTo, o.ExportTo) && slices.Equal(svc.Ports, o.Ports) && maps.Equal(svc.Labels, o.Labels)
}

func (e *Endpoint) equal(o *Endpoint) bool {
	if e == o {
		return true
	}
	return e.Service == o.Service && e.Address == o.Address && e.Namespace == o.Namespace &&
		e.Workload == o.Workload && e.ServiceAccount == o.ServiceAccount && e.Locality == o.Locality &&
		e.Network == o.Network && e.Weight == o.Weight && e.TLSMode == o.TLSMode && e.Healthy == o.Healthy &&
		maps.Equal(e.Labels, o.Labels) && maps.Equal(e.Ports, o.Ports)
}
