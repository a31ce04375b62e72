package upstream

import (
	"hash/fnv"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync/atomic"
	"time"
)

// Balancer picks a host from a host set.
type Balancer interface {
	// Pick returns a usable host, or nil. hash is the request hash for
	// consistent hashing (0 with hasHash false picks randomly); skip, when
	// set, rejects hosts (retry host predicates).
	Pick(hs *hostSet, hash uint64, hasHash bool, skip func(*Host) bool) *Host
}

// hostSet is an immutable set of hosts with per-policy precomputation.
type hostSet struct {
	all []*Host
	// schedule lists host indexes for weighted round robin.
	schedule []int32
	ring     []ringEntry // ring hash, sorted by hash
	maglev   []int32     // maglev table
	// levels are the priority levels, lowest first, when there are
	// several; each never enters panic mode (the whole set does).
	levels  []*hostSet
	noPanic bool
	// overprovision is the load assignment's overprovisioning factor in
	// percent (0: Envoy's default 140).
	overprovision int
	// localities split a level by locality (locality_weighted_lb_config).
	localities []locality
	// edf is the least request schedule when host weights differ (nil
	// when they are equal). It is the one mutable part, behind its lock.
	edf *edfScheduler
}

type ringEntry struct {
	hash uint64
	host int32
}

func hash64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	// splitmix64 finalizer: FNV alone spreads similar keys poorly.
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// HashString hashes a request key for consistent hashing.
func HashString(s string) uint64 { return hash64(s) }

func newHostSet(hosts []*Host, policy lbPolicy, ringMin int) *hostSet {
	hs := newLevel(hosts, policy, ringMin)
	// Priority levels: traffic goes to the lowest level with a usable
	// host and fails over to the next (Istio's locality failover).
	byPrio := map[uint32][]*Host{}
	var prios []uint32
	for _, h := range hosts {
		if _, ok := byPrio[h.Priority]; !ok {
			prios = append(prios, h.Priority)
		}
		byPrio[h.Priority] = append(byPrio[h.Priority], h)
	}
	if len(prios) > 1 {
		sort.Slice(prios, func(i, j int) bool { return prios[i] < prios[j] })
		for _, p := range prios {
			l := newLevel(byPrio[p], policy, ringMin)
			l.noPanic = true
			hs.levels = append(hs.levels, l)
		}
	}
	return hs
}

func newLevel(hosts []*Host, policy lbPolicy, ringMin int) *hostSet {
	hs := &hostSet{all: hosts}
	if len(hosts) == 0 {
		return hs
	}
	switch policy {
	case lbRoundRobin:
		hs.schedule = weightedSchedule(hosts)
	case lbRingHash:
		if ringMin <= 0 {
			ringMin = 1024
		}
		// Envoy caps rings at 8M entries; 1M keeps a rebuild cheap and is
		// far more than consistent hashing needs.
		ringMin = min(ringMin, 1<<20)
		var total uint64
		for _, h := range hosts {
			total += uint64(max(h.Weight, 1))
		}
		for i, h := range hosts {
			n := int(uint64(ringMin)*uint64(max(h.Weight, 1))/total) + 1
			for j := 0; j < n; j++ {
				hs.ring = append(hs.ring, ringEntry{hash64(h.Addr + "_" + strconv.Itoa(j)), int32(i)})
			}
		}
		sort.Slice(hs.ring, func(i, j int) bool { return hs.ring[i].hash < hs.ring[j].hash })
	case lbMaglev:
		hs.maglev = maglevTable(hosts, 65537)
	case lbLeastRequest:
		hs.edf = newEDF(hosts)
	}
	return hs
}

// weightedSchedule is a smooth weighted round-robin sequence.
func weightedSchedule(hosts []*Host) []int32 {
	equal := true
	for _, h := range hosts {
		if h.Weight != hosts[0].Weight {
			equal = false
			break
		}
	}
	if equal {
		s := make([]int32, len(hosts))
		for i := range s {
			s[i] = int32(i)
		}
		return s
	}
	var total int64
	w := make([]int64, len(hosts))
	for i, h := range hosts {
		w[i] = int64(max(h.Weight, 1))
		total += w[i]
	}
	// Scale very large weights down to keep the schedule small (it is
	// never shorter than one slot per host).
	for total > int64(max(4096, 2*len(hosts))) {
		total = 0
		for i := range w {
			w[i] = max(w[i]/2, 1)
			total += w[i]
		}
	}
	cur := make([]int64, len(hosts))
	s := make([]int32, 0, total)
	for range total {
		best := 0
		for i := range w {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		s = append(s, int32(best))
	}
	return s
}

func maglevTable(hosts []*Host, m int) []int32 {
	n := len(hosts)
	offset := make([]uint64, n)
	skip := make([]uint64, n)
	next := make([]uint64, n)
	for i, h := range hosts {
		offset[i] = hash64(h.Addr+"#o") % uint64(m)
		skip[i] = hash64(h.Addr+"#s")%uint64(m-1) + 1
	}
	table := make([]int32, m)
	for i := range table {
		table[i] = -1
	}
	filled := 0
	for filled < m {
		for i := 0; i < n && filled < m; i++ {
			// Weight: hosts with weight w take w turns per round.
			for k := uint32(0); k < max(hosts[i].Weight, 1) && filled < m; k++ {
				c := (offset[i] + next[i]*skip[i]) % uint64(m)
				for table[c] >= 0 {
					next[i]++
					c = (offset[i] + next[i]*skip[i]) % uint64(m)
				}
				table[c] = int32(i)
				next[i]++
				filled++
			}
		}
	}
	return table
}

type lbPolicy uint8

const (
	lbRoundRobin lbPolicy = iota
	lbLeastRequest
	lbRandom
	lbRingHash
	lbMaglev
)

// pickable returns whether h may be used; in panic mode every host is.
func pickable(h *Host, now int64, panicMode bool, skip func(*Host) bool) bool {
	if skip != nil && skip(h) {
		return false
	}
	return panicMode || h.usable(now)
}

// panicMode is Envoy's 50% panic threshold: when fewer than half the hosts
// are usable, balance across all of them.
func panicMode(hs *hostSet, now int64) bool {
	if hs.noPanic {
		return false
	}
	usable := 0
	for _, h := range hs.all {
		if h.usable(now) {
			usable++
		}
	}
	return usable*2 < len(hs.all)
}

type roundRobin struct{ next atomic.Uint64 }

func (b *roundRobin) Pick(hs *hostSet, _ uint64, _ bool, skip func(*Host) bool) *Host {
	n := len(hs.schedule)
	if n == 0 {
		return nil
	}
	now := time.Now().UnixNano()
	start := b.next.Add(1)
	for i := 0; i < n; i++ {
		h := hs.all[hs.schedule[(start+uint64(i))%uint64(n)]]
		if pickable(h, now, false, skip) {
			return h
		}
	}
	if panicMode(hs, now) {
		for i := 0; i < n; i++ {
			h := hs.all[hs.schedule[(start+uint64(i))%uint64(n)]]
			if pickable(h, now, true, skip) {
				return h
			}
		}
	}
	return nil
}

type random struct{}

func (random) Pick(hs *hostSet, _ uint64, _ bool, skip func(*Host) bool) *Host {
	return randomPick(hs, skip)
}

func randomPick(hs *hostSet, skip func(*Host) bool) *Host {
	n := len(hs.all)
	if n == 0 {
		return nil
	}
	now := time.Now().UnixNano()
	start := rand.IntN(n)
	for i := 0; i < n; i++ {
		if h := hs.all[(start+i)%n]; pickable(h, now, false, skip) {
			return h
		}
	}
	if panicMode(hs, now) {
		for i := 0; i < n; i++ {
			if h := hs.all[(start+i)%n]; pickable(h, now, true, skip) {
				return h
			}
		}
	}
	return nil
}

type ringHash struct{}

func (ringHash) Pick(hs *hostSet, hash uint64, hasHash bool, skip func(*Host) bool) *Host {
	if len(hs.ring) == 0 {
		return nil
	}
	if !hasHash {
		hash = rand.Uint64()
	}
	now := time.Now().UnixNano()
	i := sort.Search(len(hs.ring), func(i int) bool { return hs.ring[i].hash >= hash })
	for k := 0; k < len(hs.ring); k++ {
		h := hs.all[hs.ring[(i+k)%len(hs.ring)].host]
		if pickable(h, now, false, skip) {
			return h
		}
	}
	return randomPick(hs, skip)
}

type maglev struct{}

func (maglev) Pick(hs *hostSet, hash uint64, hasHash bool, skip func(*Host) bool) *Host {
	if len(hs.maglev) == 0 {
		return nil
	}
	if !hasHash {
		hash = rand.Uint64()
	}
	now := time.Now().UnixNano()
	m := uint64(len(hs.maglev))
	for k := uint64(0); k < 16; k++ {
		h := hs.all[hs.maglev[(hash+k*0x9e3779b97f4a7c15)%m]]
		if pickable(h, now, false, skip) {
			return h
		}
	}
	return randomPick(hs, skip)
}
