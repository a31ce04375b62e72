package model

import (
	"sort"
)

// SourceState is the complete current state of one source. A source hands
// the Store a new SourceState each time its state changes; the value is
// immutable once handed over. Objects that did not change should be the
// same pointers as in the previous state, which keeps diffs cheap.
type SourceState struct {
	// Source names the source; it qualifies the keys of its objects.
	Source string
	// Configs are the source's valid objects. For an object whose latest
	// input is broken, this holds its last good version.
	Configs []*Config
	// Services and Endpoints are discovered directly by the source (from
	// Kubernetes Services and EndpointSlices, say), in addition to those
	// derived from ServiceEntry and WorkloadEntry objects.
	Services  []*Service
	Endpoints []*Endpoint
	// Diagnostics are the problems found in the source's input.
	Diagnostics Diagnostics
	// Synced is true once the source has read all its input at least once.
	Synced bool
}

// Snapshot is a consistent, immutable view of the whole mesh at one
// version. Nothing reachable from a Snapshot may be modified.
type Snapshot struct {
	// Version increases by one with every snapshot a Store publishes.
	Version uint64

	configs   map[Key]*Config
	byKind    map[Kind][]*Config
	services  []*Service
	endpoints map[string][]*Endpoint
	diags     Diagnostics
	synced    bool
}

// EmptySnapshot returns a snapshot with nothing in it, at version 0.
func EmptySnapshot() *Snapshot {
	return &Snapshot{configs: map[Key]*Config{}, byKind: map[Kind][]*Config{}, endpoints: map[string][]*Endpoint{}, synced: true}
}

// Get returns the object with key k, or nil.
func (s *Snapshot) Get(k Key) *Config { return s.configs[k] }

// List returns the objects of kind k sorted by namespace, name and source.
// The slice must not be modified.
func (s *Snapshot) List(k Kind) []*Config { return s.byKind[k] }

// ListNamespace returns the objects of kind k in namespace ns.
func (s *Snapshot) ListNamespace(k Kind, ns string) []*Config {
	var out []*Config
	for _, c := range s.byKind[k] {
		if c.Namespace == ns {
			out = append(out, c)
		}
	}
	return out
}

// Configs returns every object, sorted by kind, namespace, name and source.
func (s *Snapshot) Configs() []*Config {
	out := make([]*Config, 0, len(s.configs))
	for _, ki := range Kinds() {
		out = append(out, s.byKind[ki.Kind]...)
	}
	return out
}

// Len returns the number of configuration objects.
func (s *Snapshot) Len() int { return len(s.configs) }

// Services returns every service, sorted by hostname and namespace.
func (s *Snapshot) Services() []*Service { return s.services }

// Service returns the service with the given hostname visible from
// namespace ns: one in ns itself if there is one, else the first exported
// to ns. It returns nil if there is none.
func (s *Snapshot) Service(hostname, ns string) *Service {
	var found *Service
	for _, svc := range s.services {
		if svc.Hostname != hostname {
			continue
		}
		if svc.Namespace == ns {
			return svc
		}
		if found == nil && svc.VisibleFrom(ns) {
			found = svc
		}
	}
	return found
}

// Endpoints returns the endpoints of the service with the given hostname,
// sorted by address. The slice must not be modified.
func (s *Snapshot) Endpoints(hostname string) []*Endpoint { return s.endpoints[hostname] }

// Diagnostics returns the problems found in every source's input.
func (s *Snapshot) Diagnostics() Diagnostics { return s.diags }

// Synced reports whether every source had read all its input when the
// snapshot was made.
func (s *Snapshot) Synced() bool { return s.synced }

// VisibleFrom reports whether the service is exported to namespace ns.
func (svc *Service) VisibleFrom(ns string) bool {
	if len(svc.ExportTo) == 0 {
		return true
	}
	for _, e := range svc.ExportTo {
		switch e {
		case "*", ns:
			return true
		case ".":
			if svc.Namespace == ns {
				return true
			}
		}
	}
	return false
}

// buildSnapshot merges source states into a snapshot.
func buildSnapshot(version uint64, states []*SourceState, derive *deriver) *Snapshot {
	s := &Snapshot{
		Version:   version,
		configs:   map[Key]*Config{},
		byKind:    map[Kind][]*Config{},
		endpoints: map[string][]*Endpoint{},
		synced:    true,
	}
	for _, st := range states {
		for _, c := range st.Configs {
			s.configs[c.Key()] = c
			s.byKind[c.Kind] = append(s.byKind[c.Kind], c)
		}
		s.services = append(s.services, st.Services...)
		for _, ep := range st.Endpoints {
			s.endpoints[ep.Service] = append(s.endpoints[ep.Service], ep)
		}
		s.diags = append(s.diags, st.Diagnostics...)
		s.synced = s.synced && st.Synced
	}
	for _, list := range s.byKind {
		sort.Slice(list, func(i, j int) bool { return lessConfig(list[i], list[j]) })
	}
	svcs, eps := derive.services(s.byKind[KindServiceEntry], s.byKind[KindWorkloadEntry])
	s.services = append(s.services, svcs...)
	for _, ep := range eps {
		s.endpoints[ep.Service] = append(s.endpoints[ep.Service], ep)
	}
	sort.SliceStable(s.services, func(i, j int) bool {
		a, b := s.services[i], s.services[j]
		if a.Hostname != b.Hostname {
			return a.Hostname < b.Hostname
		}
		return a.Namespace < b.Namespace
	})
	for _, list := range s.endpoints {
		sort.SliceStable(list, func(i, j int) bool { return list[i].Address < list[j].Address })
	}
	return s
}

func lessConfig(a, b *Config) bool {
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	if a.Name != b.Name {
		return a.Name < b.Name
	}
	return a.Source < b.Source
}
