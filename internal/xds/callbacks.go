package xds

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"
	"unique"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
)

// callbacks connects go-control-plane's stream handling to the server's
// proxy registry and ACK tracking.
type callbacks struct{ s *Server }

func (c callbacks) OnStreamOpen(_ context.Context, id int64, typeURL string) error {
	c.s.openStream(id, typeURL, false)
	return nil
}

func (c callbacks) OnStreamClosed(id int64, _ *core.Node) { c.s.closeStream(id) }

func (c callbacks) OnDeltaStreamOpen(_ context.Context, id int64, typeURL string) error {
	c.s.openStream(deltaStreamID(id), typeURL, true)
	return nil
}

func (c callbacks) OnDeltaStreamClosed(id int64, _ *core.Node) { c.s.closeStream(deltaStreamID(id)) }

// deltaStreamID maps a delta stream's id into the server's stream table.
// go-control-plane numbers state-of-the-world and delta streams with two
// counters that both start at 1, so delta ids are stored negated: stream N
// of each kind must not share one record of what was sent and acknowledged.
func deltaStreamID(id int64) int64 { return -id }

func (c callbacks) OnStreamRequest(id int64, r *discovery.DiscoveryRequest) error {
	nacked, err := c.s.onRequest(id, r.GetNode(), r.GetTypeUrl(), r.GetResponseNonce(), r.GetErrorDetail())
	if nacked != "" {
		// A NACK carries the last version the proxy accepted; the cache
		// would answer it at once with the rejected version again, and
		// again. Make it wait for a version newer than the rejected one,
		// as istiod does.
		r.VersionInfo = nacked
	}
	return err
}

func (c callbacks) OnStreamResponse(_ context.Context, id int64, req *discovery.DiscoveryRequest, r *discovery.DiscoveryResponse) {
	if c.s.sentHook != nil {
		c.s.sentHook(req.GetNode().GetId(), r)
	}
	c.s.onResponse(id, r.GetTypeUrl(), r.GetVersionInfo(), r.GetNonce(), func(d *typeDump, ps *proxyState) {
		// State of the world: the response replaces what was sent before.
		d.resetDelta(nil, nil)
		// Usually the response is all of the current snapshot's resources
		// of the type: record the snapshot's interned encodings rather
		// than interning every resource of every response again.
		if pins, ok := ps.targetPins[r.GetTypeUrl()]; ok && ps.target[r.GetTypeUrl()] == r.GetVersionInfo() && len(r.GetResources()) == 0 && len(r.ProtoReflect().GetUnknown()) > 0 {
			d.sotw = pins // the response carries all the snapshot's resources
			return
		}
		resources := responseResources(r)
		d.sotw = make([]unique.Handle[string], len(resources))
		for i, a := range resources {
			d.sotw[i] = unique.Make(string(a.GetValue()))
		}
	})
}

func (c callbacks) OnStreamDeltaRequest(id int64, r *discovery.DeltaDiscoveryRequest) error {
	// Delta needs no NACK special case: the stream's subscription already
	// records the rejected resources as sent, so they are not resent until
	// they change.
	id = deltaStreamID(id)
	_, err := c.s.onRequest(id, r.GetNode(), r.GetTypeUrl(), r.GetResponseNonce(), r.GetErrorDetail())
	if err == nil && r.GetResponseNonce() == "" {
		c.s.noteDeltaSubscription(id, r)
	}
	return err
}

// noteDeltaSubscription records whether a delta stream's first request
// for a type subscribes by name: such a proxy is sent only changes to
// the resources it named, so it stays synced while others change.
func (s *Server) noteDeltaSubscription(id int64, r *discovery.DeltaDiscoveryRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[id]
	if st == nil || st.ps == nil {
		return
	}
	typeURL := r.GetTypeUrl()
	if typeURL == "" {
		typeURL = st.defaultType
	}
	ts := st.ps.typeStatus(typeURL)
	if _, seen := st.sent[typeURL]; seen {
		return // a later subscription change, not the first request
	}
	names := r.GetResourceNamesSubscribe()
	ts.byName = len(names) > 0 && !slices.Contains(names, "*")
}

func (c callbacks) OnStreamDeltaResponse(id int64, _ *discovery.DeltaDiscoveryRequest, r *discovery.DeltaDiscoveryResponse) {
	c.s.onResponse(deltaStreamID(id), r.GetTypeUrl(), r.GetSystemVersionInfo(), r.GetNonce(), func(d *typeDump, ps *proxyState) {
		d.sotw = nil
		if tr := ps.targetSnap.typeResources(r.GetTypeUrl()); tr != nil && tr.version == r.GetSystemVersionInfo() &&
			len(r.GetResources()) == 0 && len(r.ProtoReflect().GetUnknown()) > 0 {
			// The response carries all of the current snapshot's
			// resources: the proxy holds them, and the record is the
			// snapshot's (shared with every proxy of its configuration).
			d.resetDelta(tr, ps.targetPins[r.GetTypeUrl()])
		} else {
			for _, res := range deltaResponseResources(r) {
				d.putDelta(res.GetName(), deltaEntry{version: res.GetVersion(), value: unique.Make(string(res.GetResource().GetValue()))})
			}
		}
		for _, n := range r.GetRemovedResources() {
			d.removeDelta(n)
		}
	})
}

func (c callbacks) OnFetchRequest(context.Context, *discovery.DiscoveryRequest) error { return nil }

func (c callbacks) OnFetchResponse(*discovery.DiscoveryRequest, *discovery.DiscoveryResponse) {}

// typeDump holds the resources of one type last sent to a proxy. Their
// encodings are interned: they share memory with the snapshots' copies.
type typeDump struct {
	typeURL string
	// sotw is the last state-of-the-world response's resources.
	sotw []unique.Handle[string]
	// A delta stream holds base's resources (deltaBase, with their
	// encodings basePins; a snapshot's, shared), except those in
	// removed, and then delta's, by name.
	deltaBase *typeResources
	basePins  []unique.Handle[string]
	removed   map[string]bool
	delta     map[string]deltaEntry
}

// resetDelta makes a delta stream's record base's resources alone.
func (d *typeDump) resetDelta(base *typeResources, pins []unique.Handle[string]) {
	if base != nil && len(pins) != len(base.names) {
		base, pins = nil, nil // not the snapshot's encodings: record nothing shared
	}
	d.deltaBase, d.basePins, d.removed, d.delta = base, pins, nil, nil
}

// putDelta records a resource sent on a delta stream.
func (d *typeDump) putDelta(name string, e deltaEntry) {
	if d.delta == nil {
		d.delta = map[string]deltaEntry{}
	}
	d.delta[name] = e
	delete(d.removed, name)
}

// removeDelta records a resource a delta stream removed.
func (d *typeDump) removeDelta(name string) {
	delete(d.delta, name)
	if d.deltaBase == nil {
		return
	}
	if _, ok := d.deltaBase.index[name]; ok {
		if d.removed == nil {
			d.removed = map[string]bool{}
		}
		d.removed[name] = true
	}
}

// eachDelta calls f for each resource a delta stream holds; d may be
// nil.
func (d *typeDump) eachDelta(f func(name string, e deltaEntry) bool) {
	if d == nil {
		return
	}
	if b := d.deltaBase; b != nil {
		for i, n := range b.names {
			if _, over := d.delta[n]; over || d.removed[n] {
				continue
			}
			if !f(n, deltaEntry{version: b.hashes[n], value: d.basePins[i]}) {
				return
			}
		}
	}
	for n, e := range d.delta {
		if !f(n, e) {
			return
		}
	}
}

// deltaEntry is a resource sent on a delta stream.
type deltaEntry struct {
	version string // content hash
	value   unique.Handle[string]
}

// resources returns the resources, state of the world in response order,
// delta by name.
func (d *typeDump) resources() []*anypb.Any {
	out := make([]*anypb.Any, 0, len(d.sotw)+len(d.delta))
	for _, h := range d.sotw {
		out = append(out, &anypb.Any{TypeUrl: d.typeURL, Value: []byte(h.Value())})
	}
	held := map[string]deltaEntry{}
	d.eachDelta(func(n string, e deltaEntry) bool { held[n] = e; return true })
	for _, n := range sortedKeys(held) {
		out = append(out, &anypb.Any{TypeUrl: d.typeURL, Value: []byte(held[n].value.Value())})
	}
	return out
}

// onRequest registers the stream's proxy on its first request and records
// ACKs and NACKs. For a NACK it returns the rejected version.
func (s *Server) onRequest(id int64, node *core.Node, typeURL, nonce string, nack *status.Status) (nacked string, err error) {
	s.mu.Lock()
	st := s.streams[id]
	s.mu.Unlock()
	if st == nil {
		return "", grpcstatus.Error(codes.Internal, "xds: unknown stream")
	}
	if typeURL == "" {
		typeURL = st.defaultType
	}
	if st.ps == nil { // only this stream's goroutine reads or writes st.ps before it is set
		if node == nil {
			return "", grpcstatus.Error(codes.InvalidArgument, "xds: the first request on a stream must carry the node")
		}
		p, err := ProxyFromNode(node)
		if err != nil {
			s.log.Warn("xds: proxy refused", "error", err)
			return "", grpcstatus.Error(codes.InvalidArgument, err.Error())
		}
		ps, isNew := s.register(st, p)
		if isNew {
			s.update(ps, s.opts.Store.Snapshot(), time.Time{})
		}
	}
	if nonce == "" {
		return "", nil
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	sent, ok := st.sent[typeURL]
	if !ok || sent.nonce != nonce {
		return "", nil // stale: a newer response is on its way
	}
	ps := st.ps
	ts := ps.typeStatus(typeURL)
	now := time.Now()
	if nack != nil {
		ts.LastNACK = &NACK{Version: sent.version, Nonce: nonce, Code: nack.GetCode(), Message: nack.GetMessage(), Time: now}
		ps.pendingSince = time.Time{}
		s.m.rejects.WithLabelValues(TypeName(typeURL)).Inc()
		s.log.Warn("xds: proxy rejected configuration", "proxy", ps.proxy.ID, "type", TypeName(typeURL),
			"version", sent.version, "nonce", nonce, "reason", nack.GetMessage())
		s.releaseInFlightLocked(ps) // it answered; a NACKed version is not resent
		return sent.version, nil
	}
	ts.Acked, ts.AckedNonce, ts.AckedAt = sent.version, nonce, now
	if ps.converged() {
		if !ps.pendingSince.IsZero() {
			s.m.convergence.Observe(now.Sub(ps.pendingSince).Seconds())
			ps.pendingSince = time.Time{}
		}
		s.releaseInFlightLocked(ps)
	}
	return "", nil
}

// onResponse records a response sent on a stream; update turns the
// proxy's record of resources of that type into the new one.
func (s *Server) onResponse(id int64, typeURL, version, nonce string, update func(*typeDump, *proxyState)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[id]
	if st == nil || st.ps == nil {
		return
	}
	st.sent[typeURL] = sentResponse{nonce: nonce, version: version}
	ts := st.ps.typeStatus(typeURL)
	ts.Sent, ts.SentNonce, ts.SentAt = version, nonce, time.Now()
	d := st.ps.dump[typeURL]
	if d == nil {
		d = &typeDump{typeURL: typeURL}
		st.ps.dump[typeURL] = d
	}
	update(d, st.ps)
	s.m.pushes.WithLabelValues(TypeName(typeURL)).Inc()
}

// typeStatus returns the status record of a type, creating it.
// Server.mu must be held.
func (ps *proxyState) typeStatus(typeURL string) *TypeStatus {
	ts := ps.types[typeURL]
	if ts == nil {
		ts = &TypeStatus{TypeURL: typeURL, Type: TypeName(typeURL)}
		ps.types[typeURL] = ts
	}
	return ts
}

// converged reports whether the proxy acknowledged the current version
// of every type it subscribed to. Server.mu must be held.
func (ps *proxyState) converged() bool {
	for u, ts := range ps.types {
		if ts.Sent == "" {
			continue
		}
		if ts.AckedNonce != ts.SentNonce {
			return false
		}
		if !ps.current(u, ts) {
			return false
		}
	}
	return true
}

// current reports whether what was last sent of a type is the proxy's
// current configuration. Server.mu must be held.
func (ps *proxyState) current(typeURL string, ts *TypeStatus) bool {
	v, ok := ps.target[typeURL]
	if !ok || ts.Sent == v {
		return true
	}
	if !ts.byName {
		return false
	}
	// A delta subscription to named resources: current if every resource
	// it holds has its current content.
	hashes := ps.targetHashes[typeURL]
	cur := true
	ps.dump[typeURL].eachDelta(func(name string, e deltaEntry) bool {
		cur = hashes[name] == e.version
		return cur
	})
	return cur
}

// cacheLogger adapts slog to go-control-plane's logger. The cache's
// informational messages (watches opened, ADS responses held back until
// the client asks for every resource) are normal operation: debug level.
type cacheLogger struct{ log *slog.Logger }

func (l cacheLogger) logf(level slog.Level, format string, args ...any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, "xds cache: "+fmt.Sprintf(format, args...))
	}
}

func (l cacheLogger) Debugf(format string, args ...any) { l.logf(slog.LevelDebug, format, args...) }
func (l cacheLogger) Infof(format string, args ...any)  { l.logf(slog.LevelDebug, format, args...) }
func (l cacheLogger) Warnf(format string, args ...any)  { l.logf(slog.LevelDebug, format, args...) }
func (l cacheLogger) Errorf(format string, args ...any) { l.logf(slog.LevelError, format, args...) }
