package upstream

import (
	"container/heap"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
)

// leastRequest is Envoy's LEAST_REQUEST balancer. When all hosts have the
// same weight it picks the host with the fewest active requests among
// choices random ones (power of two choices by default). When weights
// differ it follows an earliest-deadline-first schedule in which each
// host's weight is weight/(active+1)^bias at the time it is (re)scheduled
// (least_request_lb_config.active_request_bias, default 1.0; 0 makes it
// weighted round robin).
type leastRequest struct {
	choices int
	bias    float64
}

// newLeastRequest reads least_request_lb_config (nil: Envoy's defaults).
func newLeastRequest(cfg *clusterv3.Cluster_LeastRequestLbConfig) leastRequest {
	b := leastRequest{choices: 2, bias: 1}
	if n := cfg.GetChoiceCount(); n != nil && n.GetValue() >= 2 {
		b.choices = int(n.GetValue())
	}
	if rd := cfg.GetActiveRequestBias(); rd != nil && rd.GetDefaultValue() >= 0 {
		b.bias = rd.GetDefaultValue()
	}
	return b
}

// weight is a host's effective weight for the schedule.
func (b leastRequest) weight(h *Host) float64 {
	w := float64(max(h.Weight, 1))
	switch active := float64(max(h.Active.Load(), 0)); b.bias {
	case 0:
		return w
	case 1:
		return w / (active + 1)
	default:
		return w / math.Pow(active+1, b.bias)
	}
}

func (b leastRequest) Pick(hs *hostSet, _ uint64, _ bool, skip func(*Host) bool) *Host {
	n := len(hs.all)
	if n == 0 {
		return nil
	}
	if n == 1 {
		return randomPick(hs, skip)
	}
	now := time.Now().UnixNano()
	if hs.edf != nil {
		if h := hs.edf.pick(hs.all, b.weight, func(h *Host) bool { return pickable(h, now, false, skip) }); h != nil {
			return h
		}
		return randomPick(hs, skip) // none usable: panic mode, if any
	}
	choices := b.choices
	if choices == 0 {
		choices = 2
	}
	var best *Host
	var bestActive int64
	for range choices {
		h := hs.all[rand.IntN(n)]
		if !pickable(h, now, false, skip) {
			continue
		}
		if a := h.Active.Load(); best == nil || a < bestActive {
			best, bestActive = h, a
		}
	}
	if best != nil {
		return best
	}
	return randomPick(hs, skip)
}

// edfScheduler is Envoy's EdfScheduler: each host has a deadline; a pick
// takes the earliest (ties by scheduling order), advances the scheduler's
// time to it and schedules the host again at time + 1/weight, the weight
// being computed then.
type edfScheduler struct {
	mu    sync.Mutex // guards the fields below; picks come from any request goroutine
	now   float64
	order uint64
	q     edfQueue
}

type edfEntry struct {
	deadline float64
	order    uint64
	host     int32
}

type edfQueue []edfEntry

func (q edfQueue) Len() int { return len(q) }
func (q edfQueue) Less(i, j int) bool {
	if q[i].deadline != q[j].deadline {
		return q[i].deadline < q[j].deadline
	}
	return q[i].order < q[j].order
}
func (q edfQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *edfQueue) Push(x any)   { *q = append(*q, x.(edfEntry)) }
func (q *edfQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// newEDF returns a schedule over hosts when their weights differ, else
// nil (the unweighted least request pick applies). Hosts start with the
// deadline 1/weight, as Envoy's refresh with no active requests.
func newEDF(hosts []*Host) *edfScheduler {
	equal := true
	for _, h := range hosts {
		if max(h.Weight, 1) != max(hosts[0].Weight, 1) {
			equal = false
			break
		}
	}
	if equal {
		return nil
	}
	s := &edfScheduler{q: make(edfQueue, 0, len(hosts))}
	for i, h := range hosts {
		s.q = append(s.q, edfEntry{deadline: 1 / float64(max(h.Weight, 1)), order: uint64(i), host: int32(i)})
	}
	s.order = uint64(len(hosts))
	heap.Init(&s.q)
	return s
}

// pick returns the first host in schedule order that ok accepts, taking
// at most as many entries as there are hosts; every entry taken is
// rescheduled with weight(host). It returns nil when ok accepts none.
func (s *edfScheduler) pick(hosts []*Host, weight func(*Host) float64, ok func(*Host) bool) *Host {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range len(s.q) {
		e := &s.q[0]
		h := hosts[e.host]
		s.now = e.deadline
		w := weight(h)
		if w <= 0 || math.IsNaN(w) {
			w = math.SmallestNonzeroFloat64
		}
		e.deadline, e.order = s.now+1/w, s.order
		s.order++
		heap.Fix(&s.q, 0)
		if ok(h) {
			return h
		}
	}
	return nil
}
