package xds

import (
	"sync"
	"time"
	"weak"

	"github.com/weftmesh/weft/internal/translate"
)

// builtMemo builds each distinct generated configuration of a model
// version once. A generator that shares work (translate.Cache) returns the
// very same *translate.Resources to proxies it cannot tell apart, and
// those proxies then share one proxySnapshot too: a push costs one
// encoding per distinct configuration, not one per proxy. Keys are weak,
// so the memo keeps no generated objects alive; it forgets everything at
// each newer model version and when it reaches memoLimit entries.
type builtMemo struct {
	mu      sync.Mutex
	version uint64
	m       map[weak.Pointer[translate.Resources]]*builtEntry
}

// builtEntry is the snapshot built from one generated configuration.
type builtEntry struct {
	once sync.Once
	res  weak.Pointer[translate.Resources]
	ps   *proxySnapshot
	err  error
}

// build returns buildSnapshot(res, enc), built once per res of version.
// The result is shared and must not be modified.
func (b *builtMemo) build(version uint64, res *translate.Resources, enc *encodingMemo) (*proxySnapshot, error) {
	if res == nil {
		return buildSnapshot(nil, enc)
	}
	wp := weak.Make(res)
	b.mu.Lock()
	if version < b.version {
		b.mu.Unlock()
		return buildSnapshot(res, enc) // a late caller with an older model
	}
	if b.m == nil || version > b.version || len(b.m) >= memoLimit {
		b.version, b.m = version, map[weak.Pointer[translate.Resources]]*builtEntry{}
	}
	e := b.m[wp]
	if e == nil || e.res.Value() != res {
		e = &builtEntry{res: wp}
		b.m[wp] = e
	}
	b.mu.Unlock()
	e.once.Do(func() { e.ps, e.err = buildSnapshot(res, enc) })
	return e.ps, e.err
}

// acquireInFlight takes an in-flight token for ps before it is handed a
// new configuration, waiting while Options.PushThrottle proxies hold one.
// A proxy keeps one token until it has acknowledged everything sent,
// however many configurations it is handed meanwhile. It reports false if
// the server is stopping.
func (s *Server) acquireInFlight(ps *proxyState) bool {
	s.mu.Lock()
	held := ps.inFlight != 0
	s.mu.Unlock()
	if held {
		return true
	}
	select {
	case s.inFlight <- struct{}{}:
	case <-s.ctx.Done():
		return false
	}
	s.mu.Lock()
	s.tokens++
	n := s.tokens
	ps.inFlight = n
	s.mu.Unlock()
	time.AfterFunc(s.opts.PushThrottleTimeout, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if ps.inFlight == n {
			s.releaseInFlightLocked(ps)
		}
	})
	return true
}

// releaseInFlightLocked returns ps's in-flight token, if it holds one.
// Server.mu must be held.
func (s *Server) releaseInFlightLocked(ps *proxyState) {
	if ps.inFlight == 0 {
		return
	}
	ps.inFlight = 0
	<-s.inFlight
}
