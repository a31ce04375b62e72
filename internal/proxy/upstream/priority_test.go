package upstream

import (
	"fmt"
	"testing"
	"time"
)

// levelHosts is n hosts at priority p of which the first healthy are healthy.
func levelHosts(p uint32, n, healthy int) []*Host {
	var out []*Host
	for i := range n {
		out = append(out, &Host{Addr: fmt.Sprintf("10.0.%d.%d:80", p, i), Weight: 1, Priority: p, healthy: i < healthy})
	}
	return out
}

// TestChooseLevel checks Envoy's priority load arithmetic: per-level
// health is usable/total × overprovisioning capped at 100, lower levels
// fill first, and a total below 100 is scaled up.
func TestChooseLevel(t *testing.T) {
	now := time.Now().UnixNano()
	cases := []struct {
		name          string
		p0, p1        [2]int // hosts, healthy
		overprovision int
		wantP0        int // of 100 evenly spread draws
	}{
		{"all healthy", [2]int{4, 4}, [2]int{2, 2}, 140, 100},
		{"3/4 healthy still full", [2]int{4, 3}, [2]int{2, 2}, 140, 100},
		{"half healthy spills 30", [2]int{4, 2}, [2]int{2, 2}, 140, 70},
		{"factor 1.0", [2]int{4, 2}, [2]int{2, 2}, 100, 50},
		{"both weak scale up", [2]int{10, 1}, [2]int{10, 1}, 140, 50},
		{"p0 down", [2]int{4, 0}, [2]int{2, 2}, 140, 0},
	}
	for _, c := range cases {
		hosts := append(levelHosts(0, c.p0[0], c.p0[1]), levelHosts(1, c.p1[0], c.p1[1])...)
		hs := newHostSet(hosts, lbRoundRobin, 0)
		hs.overprovision = c.overprovision
		got := 0
		total := 0
		for _, l := range hs.levels {
			total += healthPercent(l, now, c.overprovision)
		}
		for r := range uint64(100) {
			x := r
			if total < 100 {
				x = r * uint64(total) / 100 // spread draws evenly over [0,total)
			}
			if hs.chooseLevel(now, x) == 0 {
				got++
			}
		}
		if got != c.wantP0 {
			t.Errorf("%s: priority 0 chosen %d/100, want %d", c.name, got, c.wantP0)
		}
	}
	none := newHostSet(append(levelHosts(0, 2, 0), levelHosts(1, 2, 0)...), lbRoundRobin, 0)
	if i := none.chooseLevel(now, 1); i != -1 {
		t.Errorf("no usable host: level %d, want -1", i)
	}
}
