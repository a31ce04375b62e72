package xds

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// sharedCache is the server's cache behind go-control-plane's xDS server
// (a cache.Cache): it answers each proxy's watches from the proxy's
// current proxySnapshot. Proxies that share a proxySnapshot share what
// their responses are made of: one []*anypb.Any per type whose values
// alias the interned encodings, handed to every stream as is. A response
// costs a small struct per proxy, not a copy of its resources (ADR 0008).
//
// It answers like go-control-plane's snapshot cache: state of the world
// responds when the requested version differs from the snapshot's (or,
// outside ADS mode, when a subscribed resource was not returned yet); in
// ADS mode a request that names resources is answered only once it names
// every resource of the type; delta sends the resources whose content hash
// differs from what the stream holds and the removals. Watches that
// cannot be answered wait for the next snapshot, and are answered in ADS
// order (clusters, endpoints, listeners, routes, secrets).
type sharedCache struct {
	log cacheLogger

	mu     sync.Mutex
	nextID int64
	nodes  map[string]*cacheNode
}

// cacheNode is the cache's state of one node id.
type cacheNode struct {
	snap   *proxySnapshot // nil until the first SetSnapshot
	sotw   map[int64]*sotwWatch
	deltas map[int64]*deltaWatch
}

// sotwWatch is an open state-of-the-world request.
type sotwWatch struct {
	req *discovery.DiscoveryRequest
	sub cache.Subscription
	out chan cache.Response
}

// deltaWatch is an open delta request.
type deltaWatch struct {
	req *discovery.DeltaDiscoveryRequest
	sub cache.Subscription
	out chan cache.DeltaResponse
}

func newSharedCache(log cacheLogger) *sharedCache {
	return &sharedCache{log: log, nodes: map[string]*cacheNode{}}
}

// node returns the state of a node id, creating it. c.mu must be held.
func (c *sharedCache) node(id string) *cacheNode {
	n := c.nodes[id]
	if n == nil {
		n = &cacheNode{sotw: map[int64]*sotwWatch{}, deltas: map[int64]*deltaWatch{}}
		c.nodes[id] = n
	}
	return n
}

// SetSnapshot makes ps the node's configuration and answers its open
// watches that it satisfies, in ADS order.
func (c *sharedCache) SetSnapshot(id string, ps *proxySnapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.node(id)
	n.snap = ps
	for _, typeURL := range typeURLs {
		for wid, w := range n.sotw {
			if w.req.GetTypeUrl() == typeURL && c.respondSotw(ps, w) {
				delete(n.sotw, wid)
			}
		}
		for wid, w := range n.deltas {
			if w.req.GetTypeUrl() == typeURL && c.respondDelta(ps, w) {
				delete(n.deltas, wid)
			}
		}
	}
}

// ClearSnapshot forgets a node: its configuration and its watches.
func (c *sharedCache) ClearSnapshot(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.nodes, id)
}

// snapshot returns the node's current configuration, or nil.
func (c *sharedCache) snapshot(id string) *proxySnapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.nodes[id]; n != nil {
		return n.snap
	}
	return nil
}

// CreateWatch answers a state-of-the-world request now if it can, or
// keeps it until a snapshot does.
func (c *sharedCache) CreateWatch(req *cache.Request, sub cache.Subscription, out chan cache.Response) (func(), error) {
	id := req.GetNode().GetId()
	w := &sotwWatch{req: trimRequest(req), sub: sub, out: out}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.node(id)
	if n.snap != nil && c.respondSotw(n.snap, w) {
		return func() {}, nil
	}
	c.nextID++
	wid := c.nextID
	n.sotw[wid] = w
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if n := c.nodes[id]; n != nil {
			delete(n.sotw, wid)
		}
	}, nil
}

// CreateDeltaWatch answers a delta request now if there is something to
// send, or keeps it until a snapshot changes what the stream holds.
func (c *sharedCache) CreateDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, out chan cache.DeltaResponse) (func(), error) {
	id := req.GetNode().GetId()
	w := &deltaWatch{req: req, sub: sub, out: out}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.node(id)
	if n.snap != nil && c.respondDelta(n.snap, w) {
		return func() {}, nil
	}
	c.nextID++
	wid := c.nextID
	n.deltas[wid] = w
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if n := c.nodes[id]; n != nil {
			delete(n.deltas, wid)
		}
	}, nil
}

// Fetch answers a REST-style request from the node's snapshot.
func (c *sharedCache) Fetch(_ context.Context, req *cache.Request) (cache.Response, error) {
	ps := c.snapshot(req.GetNode().GetId())
	if ps == nil {
		return nil, errors.New("xds: no configuration for this node yet")
	}
	tr := ps.types[req.GetTypeUrl()]
	if tr == nil {
		return nil, fmt.Errorf("xds: unknown type %q", req.GetTypeUrl())
	}
	if req.GetVersionInfo() == tr.version {
		return nil, &types.SkipFetchError{}
	}
	var resources []*anypb.Any
	if names := req.GetResourceNames(); len(names) == 0 {
		resources = tr.anys
	} else {
		set := make(map[string]struct{}, len(names))
		for _, n := range names {
			set[n] = struct{}{}
		}
		resources = tr.selectSet(set)
	}
	return &sotwResponse{req: req, version: tr.version, resources: slices.Clone(resources)}, nil
}

// respondSotw sends w its response from ps if one is due, and reports
// whether it did. c.mu must be held.
func (c *sharedCache) respondSotw(ps *proxySnapshot, w *sotwWatch) bool {
	req := w.req
	tr := ps.types[req.GetTypeUrl()]
	if tr == nil {
		return false // a type Weft does not serve: never answered
	}
	ads := !isProxyless(req.GetNode())
	subscribed := w.sub.SubscribedResources()
	wildcard := w.sub.IsWildcard()
	if req.GetVersionInfo() == tr.version {
		// The version names all resources of the type and their content,
		// so the proxy has them, unless it subscribed by name to one it
		// was not sent yet (proxyless gRPC asks for one at a time).
		if ads || wildcard || !newlySubscribed(tr, w.sub) {
			return false
		}
	}
	if ads && !wildcard && len(subscribed) != 0 {
		// As go-control-plane's ADS mode: answer once the proxy asks for
		// every resource of the type, so that it gets them in one piece.
		for _, n := range tr.names {
			if _, ok := subscribed[n]; !ok {
				c.log.Debugf("ADS mode: not responding to %s request (%d names) for node %q: %q not requested",
					TypeName(req.GetTypeUrl()), len(subscribed), req.GetNode().GetId(), n)
				return false
			}
		}
	}
	r := &sotwResponse{req: req, version: tr.version}
	if wildcard {
		r.all = tr
	} else {
		r.resources = tr.selectSet(subscribed)
		if len(r.resources) == len(tr.anys) {
			r.all, r.resources = tr, nil
		}
		if !ads {
			// Remember what a proxyless client was sent, to answer it
			// when it subscribes to one more resource.
			r.returned = make(map[string]string, len(subscribed))
			for n := range subscribed {
				if _, ok := tr.index[n]; ok {
					r.returned[n] = tr.version
				}
			}
		}
	}
	w.out <- r
	return true
}

// newlySubscribed reports whether sub names a resource of tr that was not
// returned to it yet.
func newlySubscribed(tr *typeResources, sub cache.Subscription) bool {
	known := sub.ReturnedResources()
	for n := range sub.SubscribedResources() {
		if _, ok := tr.index[n]; ok {
			if _, sent := known[n]; !sent {
				return true
			}
		}
	}
	return false
}

// selectSet returns the resources named in set, in response order: all
// of them, shared, when set names every resource.
func (t *typeResources) selectSet(set map[string]struct{}) []*anypb.Any {
	found := 0
	for n := range set {
		if _, ok := t.index[n]; ok {
			found++
		}
	}
	if found == len(t.names) {
		return t.anys
	}
	out := make([]*anypb.Any, 0, found)
	for i, n := range t.names {
		if _, ok := set[n]; ok {
			out = append(out, t.anys[i])
		}
	}
	return out
}

// trimRequest returns a copy of a request without its resource names:
// what a watch and its response keep of it (the subscription has the
// names; a sidecar's EDS request names every cluster).
func trimRequest(r *discovery.DiscoveryRequest) *discovery.DiscoveryRequest {
	return &discovery.DiscoveryRequest{
		VersionInfo: r.GetVersionInfo(), Node: r.GetNode(), TypeUrl: r.GetTypeUrl(),
		ResponseNonce: r.GetResponseNonce(), ErrorDetail: r.GetErrorDetail(),
	}
}

// respondDelta sends w the resources whose content differs from what the
// stream holds, and the removals, if there are any (or if it is the
// stream's first wildcard request, which Envoy needs answered to
// initialize), and reports whether it sent. c.mu must be held.
func (c *sharedCache) respondDelta(ps *proxySnapshot, w *deltaWatch) bool {
	req := w.req
	tr := ps.types[req.GetTypeUrl()]
	if tr == nil {
		return false
	}
	returned := w.sub.ReturnedResources()
	all := tr.deltaResources()
	var send []*discovery.Resource
	var removed []string
	var next map[string]string
	if w.sub.IsWildcard() {
		next = make(map[string]string, len(tr.names))
		for i, n := range tr.names {
			h := tr.hashes[n]
			next[n] = h
			if prev, ok := returned[n]; !ok || prev != h {
				send = append(send, all[i])
			}
		}
		for n := range returned {
			if _, ok := tr.index[n]; !ok {
				removed = append(removed, n)
			}
		}
	} else {
		subscribed := w.sub.SubscribedResources()
		next = make(map[string]string, len(subscribed))
		for n := range subscribed {
			prev, had := returned[n]
			if i, ok := tr.index[n]; ok {
				h := tr.hashes[n]
				if prev != h || !had {
					send = append(send, all[i])
				}
				next[n] = h
			} else if had {
				removed = append(removed, n)
			}
		}
	}
	if len(send) == 0 && len(removed) == 0 && !(w.sub.IsWildcard() && req.GetResponseNonce() == "") {
		return false
	}
	r := &deltaResponse{req: req, version: tr.version, resources: send, removed: removed, next: next}
	if len(send) == len(tr.names) && len(send) > 0 {
		r.all, r.resources = tr, nil // the first response of a stream, typically
	}
	w.out <- r
	return true
}

// sotwResponse is a state-of-the-world response. Its resources are shared
// with every proxy that has the same configuration; GetDiscoveryResponse
// hands out a new response around them each time, since the server sets
// the nonce on it.
type sotwResponse struct {
	req     *discovery.DiscoveryRequest
	version string
	// all is set when the response carries every resource of the type:
	// the response then carries their shared encoding (wireCodec writes
	// it without a copy). Otherwise resources are the ones it carries.
	all       *typeResources
	resources []*anypb.Any // shared, read-only
	returned  map[string]string
}

var _ cache.Response = (*sotwResponse)(nil)

// GetDiscoveryResponse returns a new response around the shared resources.
func (r *sotwResponse) GetDiscoveryResponse() (*discovery.DiscoveryResponse, error) {
	out := &discovery.DiscoveryResponse{VersionInfo: r.version, Resources: r.resources, TypeUrl: r.req.GetTypeUrl()}
	if r.all != nil {
		// The resources field, encoded once for all the proxies that
		// share this configuration, as unknown fields: any encoder
		// writes them out verbatim, which is the field itself.
		out.ProtoReflect().SetUnknown(r.all.wire())
	}
	return out, nil
}

// GetRequest returns the request answered (without its resource names).
func (r *sotwResponse) GetRequest() *discovery.DiscoveryRequest { return r.req }

// GetVersion returns the type's version.
func (r *sotwResponse) GetVersion() (string, error) { return r.version, nil }

// GetResponseVersion returns the type's version.
func (r *sotwResponse) GetResponseVersion() string { return r.version }

// GetReturnedResources returns what a proxyless client was sent, or nil.
func (r *sotwResponse) GetReturnedResources() map[string]string { return r.returned }

// GetContext returns the background context.
func (r *sotwResponse) GetContext() context.Context { return context.Background() }

// deltaResponse is a delta response; its resource entries are shared.
type deltaResponse struct {
	req     *discovery.DeltaDiscoveryRequest
	version string
	// all is set when the response carries every resource of the type,
	// as their shared encoding (see sotwResponse); otherwise resources
	// are the ones it carries.
	all       *typeResources
	resources []*discovery.Resource // entries shared, read-only
	removed   []string
	next      map[string]string
}

var _ cache.DeltaResponse = (*deltaResponse)(nil)

// GetDeltaDiscoveryResponse returns a new response around the shared
// resource entries.
func (r *deltaResponse) GetDeltaDiscoveryResponse() (*discovery.DeltaDiscoveryResponse, error) {
	out := &discovery.DeltaDiscoveryResponse{SystemVersionInfo: r.version, Resources: r.resources, RemovedResources: r.removed, TypeUrl: r.req.GetTypeUrl()}
	if r.all != nil {
		out.ProtoReflect().SetUnknown(r.all.deltaWire())
	}
	return out, nil
}

// GetDeltaRequest returns the request answered.
func (r *deltaResponse) GetDeltaRequest() *discovery.DeltaDiscoveryRequest { return r.req }

// GetSystemVersion returns the type's version.
func (r *deltaResponse) GetSystemVersion() (string, error) { return r.version, nil }

// GetResponseVersion returns the type's version.
func (r *deltaResponse) GetResponseVersion() string { return r.version }

// GetNextVersionMap returns what the stream holds after this response.
func (r *deltaResponse) GetNextVersionMap() map[string]string { return r.next }

// GetReturnedResources returns what the stream holds after this response.
func (r *deltaResponse) GetReturnedResources() map[string]string { return r.next }

// GetContext returns the background context.
func (r *deltaResponse) GetContext() context.Context { return context.Background() }
