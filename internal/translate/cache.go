package translate

import (
	"sync"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/weftmesh/weft/internal/model"
)

// Cache lets the proxies generated from one snapshot share work. Proxies
// that Generate cannot tell apart (same namespace, type, Sidecar, inbound
// ports, and labels where some configuration selects by them; see
// proxyKey) get the very same *Resources, generated once; and a cluster's
// load assignment is computed once for every proxy with the same
// DestinationRule policy for it and the same locality. It keeps the
// entries of the latest snapshot only. Its methods are safe for
// concurrent use; the shared Resources and messages must not be modified
// (the xDS server only marshals them, and may rely on the pointer
// identity of equal Resources to build them once).
type Cache struct {
	mu    sync.Mutex
	snap  *model.Snapshot
	cla   map[claKey]*endpoint.ClusterLoadAssignment
	facts *snapFacts
	keyed map[proxyKey]*keyedEntry
	// clusters are the outbound clusters of targets without a
	// DestinationRule: the same for every proxy that sees the service.
	clusters map[clusterKey]*cluster.Cluster
}

// clusterKey identifies an outbound cluster without a DestinationRule.
type clusterKey struct {
	name    string
	service *model.Service
}

// keyedEntry is the shared output for one proxyKey.
type keyedEntry struct {
	once sync.Once
	res  *Resources
}

// keyedLimit bounds the distinct keys kept per snapshot: when proxies
// rarely share (labels matter and every workload differs), the cache
// stops keeping whole configurations rather than holding one per proxy.
const keyedLimit = 64

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
	e := c.entry(snap, proxy)
	if e == nil {
		return generate(snap, proxy, c)
	}
	e.once.Do(func() { e.res = generate(snap, proxy, c) })
	if e.res == nil {
		// The first generation panicked: let this caller see it too.
		return generate(snap, proxy, c)
	}
	return e.res
}

// entry returns the shared entry for proxy in snap, or nil when the
// output is not to be shared (an older snapshot, or too many keys).
func (c *Cache) entry(snap *model.Snapshot, proxy *model.Proxy) *keyedEntry {
	c.mu.Lock()
	if !c.use(snap) {
		c.mu.Unlock()
		return nil
	}
	facts := c.facts
	if facts == nil {
		facts = newSnapFacts(snap)
		c.facts = facts
	}
	c.mu.Unlock()
	k := keyOf(snap, facts, proxy)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap != snap {
		return nil
	}
	e := c.keyed[k]
	if e == nil {
		if len(c.keyed) >= keyedLimit {
			return nil
		}
		e = &keyedEntry{}
		c.keyed[k] = e
	}
	return e
}

// use makes snap the cache's snapshot unless it is older, dropping the
// entries of the previous one. It reports whether the cache now holds
// snap. c.mu must be held.
func (c *Cache) use(snap *model.Snapshot) bool {
	if c.snap == snap {
		return true
	}
	if c.snap != nil && snap.Version < c.snap.Version {
		return false // a late caller with an older snapshot
	}
	c.snap, c.facts = snap, nil
	c.cla = map[claKey]*endpoint.ClusterLoadAssignment{}
	c.keyed = map[proxyKey]*keyedEntry{}
	c.clusters = map[clusterKey]*cluster.Cluster{}
	return true
}

// outboundCluster returns outboundCluster(t, eps) for a target without a
// DestinationRule, computed once per snapshot. The result is shared.
func (c *Cache) outboundCluster(snap *model.Snapshot, t *target, eps endpointSource) *cluster.Cluster {
	key := clusterKey{name: t.name, service: t.service}
	c.mu.Lock()
	if c.snap == snap {
		if cl := c.clusters[key]; cl != nil {
			c.mu.Unlock()
			return cl
		}
	}
	c.mu.Unlock()
	cl := outboundCluster(t, eps)
	c.mu.Lock()
	if c.use(snap) {
		c.clusters[key] = cl
	}
	c.mu.Unlock()
	return cl
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
	if c.use(snap) {
		c.cla[key] = la
	}
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
