package upstream

import (
	"math/rand/v2"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
)

// defaultOverprovisioning is Envoy's default overprovisioning factor, in
// percent: a level (or locality) counts as fully healthy while at least
// 1/1.4 of its hosts are usable.
const defaultOverprovisioning = 140

// newHosts builds the host set of a load assignment: priority levels get
// the assignment's overprovisioning factor and, with
// locality_weighted_lb_config, each level is split by locality with the
// localities' load_balancing_weight.
func (cl *Cluster) newHosts(hosts []*Host, cla *endpointv3.ClusterLoadAssignment) *hostSet {
	hs := newHostSet(hosts, cl.policy, cl.ringMin)
	hs.overprovision = defaultOverprovisioning
	if f := cla.GetPolicy().GetOverprovisioningFactor(); f != nil {
		hs.overprovision = int(f.GetValue())
	}
	if !cl.localityWeighted {
		return hs
	}
	weights := map[string]uint32{}
	for _, lle := range cla.GetEndpoints() {
		loc := lle.GetLocality()
		weights[loc.GetRegion()+"/"+loc.GetZone()+"/"+loc.GetSubZone()] = lle.GetLoadBalancingWeight().GetValue()
	}
	levels := hs.levels
	if len(levels) == 0 {
		levels = []*hostSet{hs}
	}
	for _, l := range levels {
		byLoc := map[string][]*Host{}
		var order []string
		for _, h := range l.all {
			if _, ok := byLoc[h.Locality]; !ok {
				order = append(order, h.Locality)
			}
			byLoc[h.Locality] = append(byLoc[h.Locality], h)
		}
		for _, loc := range order {
			s := newLevel(byLoc[loc], cl.policy, cl.ringMin)
			s.noPanic = true
			l.localities = append(l.localities, locality{set: s, weight: weights[loc]})
		}
	}
	return hs
}

// locality is one locality of a priority level and its configured
// load_balancing_weight (localities without one get no traffic).
type locality struct {
	set    *hostSet
	weight uint32
}

// healthPercent is Envoy's availability of a host group: the share of
// usable hosts times the overprovisioning factor, capped at 100.
func healthPercent(hs *hostSet, now int64, overprovision int) int {
	if len(hs.all) == 0 {
		return 0
	}
	usable := 0
	for _, h := range hs.all {
		if h.usable(now) {
			usable++
		}
	}
	return min(100, usable*overprovision/len(hs.all))
}

// chooseLevel picks a priority level by Envoy's priority load: level 0
// takes its health percentage of the traffic, the next levels take what
// remains up to their own health; when the levels' health adds up to
// less than 100 the loads are scaled up. r chooses within the loads. It
// returns -1 when no level has a usable host.
func (hs *hostSet) chooseLevel(now int64, r uint64) int {
	var buf [8]int
	health := buf[:0]
	total := 0
	for _, l := range hs.levels {
		p := healthPercent(l, now, hs.overprovisioning())
		health = append(health, p)
		total += p
	}
	if total == 0 {
		return -1
	}
	if total < 100 {
		x := int(r % uint64(total))
		for i, p := range health {
			if x < p {
				return i
			}
			x -= p
		}
	}
	x, remaining := int(r%100), 100
	for i, p := range health {
		load := min(remaining, p)
		if x < load {
			return i
		}
		x -= load
		remaining -= load
	}
	return len(health) - 1
}

func (hs *hostSet) overprovisioning() int {
	if hs.overprovision <= 0 {
		return defaultOverprovisioning
	}
	return hs.overprovision
}

// chooseLocality picks a locality of level hs with probability
// proportional to its weight times its availability, or nil.
func (hs *hostSet) chooseLocality(now int64, overprovision int) *hostSet {
	var buf [8]uint64
	eff := buf[:0]
	var total uint64
	for _, loc := range hs.localities {
		w := uint64(loc.weight) * uint64(healthPercent(loc.set, now, overprovision))
		eff = append(eff, w)
		total += w
	}
	if total == 0 {
		return nil
	}
	x := rand.Uint64N(total)
	for i, w := range eff {
		if x < w {
			return hs.localities[i].set
		}
		x -= w
	}
	return nil
}

// pickSpread picks a host from the priority level chosen by the priority
// load and, with locality weighting, from a locality chosen by weight.
// It returns nil to let Pick fall back to the first level with a usable
// host (and to panic mode).
func (cl *Cluster) pickSpread(hs *hostSet, hash uint64, hasHash bool, skip func(*Host) bool) *Host {
	multi := len(hs.levels) > 1
	if !multi && hs.localities == nil {
		return nil
	}
	now := time.Now().UnixNano()
	level := hs
	if multi {
		r := hash
		if !hasHash {
			r = rand.Uint64()
		}
		i := hs.chooseLevel(now, r)
		if i < 0 {
			return nil
		}
		level = hs.levels[i]
	}
	if level.localities != nil {
		if loc := level.chooseLocality(now, hs.overprovisioning()); loc != nil {
			if h := cl.balancer.Pick(loc, hash, hasHash, skip); h != nil {
				return h
			}
		}
	}
	if multi {
		return cl.balancer.Pick(level, hash, hasHash, skip)
	}
	return nil
}
