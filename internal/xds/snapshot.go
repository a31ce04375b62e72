package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"sync"
	"unique"
	"unsafe"
	"weak"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tls "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/internal/translate"
)

// Type URLs of the resources Weft serves, in the order ADS sends them:
// clusters and endpoints before the listeners and routes that use them.
var typeURLs = []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType, resource.SecretType}

// TypeName returns Istio's short name of an xDS type URL ("cds", "eds",
// "lds", "rds", "sds"), or the URL itself for other types.
func TypeName(typeURL string) string {
	switch typeURL {
	case resource.ClusterType:
		return "cds"
	case resource.EndpointType:
		return "eds"
	case resource.ListenerType:
		return "lds"
	case resource.RouteType:
		return "rds"
	case resource.SecretType:
		return "sds"
	}
	return typeURL
}

// proxySnapshot is the xDS configuration computed for one proxy. Proxies
// the generator cannot tell apart share one proxySnapshot (builtMemo), and
// with it every response the cache hands out: a proxySnapshot is never
// modified once built.
type proxySnapshot struct {
	// types maps type URL to that type's resources, for every type in
	// typeURLs.
	types map[string]*typeResources
	// versions maps type URL to the version of that type's resources: a
	// hash of their names and content, so it changes exactly when they do.
	versions map[string]string
	// hashes maps type URL to resource name to content hash.
	hashes map[string]map[string]string
	// pins keeps the interned encodings of the resources alive, so that
	// proxies with identical resources keep sharing one copy. It maps
	// type URL to that type's encodings, in response order.
	pins map[string][]unique.Handle[string]
}

// typeResources are one type's resources of a proxySnapshot, ready to be
// sent: state-of-the-world responses that carry all of them share anys.
type typeResources struct {
	version string
	names   []string     // in response order
	anys    []*anypb.Any // names[i]'s encoding; shared, read-only
	index   map[string]int
	hashes  map[string]string // name → content hash

	// delta holds the resources as delta entries, built on first use.
	deltaOnce sync.Once
	delta     []*discovery.Resource
	// wireBytes is the encoding of all the resources as a response's
	// resources field, built on first use (wire).
	wireOnce  sync.Once
	wireBytes []byte
	// deltaWireBytes is the same for delta responses (deltaWire).
	deltaWireOnce  sync.Once
	deltaWireBytes []byte
}

// deltaResources returns the resources as delta response entries, in
// response order; the result is shared and must not be modified.
func (t *typeResources) deltaResources() []*discovery.Resource {
	t.deltaOnce.Do(func() {
		t.delta = make([]*discovery.Resource, len(t.names))
		for i, n := range t.names {
			t.delta[i] = &discovery.Resource{Name: n, Version: t.hashes[n], Resource: t.anys[i]}
		}
	})
	return t.delta
}

// typeResources returns the snapshot's resources of a type, or nil (also
// for a nil snapshot).
func (ps *proxySnapshot) typeResources(typeURL string) *typeResources {
	if ps == nil {
		return nil
	}
	return ps.types[typeURL]
}

// resources returns the snapshot's resources of a type by name (tests,
// debugging).
func (ps *proxySnapshot) resources(typeURL string) map[string]*anypb.Any {
	t := ps.types[typeURL]
	if t == nil {
		return nil
	}
	out := make(map[string]*anypb.Any, len(t.names))
	for i, n := range t.names {
		out[n] = t.anys[i]
	}
	return out
}

// encoded is a resource ready for the cache: its Any, whose value aliases
// the interned encoding pin, and its content hash (the one
// go-control-plane computes, cache.HashResource, so versions in delta
// responses are what go-control-plane would send).
type encoded struct {
	any  *anypb.Any
	pin  unique.Handle[string]
	hash string
}

func encode(typeURL string, b []byte) encoded {
	a, pin := anyResource(typeURL, b)
	sum := sha256.Sum256(b)
	return encoded{any: a, pin: pin, hash: hex.EncodeToString(sum[:])}
}

// encodingMemo remembers the encodings of endpoint assignments and
// clusters by identity. The translator's cache hands the same immutable
// assignment, and the same cluster of a service without a
// DestinationRule, to every proxy that needs it, so a push encodes each
// once instead of once per distinct configuration. Keys are weak: the
// memo keeps nothing alive. It forgets everything when it reaches its size
// limit (the generator then does not share, and remembering would not
// pay).
type encodingMemo struct {
	mu       sync.Mutex
	m        map[weak.Pointer[endpoint.ClusterLoadAssignment]]encoded
	clusters map[weak.Pointer[cluster.Cluster]]encoded
}

const memoLimit = 1 << 16

func (m *encodingMemo) lookup(cla *endpoint.ClusterLoadAssignment) (encoded, bool) {
	if m == nil {
		return encoded{}, false
	}
	return memoLookup(&m.mu, &m.m, cla)
}

// lookupResource and storeResource remember the encodings of the
// resource types the translator shares: endpoint assignments and
// clusters.
func (m *encodingMemo) lookupResource(r types.Resource) (encoded, bool) {
	if m == nil {
		return encoded{}, false
	}
	switch r := r.(type) {
	case *endpoint.ClusterLoadAssignment:
		return memoLookup(&m.mu, &m.m, r)
	case *cluster.Cluster:
		return memoLookup(&m.mu, &m.clusters, r)
	}
	return encoded{}, false
}

func (m *encodingMemo) storeResource(r types.Resource, e encoded) {
	if m == nil {
		return
	}
	switch r := r.(type) {
	case *endpoint.ClusterLoadAssignment:
		memoStore(&m.mu, &m.m, r, e)
	case *cluster.Cluster:
		memoStore(&m.mu, &m.clusters, r, e)
	}
}

func memoLookup[T any](mu *sync.Mutex, m *map[weak.Pointer[T]]encoded, p *T) (encoded, bool) {
	if p == nil {
		return encoded{}, false
	}
	wp := weak.Make(p)
	mu.Lock()
	e, ok := (*m)[wp]
	mu.Unlock()
	if ok && wp.Value() != p {
		ok = false
	}
	return e, ok
}

func memoStore[T any](mu *sync.Mutex, m *map[weak.Pointer[T]]encoded, p *T, e encoded) {
	if p == nil {
		return
	}
	mu.Lock()
	defer mu.Unlock()
	if *m == nil || len(*m) >= memoLimit {
		*m = map[weak.Pointer[T]]encoded{}
	}
	(*m)[weak.Make(p)] = e
}

// anyResource returns an Any of typeURL whose value is b, sharing one
// interned copy of b among all proxies whose resource has the same
// encoding. Snapshots hold resources in this form: a proxy's generated
// objects are garbage once encoded, identical resources of different
// proxies take memory once, and a response is never marshaled before
// gRPC writes it.
func anyResource(typeURL string, b []byte) (*anypb.Any, unique.Handle[string]) {
	// unique.Make copies a string it has not seen; b is not modified
	// afterwards, so a string view of it is enough for the lookup.
	h := unique.Make(unsafe.String(unsafe.SliceData(b), len(b)))
	s := h.Value()
	// The value is only ever read (copied to the wire by the marshaler,
	// or decoded), so aliasing the immutable string is safe.
	return &anypb.Any{TypeUrl: typeURL, Value: unsafe.Slice(unsafe.StringData(s), len(s))}, h
}

// decodeResource decodes a snapshot resource back into its Envoy type.
func decodeResource(typeURL string, a *anypb.Any) (proto.Message, error) {
	mt, err := protoregistry.GlobalTypes.FindMessageByURL(typeURL)
	if err != nil {
		return nil, err
	}
	m := mt.New().Interface()
	if err := proto.Unmarshal(a.GetValue(), m); err != nil {
		return nil, err
	}
	return m, nil
}

// buildSnapshot turns generated resources into a cache snapshot with
// content-derived versions. It makes the snapshot consistent the way an
// ADS client needs: every EDS cluster gets a ClusterLoadAssignment (an
// empty one if the generator gave none), and endpoint assignments and
// route configurations no cluster or listener refers to are dropped
// (an ADS client never asks for them, and go-control-plane would hold
// back the whole EDS or RDS response waiting for it to); the same holds
// for secrets no TLS context asks for over SDS. A route
// configuration referred to but missing is an error. References from
// api_listeners (proxyless gRPC) count, unlike in go-control-plane's
// Snapshot.Consistent.
//
// memo, if not nil, remembers encodings of endpoint assignments the
// generator shares between proxies.
func buildSnapshot(res *translate.Resources, memo *encodingMemo) (*proxySnapshot, error) {
	if res == nil {
		res = &translate.Resources{}
	}
	byType := map[string][]types.Resource{}
	for _, c := range res.Clusters {
		byType[resource.ClusterType] = append(byType[resource.ClusterType], c)
	}
	for _, l := range res.Listeners {
		byType[resource.ListenerType] = append(byType[resource.ListenerType], l)
	}
	if len(res.Secrets) > 0 {
		// Secrets: only those a cluster or listener asks for over SDS
		// (ADS would hold SDS back waiting for a request for the others).
		used, err := secretRefs(res)
		if err != nil {
			return nil, err
		}
		for _, s := range res.Secrets {
			if used[s.GetName()] {
				byType[resource.SecretType] = append(byType[resource.SecretType], s)
			}
		}
	}

	// Endpoints: exactly those EDS clusters use.
	edsNames := map[string]bool{}
	for _, c := range res.Clusters {
		if n := edsName(c); n != "" {
			edsNames[n] = true
		}
	}
	haveCLA := map[string]bool{}
	for _, e := range res.Endpoints {
		if edsNames[e.GetClusterName()] && !haveCLA[e.GetClusterName()] {
			haveCLA[e.GetClusterName()] = true
			byType[resource.EndpointType] = append(byType[resource.EndpointType], e)
		}
	}
	for _, n := range sortedKeys(edsNames) {
		if !haveCLA[n] {
			byType[resource.EndpointType] = append(byType[resource.EndpointType], &endpoint.ClusterLoadAssignment{ClusterName: n})
		}
	}

	// Routes: exactly those listeners use; all must exist.
	rdsNames := map[string]bool{}
	for _, l := range res.Listeners {
		if err := listenerRoutes(l, rdsNames); err != nil {
			return nil, err
		}
	}
	haveRoute := map[string]bool{}
	for _, r := range res.Routes {
		if rdsNames[r.GetName()] && !haveRoute[r.GetName()] {
			haveRoute[r.GetName()] = true
			byType[resource.RouteType] = append(byType[resource.RouteType], r)
		}
	}
	for _, n := range sortedKeys(rdsNames) {
		if !haveRoute[n] {
			return nil, fmt.Errorf("inconsistent configuration: a listener refers to route configuration %q, which was not generated", n)
		}
	}

	ps := &proxySnapshot{
		types:    make(map[string]*typeResources, len(typeURLs)),
		versions: make(map[string]string, len(typeURLs)),
		hashes:   make(map[string]map[string]string, len(typeURLs)),
		pins:     make(map[string][]unique.Handle[string], len(typeURLs)),
	}
	opts := proto.MarshalOptions{Deterministic: true}
	for _, typeURL := range typeURLs {
		list := byType[typeURL]
		tr := &typeResources{
			names:  make([]string, 0, len(list)),
			anys:   make([]*anypb.Any, 0, len(list)),
			index:  make(map[string]int, len(list)),
			hashes: make(map[string]string, len(list)),
		}
		pins := make([]unique.Handle[string], 0, len(list))
		for _, r := range list {
			name := cache.GetResourceName(r)
			if name == "" {
				return nil, fmt.Errorf("%s resource without a name", TypeName(typeURL))
			}
			if _, dup := tr.index[name]; dup {
				return nil, fmt.Errorf("two %s resources named %q", TypeName(typeURL), name)
			}
			enc, ok := memo.lookupResource(r)
			if !ok {
				b, err := opts.Marshal(r)
				if err != nil {
					return nil, fmt.Errorf("%s resource %q: %w", TypeName(typeURL), name, err)
				}
				enc = encode(typeURL, b)
				memo.storeResource(r, enc)
			}
			tr.index[name] = len(tr.names)
			tr.names = append(tr.names, name)
			tr.anys = append(tr.anys, enc.any)
			tr.hashes[name] = enc.hash
			pins = append(pins, enc.pin)
		}
		tr.version = typeVersion(tr.hashes)
		ps.types[typeURL] = tr
		ps.versions[typeURL] = tr.version
		ps.hashes[typeURL] = tr.hashes
		ps.pins[typeURL] = pins
	}
	return ps, nil
}

// typeVersion hashes the names and content hashes of one type's
// resources into a short version string.
func typeVersion(hashes map[string]string) string {
	if len(hashes) == 0 {
		return "empty"
	}
	names := make([]string, 0, len(hashes))
	for n := range hashes {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		h.Write([]byte(n))
		h.Write([]byte{0})
		h.Write([]byte(hashes[n]))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// secretRefs returns the names of the SDS secrets the clusters' and
// listeners' TLS contexts refer to.
func secretRefs(res *translate.Resources) (map[string]bool, error) {
	out := map[string]bool{}
	add := func(c *tls.CommonTlsContext) {
		for _, s := range c.GetTlsCertificateSdsSecretConfigs() {
			out[s.GetName()] = true
		}
		if s := c.GetValidationContextSdsSecretConfig(); s != nil {
			out[s.GetName()] = true
		}
		if s := c.GetCombinedValidationContext().GetValidationContextSdsSecretConfig(); s != nil {
			out[s.GetName()] = true
		}
	}
	socket := func(owner string, ts *core.TransportSocket, upstream bool) error {
		a := ts.GetTypedConfig()
		if a == nil {
			return nil
		}
		switch {
		case upstream && a.MessageIs((*tls.UpstreamTlsContext)(nil)):
			m := &tls.UpstreamTlsContext{}
			if err := a.UnmarshalTo(m); err != nil {
				return fmt.Errorf("%s: transport socket: %w", owner, err)
			}
			add(m.GetCommonTlsContext())
		case !upstream && a.MessageIs((*tls.DownstreamTlsContext)(nil)):
			m := &tls.DownstreamTlsContext{}
			if err := a.UnmarshalTo(m); err != nil {
				return fmt.Errorf("%s: transport socket: %w", owner, err)
			}
			add(m.GetCommonTlsContext())
		}
		return nil
	}
	for _, c := range res.Clusters {
		owner := fmt.Sprintf("cluster %q", c.GetName())
		if err := socket(owner, c.GetTransportSocket(), true); err != nil {
			return nil, err
		}
		for _, m := range c.GetTransportSocketMatches() {
			if err := socket(owner, m.GetTransportSocket(), true); err != nil {
				return nil, err
			}
		}
	}
	for _, l := range res.Listeners {
		chains := l.GetFilterChains()
		if dc := l.GetDefaultFilterChain(); dc != nil {
			chains = append(chains[:len(chains):len(chains)], dc)
		}
		for _, ch := range chains {
			if err := socket(fmt.Sprintf("listener %q", l.GetName()), ch.GetTransportSocket(), false); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// edsName returns the endpoint assignment an EDS cluster reads, or "".
func edsName(c *cluster.Cluster) string {
	if c.GetType() != cluster.Cluster_EDS {
		return ""
	}
	if n := c.GetEdsClusterConfig().GetServiceName(); n != "" {
		return n
	}
	return c.GetName()
}

// listenerRoutes adds the RDS route configuration names a listener refers
// to, in its filter chains or its api_listener, to out.
func listenerRoutes(l *listener.Listener, out map[string]bool) error {
	chains := l.GetFilterChains()
	if dc := l.GetDefaultFilterChain(); dc != nil {
		chains = append(chains[:len(chains):len(chains)], dc)
	}
	for _, ch := range chains {
		for _, f := range ch.GetFilters() {
			if m := resource.GetHTTPConnectionManager(f); m != nil {
				if n := m.GetRds().GetRouteConfigName(); n != "" {
					out[n] = true
				}
			}
		}
	}
	if a := l.GetApiListener().GetApiListener(); a != nil {
		m := &hcm.HttpConnectionManager{}
		if err := a.UnmarshalTo(m); err != nil {
			return fmt.Errorf("listener %q: api_listener: %w", l.GetName(), err)
		}
		if n := m.GetRds().GetRouteConfigName(); n != "" {
			out[n] = true
		}
	}
	return nil
}
