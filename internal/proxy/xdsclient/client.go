// Package xdsclient is weft-proxy's ADS client. It speaks Envoy's v3
// aggregated discovery protocol (state of the world or delta) to a control
// plane, subscribes CDS → EDS and LDS → RDS like Envoy, ACKs or NACKs every
// response, and hands complete, consistent snapshots to a Handler.
package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Handler receives configuration from the client. Both methods are called
// from the client's single Run goroutine.
type Handler interface {
	// Validate checks one decoded resource beyond its ValidateAll (for
	// instance that every filter is understood). An error NACKs the whole
	// response it came in, which then changes nothing.
	Validate(typeURL, name string, res proto.Message) error
	// Apply installs a snapshot. It is called only with snapshots whose
	// references all resolve, except after the warming timeout.
	Apply(s *Snapshot)
}

// Options configures a Client.
type Options struct {
	// Address is the control plane's host:port.
	Address string
	// Node identifies this proxy.
	Node *corev3.Node
	// Delta selects the incremental protocol.
	Delta   bool
	Handler Handler
	// WarmingTimeout is how long an incomplete config may wait for missing
	// resources before it is applied anyway; 0 means wait forever.
	WarmingTimeout time.Duration
	// BackoffBase and BackoffMax bound the reconnect delay (full jitter).
	BackoffBase, BackoffMax time.Duration
	Logger                  *slog.Logger
}

// TypeStatus is what the client knows about one resource type.
type TypeStatus struct {
	Version   string
	Nonce     string
	Resources int
	LastNACK  string
	ACKs      int
	NACKs     int
}

// Status is a point-in-time copy of the client's state, for the admin API.
type Status struct {
	Connected bool
	Streams   int
	Applied   int
	LastError string
	Types     map[string]TypeStatus
}

// Client is an ADS client. Create it with New and drive it with Run.
type Client struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex // guards status only
	status Status

	// held is, with the delta protocol, what the client holds per type
	// across streams (resources, their versions, subscriptions): a new
	// stream announces it in initial_resource_versions so the server
	// sends only what changed. Only the Run goroutine uses it.
	held map[string]*typeState
}

// New checks opts and returns a client.
func New(opts Options) (*Client, error) {
	if opts.Address == "" {
		return nil, errors.New("xdsclient: empty address")
	}
	if opts.Node.GetId() == "" {
		return nil, errors.New("xdsclient: node id is required")
	}
	if opts.Handler == nil {
		return nil, errors.New("xdsclient: nil handler")
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = 500 * time.Millisecond
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 30 * time.Second
	}
	lg := opts.Logger
	if lg == nil {
		lg = slog.Default()
	}
	return &Client{opts: opts, log: lg.With("component", "xds"), status: Status{Types: map[string]TypeStatus{}}}, nil
}

// Status returns a copy of the client's state.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.status
	s.Types = make(map[string]TypeStatus, len(c.status.Types))
	for k, v := range c.status.Types {
		s.Types[k] = v
	}
	return s
}

func (c *Client) updateStatus(f func(*Status)) {
	c.mu.Lock()
	f(&c.status)
	c.mu.Unlock()
}

// Run connects, streams and reconnects with exponential backoff and jitter
// until ctx is done. The last applied config stays with the Handler while
// the control plane is unreachable.
func (c *Client) Run(ctx context.Context) error {
	attempt := 0
	for {
		gotResponse, err := c.runStream(ctx)
		if ctx.Err() != nil {
			return nil
		}
		c.updateStatus(func(s *Status) {
			s.Connected = false
			if err != nil {
				s.LastError = err.Error()
			}
		})
		if gotResponse {
			attempt = 0
		}
		d := c.backoff(attempt)
		attempt++
		c.log.Warn("xds stream ended, reconnecting", "err", err, "after", d)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func (c *Client) backoff(attempt int) time.Duration {
	ceil := c.opts.BackoffBase << min(attempt, 20)
	if ceil > c.opts.BackoffMax || ceil <= 0 {
		ceil = c.opts.BackoffMax
	}
	// Full jitter, but never less than a tenth of the base.
	return c.opts.BackoffBase/10 + rand.N(ceil)
}

// response is a SotW or delta response in one shape.
type response struct {
	typeURL string
	version string
	nonce   string
	// resources maps a name to its Any (delta: added or updated).
	resources []namedAny
	removed   []string
}

type namedAny struct {
	name    string
	version string // delta: the resource's version
	any     *anypb.Any
}

// typeState is the per-stream state of one resource type.
type typeState struct {
	version   string
	nonce     string
	received  bool
	nacks     int // consecutive NACKs, for nackDelay
	wildcard  bool
	names     map[string]bool // subscribed names when not wildcard
	resources map[string]proto.Message
	// versions are the delta versions of resources (initial_resource_versions
	// of the next stream).
	versions map[string]string
	// announced is set once this stream has sent its first request of
	// the type (delta: the one carrying initial_resource_versions).
	announced bool
}

// stream is one ADS stream's state; it belongs to the Run goroutine.
type stream struct {
	c     *Client
	send  func(typeURL string, st *typeState, ack *response, nack error, subscribe, unsubscribe []string) error
	types map[string]*typeState
	dirty bool
	// warm fires when an incomplete config has waited WarmingTimeout.
	warm      *time.Timer
	warmFired chan struct{}
	// delayed carries NACKs whose sending was postponed (see nackDelay).
	delayed chan func() error
}

func (c *Client) runStream(ctx context.Context) (gotResponse bool, err error) {
	conn, err := grpc.NewClient(c.opts.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return false, err
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ads := discovery.NewAggregatedDiscoveryServiceClient(conn)

	st := &stream{c: c, types: c.streamTypes()}

	responses := make(chan *response)
	recvErr := make(chan error, 1)
	if c.opts.Delta {
		s, err := ads.DeltaAggregatedResources(ctx)
		if err != nil {
			return false, err
		}
		first := true
		st.send = func(typeURL string, ts *typeState, ack *response, nack error, sub, unsub []string) error {
			req := &discovery.DeltaDiscoveryRequest{TypeUrl: typeURL, ResourceNamesSubscribe: sub, ResourceNamesUnsubscribe: unsub}
			if first {
				req.Node = c.opts.Node
				first = false
			}
			if !ts.announced && ts.resources != nil {
				ts.announced = true
				req.InitialResourceVersions = initialVersions(ts)
			}
			if ack != nil {
				req.ResponseNonce = ack.nonce
			}
			if nack != nil {
				req.ErrorDetail = &status.Status{Code: int32(codes.InvalidArgument), Message: nack.Error()}
			}
			return s.Send(req)
		}
		go receive(ctx, s.Recv, func(r *discovery.DeltaDiscoveryResponse) *response {
			resp := &response{typeURL: r.GetTypeUrl(), version: r.GetSystemVersionInfo(), nonce: r.GetNonce(), removed: r.GetRemovedResources()}
			for _, res := range r.GetResources() {
				resp.resources = append(resp.resources, namedAny{name: res.GetName(), version: res.GetVersion(), any: res.GetResource()})
			}
			return resp
		}, responses, recvErr)
	} else {
		s, err := ads.StreamAggregatedResources(ctx)
		if err != nil {
			return false, err
		}
		first := true
		st.send = func(typeURL string, ts *typeState, ack *response, nack error, _, _ []string) error {
			req := &discovery.DiscoveryRequest{TypeUrl: typeURL, VersionInfo: ts.version, ResponseNonce: ts.nonce}
			if !ts.wildcard {
				req.ResourceNames = sortedKeys(ts.names)
			}
			if first {
				req.Node = c.opts.Node
				first = false
			}
			if ack != nil {
				req.ResponseNonce = ack.nonce
			}
			if nack != nil {
				req.ErrorDetail = &status.Status{Code: int32(codes.InvalidArgument), Message: nack.Error()}
			}
			return s.Send(req)
		}
		go receive(ctx, s.Recv, func(r *discovery.DiscoveryResponse) *response {
			resp := &response{typeURL: r.GetTypeUrl(), version: r.GetVersionInfo(), nonce: r.GetNonce()}
			for _, a := range r.GetResources() {
				resp.resources = append(resp.resources, namedAny{any: a})
			}
			return resp
		}, responses, recvErr)
	}
	c.updateStatus(func(s *Status) { s.Connected = true; s.Streams++ })

	// Envoy's initial order: CDS, then LDS (EDS/RDS follow from them).
	// A delta stream resuming held resources also re-subscribes the EDS
	// and RDS names it holds, announcing their versions.
	for _, t := range subscriptionOrder {
		ts := st.types[t]
		var sub []string
		if !ts.wildcard {
			if len(ts.names) == 0 {
				continue // an empty first request would be a (legacy) wildcard
			}
			sub = sortedKeys(ts.names)
		}
		if err := st.send(t, ts, nil, nil, sub, nil); err != nil {
			return false, err
		}
	}
	st.warmFired = make(chan struct{}, 1)
	st.delayed = make(chan func() error, 8)
	st.startWarming()
	defer st.stopWarming()
	for {
		select {
		case <-ctx.Done():
			return gotResponse, ctx.Err()
		case err := <-recvErr:
			return gotResponse, err
		case send := <-st.delayed:
			if err := send(); err != nil {
				return gotResponse, err
			}
		case <-st.warmFired:
			st.warm = nil
			st.dirty = true
			st.tryApply(true)
		case r := <-responses:
			gotResponse = true
			if err := st.handle(r); err != nil {
				return gotResponse, err
			}
		}
	}
}

// handle processes one response: decode, validate, ACK or NACK, update
// subscriptions and apply when complete.
func (st *stream) handle(r *response) error {
	c := st.c
	ts, ok := st.types[r.typeURL]
	if !ok {
		// Not subscribed: NACK so the server knows.
		return st.send(r.typeURL, &typeState{}, r, fmt.Errorf("type %s not supported", r.typeURL), nil, nil)
	}
	decoded := make(map[string]proto.Message, len(r.resources))
	versions := make(map[string]string, len(r.resources))
	var errs []string
	for _, na := range r.resources {
		m, name, err := decode(r.typeURL, na.any)
		if err == nil {
			if na.name != "" && na.name != name {
				err = fmt.Errorf("resource named %q carries %q", na.name, name)
			} else if _, dup := decoded[name]; dup {
				err = fmt.Errorf("%s: duplicate resource name", name)
			} else {
				err = c.opts.Handler.Validate(r.typeURL, name, m)
			}
		}
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		decoded[name] = m
		versions[name] = na.version
	}
	if len(errs) > 0 {
		nack := errors.New(strings.Join(errs, "; "))
		c.log.Warn("NACK", "type", shortType(r.typeURL), "version", r.version, "err", nack)
		ts.nonce = r.nonce
		c.updateStatus(func(s *Status) {
			t := s.Types[r.typeURL]
			t.NACKs++
			t.LastNACK = nack.Error()
			t.Nonce = r.nonce
			s.Types[r.typeURL] = t
		})
		ts.nacks++
		d := nackDelay(ts.nacks)
		if d == 0 {
			return st.send(r.typeURL, ts, r, nack, nil, nil)
		}
		// A control plane re-sends a NACKed version as soon as it hears
		// the NACK; pacing repeated NACKs keeps that loop from spinning.
		delayed := st.delayed
		time.AfterFunc(d, func() {
			select {
			case delayed <- func() error { return st.send(r.typeURL, ts, r, nack, nil, nil) }:
			default:
			}
		})
		return nil
	}
	ts.nacks = 0

	// Accept; only a real change makes the config dirty.
	changed := false
	put := func(name string, m proto.Message) {
		if old, ok := ts.resources[name]; !ok || !proto.Equal(old, m) {
			ts.resources[name] = m
			changed = true
		}
	}
	switch {
	case c.opts.Delta:
		for name, m := range decoded {
			if !ts.wildcard && !ts.names[name] {
				continue // not subscribed (any more)
			}
			put(name, m)
			ts.versions[name] = versions[name]
		}
		for _, name := range r.removed {
			delete(ts.versions, name)
			if _, ok := ts.resources[name]; ok {
				delete(ts.resources, name)
				changed = true
			}
		}
	case r.typeURL == ClusterType || r.typeURL == ListenerType:
		// State of the world: an absent resource is deleted.
		for name := range ts.resources {
			if _, ok := decoded[name]; !ok {
				delete(ts.resources, name)
				changed = true
			}
		}
		for name, m := range decoded {
			put(name, m)
		}
	default:
		for name, m := range decoded {
			if ts.names[name] {
				put(name, m)
			}
		}
	}
	if changed || !ts.received {
		st.dirty = true
	}
	ts.version, ts.nonce, ts.received = r.version, r.nonce, true
	c.updateStatus(func(s *Status) {
		t := s.Types[r.typeURL]
		t.ACKs++
		t.Version, t.Nonce, t.Resources = r.version, r.nonce, len(ts.resources)
		s.Types[r.typeURL] = t
	})
	if err := st.send(r.typeURL, ts, r, nil, nil, nil); err != nil {
		return err
	}
	if err := st.resubscribe(); err != nil {
		return err
	}
	st.tryApply(false)
	return nil
}

// resubscribe follows CDS → EDS and LDS → RDS references.
func (st *stream) resubscribe() error {
	eds := map[string]bool{}
	for _, m := range st.types[ClusterType].resources {
		if n := EDSName(m.(*clusterv3.Cluster)); n != "" {
			eds[n] = true
		}
	}
	rds := map[string]bool{}
	for _, m := range st.types[ListenerType].resources {
		hcms, _ := ListenerHCMs(m.(*listenerv3.Listener))
		for _, h := range hcms {
			if n := h.GetRds().GetRouteConfigName(); n != "" {
				rds[n] = true
			}
		}
	}
	for _, x := range []struct {
		typeURL string
		want    map[string]bool
	}{{EndpointType, eds}, {RouteType, rds}} {
		ts := st.types[x.typeURL]
		var sub, unsub []string
		for n := range x.want {
			if !ts.names[n] {
				sub = append(sub, n)
			}
		}
		for n := range ts.names {
			if !x.want[n] {
				unsub = append(unsub, n)
				delete(ts.resources, n)
				delete(ts.versions, n)
			}
		}
		if len(sub) == 0 && len(unsub) == 0 {
			continue
		}
		sort.Strings(sub)
		sort.Strings(unsub)
		ts.names = x.want
		st.dirty = true
		if err := st.send(x.typeURL, ts, nil, nil, sub, unsub); err != nil {
			return err
		}
	}
	return nil
}

// missing lists unresolved references: EDS assignments, RDS configs and
// clusters named by routes or tcp_proxy.
func (st *stream) missing() []string {
	var out []string
	clusters := st.types[ClusterType].resources
	for name, m := range clusters {
		if n := EDSName(m.(*clusterv3.Cluster)); n != "" {
			if _, ok := st.types[EndpointType].resources[n]; !ok {
				out = append(out, "endpoints "+n+" (cluster "+name+")")
			}
		}
	}
	needCluster := func(from string) func(string) {
		return func(c string) {
			if _, ok := clusters[c]; !ok {
				out = append(out, "cluster "+c+" ("+from+")")
			}
		}
	}
	for name, m := range st.types[ListenerType].resources {
		hcms, tcp := ListenerHCMs(m.(*listenerv3.Listener))
		for _, c := range tcp {
			needCluster("listener " + name)(c)
		}
		for _, h := range hcms {
			if rc := h.GetRouteConfig(); rc != nil {
				RouteClusters(rc, needCluster("listener "+name))
			}
			if n := h.GetRds().GetRouteConfigName(); n != "" {
				if _, ok := st.types[RouteType].resources[n]; !ok {
					out = append(out, "route "+n+" (listener "+name+")")
				}
			}
		}
	}
	for name, m := range st.types[RouteType].resources {
		RouteClusters(m.(*routev3.RouteConfiguration), needCluster("route "+name))
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// tryApply hands a snapshot to the handler when it is complete, or when
// force is set (warming timeout) and something changed.
func (st *stream) tryApply(force bool) {
	if !st.dirty || !st.types[ClusterType].received || !st.types[ListenerType].received {
		// Never replace the last good config with one built before the
		// control plane has sent both clusters and listeners.
		return
	}
	miss := st.missing()
	if len(miss) > 0 && !force {
		st.c.log.Debug("warming", "missing", miss)
		st.startWarming()
		return
	}
	st.stopWarming()
	s := &Snapshot{
		Listeners: map[string]*listenerv3.Listener{},
		Clusters:  map[string]*clusterv3.Cluster{},
		Routes:    map[string]*routev3.RouteConfiguration{},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
		Versions:  map[string]string{},
		Complete:  len(miss) == 0,
		Missing:   miss,
	}
	for t, ts := range st.types {
		s.Versions[t] = ts.version
		for n, m := range ts.resources {
			switch r := m.(type) {
			case *listenerv3.Listener:
				s.Listeners[n] = r
			case *clusterv3.Cluster:
				s.Clusters[n] = r
			case *routev3.RouteConfiguration:
				s.Routes[n] = r
			case *endpointv3.ClusterLoadAssignment:
				s.Endpoints[n] = r
			}
		}
	}
	if !s.Complete {
		st.c.log.Warn("applying incomplete config after warming timeout", "missing", miss)
	}
	st.dirty = false
	st.c.opts.Handler.Apply(s)
	st.c.updateStatus(func(s *Status) { s.Applied++ })
}

// startWarming arms the warming timer unless it is already running.
func (st *stream) startWarming() {
	if st.warm != nil || st.c.opts.WarmingTimeout <= 0 {
		return
	}
	fired := st.warmFired
	st.warm = time.AfterFunc(st.c.opts.WarmingTimeout, func() {
		select {
		case fired <- struct{}{}:
		default:
		}
	})
}

func (st *stream) stopWarming() {
	if st.warm != nil {
		st.warm.Stop()
		st.warm = nil
	}
	select {
	case <-st.warmFired:
	default:
	}
}

// nackDelay paces consecutive NACKs of one type: the first goes out at
// once, then 500ms, 1s, 2s... up to 15s.
func nackDelay(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	return min(250*time.Millisecond<<min(n-1, 10), 15*time.Second)
}

// streamTypes returns the per-type state a new stream starts from:
// fresh for state of the world, where the server sends everything again;
// with delta, the state held from the previous stream, whose versions
// the first requests announce (initial_resource_versions), as Envoy does.
func (c *Client) streamTypes() map[string]*typeState {
	if c.opts.Delta && c.held != nil {
		for _, ts := range c.held {
			ts.nonce, ts.nacks, ts.announced = "", 0, false
		}
		return c.held
	}
	types := make(map[string]*typeState, len(subscriptionOrder))
	for _, t := range subscriptionOrder {
		types[t] = &typeState{resources: map[string]proto.Message{}, names: map[string]bool{}, versions: map[string]string{}}
	}
	types[ClusterType].wildcard = true
	types[ListenerType].wildcard = true
	if c.opts.Delta {
		c.held = types
	}
	return types
}

// initialVersions is the initial_resource_versions of a delta stream's
// first request of a type: the versions of the resources held, or nil.
func initialVersions(ts *typeState) map[string]string {
	if len(ts.versions) == 0 {
		return nil
	}
	out := make(map[string]string, len(ts.versions))
	for n, v := range ts.versions {
		if ts.wildcard || ts.names[n] {
			out[n] = v
		}
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func shortType(t string) string {
	return t[strings.LastIndexByte(t, '.')+1:]
}

// receive reads a stream's responses, converts each with conv and hands it
// to out until the stream fails (the error goes to errc) or ctx ends.
func receive[T any](ctx context.Context, recv func() (T, error), conv func(T) *response, out chan<- *response, errc chan<- error) {
	for {
		r, err := recv()
		if err != nil {
			errc <- err
			return
		}
		select {
		case out <- conv(r):
		case <-ctx.Done():
			return
		}
	}
}
