package proxy

import (
	"errors"
	"sync"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/weftmesh/weft/internal/proxy/listener"
)

// listenerErrors remembers, per listener name, the last configuration
// that was rejected (NACKed or not bindable) until a later configuration
// of that listener is applied. /config_dump shows them as Envoy's
// dynamic_listeners[].error_state. The xDS goroutine writes, the admin
// handler reads.
type listenerErrors struct {
	mu     sync.Mutex
	failed map[string]listenerFailure
}

type listenerFailure struct {
	config  *listenerv3.Listener
	at      time.Time
	details string
}

// record notes that l was rejected with err.
func (e *listenerErrors) record(l *listenerv3.Listener, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failed == nil {
		e.failed = map[string]listenerFailure{}
	}
	e.failed[l.GetName()] = listenerFailure{config: l, at: time.Now(), details: err.Error()}
}

// applied forgets the failures of listeners now serving their new
// configuration; bindErr (from listener.Manager.Apply) names the ones
// whose bind failed after all.
func (e *listenerErrors) applied(ls map[string]*listenerv3.Listener, bindErr error) {
	var failed map[string]error
	for _, err := range unjoin(bindErr) {
		var be *listener.BindError
		if errors.As(err, &be) {
			if failed == nil {
				failed = map[string]error{}
			}
			failed[be.Listener] = err
		}
	}
	for name, l := range ls {
		if err, ok := failed[name]; ok {
			e.record(l, err)
			continue
		}
		e.mu.Lock()
		delete(e.failed, name)
		e.mu.Unlock()
	}
}

// dump returns the error states in the order of names, merged into the
// dynamic listeners of a ListenersConfigDump.
func (e *listenerErrors) dump(ld *adminv3.ListenersConfigDump) {
	e.mu.Lock()
	defer e.mu.Unlock()
	byName := map[string]*adminv3.ListenersConfigDump_DynamicListener{}
	for _, dl := range ld.DynamicListeners {
		byName[dl.Name] = dl
	}
	for _, name := range sortedNames(e.failed) {
		f := e.failed[name]
		st := &adminv3.UpdateFailureState{FailedConfiguration: mustAny(f.config), LastUpdateAttempt: timestamppb.New(f.at), Details: f.details}
		if dl, ok := byName[name]; ok {
			dl.ErrorState = st
			continue
		}
		ld.DynamicListeners = append(ld.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{Name: name, ErrorState: st})
	}
}

// unjoin lists the errors of an errors.Join (or err itself).
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
