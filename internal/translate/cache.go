package translate

import (
	"sync"

	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/weftmesh/weft/internal/model"
)

// Cache lets the proxies generated from one snapshot share the parts of
// their configuration that do not depend on the proxy: a cluster's load
// assignment is the same for every proxy with the same DestinationRule
// policy for it and the same locality. It keeps the entries of the latest
// snapshot only. Its methods are safe for concurrent use; the shared
// messages must not be modified (the xDS server only marshals them).
type Cache struct {
	mu   sync.Mutex
	snap *model.Snapshot
	cla  map[claKey]*endpoint.ClusterLoadAssignment
}

// claKey identifies a load assignment: the cluster, the DestinationRule
// that shaped it (its subset labels and policy) and the proxy's locality.
type claKey struct {
	cluster  string
	rule     *model.Meta
	policy   policy
	locality string
}

// NewCache returns an empty cache.
func NewCache() *Cache { return &Cache{} }

// Generate is [Generate] sharing work through the cache: its output is
// equal to Generate's for the same arguments.
func (c *Cache) Generate(snap *model.Snapshot, proxy *model.Proxy) *Resources {
	return generate(snap, proxy, c)
}

// lookup returns the cached assignment for key in snap, or nil.
func (c *Cache) lookup(snap *model.Snapshot, key claKey) *endpoint.ClusterLoadAssignment {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap != snap {
		return nil
	}
	return c.cla[key]
}

// store records la for key in snap, dropping entries of older snapshots.
func (c *Cache) store(snap *model.Snapshot, key claKey, la *endpoint.ClusterLoadAssignment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap != snap {
		if c.snap != nil && snap.Version < c.snap.Version {
			return // a late caller with an older snapshot
		}
		c.snap, c.cla = snap, map[claKey]*endpoint.ClusterLoadAssignment{}
	}
	c.cla[key] = la
}

// loadAssignments is the package function, through the cache when c is
// not nil.
func (c *Cache) loadAssignments(snap *model.Snapshot, targets []target, eps endpointSource, proxyLocality string, pa peerAuthIndex) []*endpoint.ClusterLoadAssignment {
	if c == nil {
		return loadAssignments(targets, eps, proxyLocality, pa)
	}
	var out []*endpoint.ClusterLoadAssignment
	var missing []target
	var keys []claKey
	for i := range targets {
		t := &targets[i]
		if !t.usesEDS() {
			continue
		}
		key := claKey{cluster: t.name, rule: t.rule, policy: t.policy, locality: proxyLocality}
		if la := c.lookup(snap, key); la != nil {
			out = append(out, la)
			continue
		}
		missing = append(missing, *t)
		keys = append(keys, key)
	}
	for i, la := range loadAssignments(missing, eps, proxyLocality, pa) {
		c.store(snap, keys[i], la)
		out = append(out, la)
	}
	return out
}
