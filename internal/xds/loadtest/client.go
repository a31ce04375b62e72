// Package loadtest simulates xDS clients to measure how fast a control
// plane converges: Client is one Envoy-like ADS client, Run drives many of
// them through a configuration change.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"time"
	"unique"
	"unsafe"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	// Register the filter configurations listeners carry.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// Response is one xDS response a Client received and answered.
type Response struct {
	TypeURL string
	// Version is the response's version_info (system_version_info for delta).
	Version string
	Nonce   string
	// Names are the resources in the response; Removed the resources a
	// delta response removed.
	Names   []string
	Removed []string
	// NACKed is true if the client rejected the response.
	NACKed bool
	// Time is when the client had processed the response, just before it
	// sent its ACK or NACK.
	Time time.Time
}

// Client is a simulated Envoy-like xDS client on one ADS stream. It asks
// for all clusters and listeners, then for the endpoints of its EDS
// clusters and the route configurations its listeners use, and ACKs every
// response unless Reject says otherwise. Set the fields before Run; the
// accessors are safe to call while it runs.
type Client struct {
	// Node identifies the client.
	Node *core.Node
	// Delta selects the incremental protocol instead of state of the world.
	Delta bool
	// Reject, if set, sees every response; an error NACKs it with the
	// error's text. The resources are valid only during the call.
	Reject func(typeURL string, resources []*anypb.Any) error
	// Discard makes the client keep only the names of the resources it
	// receives, not their content (Resource then returns nil), except
	// what a delta client needs to follow clusters and listeners: many
	// simulated clients cost less.
	Discard bool
	// OnResponse, if set, is called for each response once processed,
	// before the ACK or NACK is sent (so a server that saw the ACK knows
	// OnResponse ran), on the client's goroutine.
	OnResponse func(Response)

	mu    sync.Mutex
	types map[string]*typeState
}

// typeState is what the client holds of one resource type.
type typeState struct {
	version   string // last accepted
	nonce     string // last received
	requested bool
	names     []string // subscribed names (EDS, RDS)
	resources map[string]held
	responses int
}

func (c *Client) state(typeURL string) *typeState {
	if c.types == nil {
		c.types = map[string]*typeState{}
	}
	ts := c.types[typeURL]
	if ts == nil {
		ts = &typeState{resources: map[string]held{}}
		c.types[typeURL] = ts
	}
	return ts
}

// Count returns how many responses of a type the client received.
func (c *Client) Count(typeURL string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state(typeURL).responses
}

// Version returns the last version of a type the client accepted.
func (c *Client) Version(typeURL string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state(typeURL).version
}

// Names returns the names of the resources of a type the client holds,
// sorted.
func (c *Client) Names(typeURL string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, 0, len(c.state(typeURL).resources))
	for n := range c.state(typeURL).resources {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Resource returns the resource of a type with the given name, or nil.
func (c *Client) Resource(typeURL, name string) *anypb.Any {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.state(typeURL).resources[name]
	if !ok || h.value == (unique.Handle[string]{}) {
		return nil
	}
	return h.any()
}

// held is a resource the client holds. Its encoding is interned: many
// simulated clients in one process share one copy of equal resources.
type held struct {
	typeURL string
	value   unique.Handle[string]
}

func hold(a *anypb.Any) held {
	// The received bytes are never modified: unique.Make copies them only
	// if no other client holds the same.
	v := a.GetValue()
	return held{typeURL: a.GetTypeUrl(), value: unique.Make(unsafe.String(unsafe.SliceData(v), len(v)))}
}

func (h held) any() *anypb.Any {
	return &anypb.Any{TypeUrl: h.typeURL, Value: []byte(h.value.Value())}
}

// Run opens the stream on conn and serves it until ctx ends (returning
// nil) or the stream fails.
func (c *Client) Run(ctx context.Context, conn grpc.ClientConnInterface) error {
	ads := discovery.NewAggregatedDiscoveryServiceClient(conn)
	var err error
	if c.Delta {
		err = c.runDelta(ctx, ads)
	} else {
		err = c.runSotW(ctx, ads)
	}
	if ctx.Err() != nil || errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

func (c *Client) runSotW(ctx context.Context, ads discovery.AggregatedDiscoveryServiceClient) error {
	st, err := ads.StreamAggregatedResources(ctx, grpc.ForceCodecV2(newResponseCodec()))
	if err != nil {
		return err
	}
	request := func(typeURL string, nack error) error {
		c.mu.Lock()
		ts := c.state(typeURL)
		ts.requested = true
		req := &discovery.DiscoveryRequest{Node: c.Node, TypeUrl: typeURL, VersionInfo: ts.version, ResponseNonce: ts.nonce, ResourceNames: slices.Clone(ts.names)}
		c.mu.Unlock()
		if nack != nil {
			req.ErrorDetail = &status.Status{Code: 3, Message: nack.Error()}
		}
		return st.Send(req)
	}
	if err := request(resource.ClusterType, nil); err != nil {
		return err
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		t := resp.GetTypeUrl()
		var nack error
		if c.Reject != nil {
			nack = c.Reject(t, resp.GetResources())
		}
		ev := Response{TypeURL: t, Version: resp.GetVersionInfo(), Nonce: resp.GetNonce(), NACKed: nack != nil}
		var refs map[string]bool // the dependent resources clusters or listeners name
		if nack == nil {
			if t == resource.ClusterType || t == resource.ListenerType {
				refs = map[string]bool{}
			}
			for _, a := range resp.GetResources() {
				n, err := readRefs(t, a.GetValue(), refs)
				if err != nil {
					nack = fmt.Errorf("decode %s: %w", a.GetTypeUrl(), err)
					break
				}
				ev.Names = append(ev.Names, n)
			}
		}
		c.mu.Lock()
		ts := c.state(t)
		ts.responses++
		ts.nonce = resp.GetNonce()
		if nack == nil {
			ts.version = resp.GetVersionInfo()
			ts.resources = make(map[string]held, len(resp.GetResources()))
			for i, n := range ev.Names {
				if c.Discard {
					ts.resources[n] = held{typeURL: t}
				} else {
					ts.resources[n] = hold(resp.GetResources()[i])
				}
			}
		}
		c.mu.Unlock()
		ev.Time = time.Now()
		if c.OnResponse != nil {
			c.OnResponse(ev)
		}
		if err := request(t, nack); err != nil {
			return err
		}
		if nack == nil {
			if err := c.follow(t, refs, func(dep string, _, _ []string) error { return request(dep, nil) }); err != nil {
				return err
			}
		}
	}
}

func (c *Client) runDelta(ctx context.Context, ads discovery.AggregatedDiscoveryServiceClient) error {
	st, err := ads.DeltaAggregatedResources(ctx)
	if err != nil {
		return err
	}
	if err := st.Send(&discovery.DeltaDiscoveryRequest{Node: c.Node, TypeUrl: resource.ClusterType}); err != nil {
		return err
	}
	c.mu.Lock()
	c.state(resource.ClusterType).requested = true
	c.mu.Unlock()
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		t := resp.GetTypeUrl()
		var nack error
		if c.Reject != nil {
			anys := make([]*anypb.Any, 0, len(resp.GetResources()))
			for _, r := range resp.GetResources() {
				anys = append(anys, r.GetResource())
			}
			nack = c.Reject(t, anys)
		}
		ev := Response{TypeURL: t, Version: resp.GetSystemVersionInfo(), Nonce: resp.GetNonce(), Removed: resp.GetRemovedResources(), NACKed: nack != nil}
		for _, r := range resp.GetResources() {
			ev.Names = append(ev.Names, r.GetName())
		}
		var refs map[string]bool
		c.mu.Lock()
		ts := c.state(t)
		ts.responses++
		ts.nonce = resp.GetNonce()
		if nack == nil {
			ts.version = resp.GetSystemVersionInfo()
			keep := !c.Discard || t == resource.ClusterType || t == resource.ListenerType
			for _, r := range resp.GetResources() {
				if keep {
					ts.resources[r.GetName()] = hold(r.GetResource())
				} else {
					ts.resources[r.GetName()] = held{typeURL: t}
				}
			}
			for _, n := range resp.GetRemovedResources() {
				delete(ts.resources, n)
			}
			if t == resource.ClusterType || t == resource.ListenerType {
				refs = map[string]bool{}
				for _, h := range ts.resources {
					v := h.value.Value() // read only
					if _, err := readRefs(t, unsafe.Slice(unsafe.StringData(v), len(v)), refs); err != nil {
						nack = fmt.Errorf("decode %s: %w", h.typeURL, err)
						break
					}
				}
			}
		}
		c.mu.Unlock()
		req := &discovery.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce()}
		if nack != nil {
			req.ErrorDetail = &status.Status{Code: 3, Message: nack.Error()}
		}
		ev.Time = time.Now()
		if c.OnResponse != nil {
			c.OnResponse(ev)
		}
		if err := st.Send(req); err != nil {
			return err
		}
		if nack == nil && refs != nil {
			err := c.follow(t, refs, func(dep string, add, remove []string) error {
				return st.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: dep, ResourceNamesSubscribe: add, ResourceNamesUnsubscribe: remove})
			})
			if err != nil {
				return err
			}
		}
	}
}

// follow updates the dependent subscriptions after clusters or listeners
// changed, as Envoy does: EDS for the EDS clusters, RDS for the route
// configurations the listeners use (refs, all of them), and listeners
// after the first clusters. send asks for the dependent type with the
// changed names.
func (c *Client) follow(typeURL string, refs map[string]bool, send func(dep string, add, remove []string) error) error {
	var dep string
	switch typeURL {
	case resource.ClusterType:
		dep = resource.EndpointType
	case resource.ListenerType:
		dep = resource.RouteType
	default:
		return nil
	}
	names := make([]string, 0, len(refs))
	for n := range refs {
		names = append(names, n)
	}
	sort.Strings(names)

	c.mu.Lock()
	ds := c.state(dep)
	old := ds.names
	changed := !slices.Equal(old, names) || (!ds.requested && len(names) > 0)
	ds.names = names
	if changed {
		ds.requested = true
	}
	needLDS := typeURL == resource.ClusterType && !c.state(resource.ListenerType).requested
	if needLDS {
		c.state(resource.ListenerType).requested = true
	}
	for n := range ds.resources {
		if !refs[n] {
			delete(ds.resources, n)
		}
	}
	c.mu.Unlock()

	if changed {
		var add, remove []string
		had := make(map[string]bool, len(old))
		for _, n := range old {
			had[n] = true
		}
		for _, n := range names {
			if !had[n] {
				add = append(add, n)
			}
		}
		for _, n := range old {
			if !refs[n] {
				remove = append(remove, n)
			}
		}
		if err := send(dep, add, remove); err != nil {
			return err
		}
	}
	if needLDS {
		return send(resource.ListenerType, nil, nil)
	}
	return nil
}

// nameOf reads field 1 of an encoded resource: the name of every Envoy
// resource type the client handles (cluster_name of a load assignment).
func nameOf(b []byte) (string, error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", protowire.ParseError(n)
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return "", protowire.ParseError(n)
			}
			return internedNames.get(v), nil
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return "", protowire.ParseError(n)
		}
		b = b[n:]
	}
	return "", errors.New("resource without a name")
}

// readRefs returns the name of an encoded resource and, for clusters and
// listeners, adds the endpoint assignments or route configurations it
// refers to to refs, as go-control-plane's GetResourceReferences would.
// Clusters, thousands per response, are read from their encoding
// (name, type, EDS service name) rather than decoded whole.
func readRefs(typeURL string, b []byte, refs map[string]bool) (string, error) {
	switch typeURL {
	case resource.ClusterType:
		return clusterRefs(b, refs)
	case resource.ListenerType:
		m := &listener.Listener{}
		if err := proto.Unmarshal(b, m); err != nil {
			return "", err
		}
		n := m.GetName()
		for dep := range cache.GetResourceReferences(map[string]types.ResourceWithTTL{n: {Resource: m}})[resource.RouteType] {
			refs[dep] = true
		}
		return n, nil
	}
	return nameOf(b)
}

// clusterRefs reads a Cluster's name (field 1), discovery type (2) and
// EDS service name (eds_cluster_config = 3, service_name = 2), and adds
// the assignment an EDS cluster reads to refs.
func clusterRefs(b []byte, refs map[string]bool) (string, error) {
	const edsType = 3 // envoy.config.cluster.v3.Cluster.DiscoveryType EDS
	var name, service string
	eds := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return "", protowire.ParseError(n)
			}
			name, b = internedNames.get(v), b[n:]
			continue
		case num == 2 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return "", protowire.ParseError(n)
			}
			eds, b = v == edsType, b[n:]
			continue
		case num == 3 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return "", protowire.ParseError(n)
			}
			s, err := fieldString(v, 2)
			if err != nil {
				return "", err
			}
			service, b = s, b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return "", protowire.ParseError(n)
		}
		b = b[n:]
	}
	if name == "" {
		return "", errors.New("cluster without a name")
	}
	if eds {
		if service != "" {
			refs[service] = true
		} else {
			refs[name] = true
		}
	}
	return name, nil
}

// fieldString returns the string field num of an encoded message, or "".
func fieldString(b []byte, num protowire.Number) (string, error) {
	for len(b) > 0 {
		fn, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", protowire.ParseError(n)
		}
		b = b[n:]
		if fn == num && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return "", protowire.ParseError(n)
			}
			return internedNames.get(v), nil
		}
		n = protowire.ConsumeFieldValue(fn, typ, b)
		if n < 0 {
			return "", protowire.ParseError(n)
		}
		b = b[n:]
	}
	return "", nil
}

// internedNames interns the resource names clients read: thousands of simulated
// clients in one process read the same names from every response.
var internedNames nameTable

// nameTable interns strings; it forgets everything past nameTableLimit.
type nameTable struct {
	mu sync.RWMutex
	m  map[string]string
}

const nameTableLimit = 1 << 18

// get returns the string spelled b, shared with earlier calls.
func (t *nameTable) get(b []byte) string {
	t.mu.RLock()
	s, ok := t.m[string(b)] // no allocation for the lookup
	t.mu.RUnlock()
	if ok {
		return s
	}
	s = string(b)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil || len(t.m) >= nameTableLimit {
		t.m = map[string]string{}
	}
	if old, ok := t.m[s]; ok {
		return old
	}
	t.m[s] = s
	return s
}
