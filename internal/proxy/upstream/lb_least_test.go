package upstream

import (
	"sync"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// leastRequestCluster builds a LEAST_REQUEST cluster with the given
// weights and least_request_lb_config.
func leastRequestCluster(t *testing.T, cfg *clusterv3.Cluster_LeastRequestLbConfig, weights ...uint32) *Cluster {
	t.Helper()
	c := eds("c", clusterv3.Cluster_LEAST_REQUEST)
	if cfg != nil {
		c.LbConfig = &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: cfg}
	}
	return build(t, c, cla("c", weights...))
}

func pickCounts(cl *Cluster, n int, skip func(*Host) bool) map[*Host]int {
	counts := map[*Host]int{}
	for range n {
		counts[cl.Pick("", 0, false, skip)]++
	}
	return counts
}

// TestLeastRequestWeighted checks Envoy's weighted least request: with
// unequal weights an EDF schedule of weight/(active+1)^bias.
func TestLeastRequestWeighted(t *testing.T) {
	t.Run("idle hosts follow the weights", func(t *testing.T) {
		cl := leastRequestCluster(t, nil, 1, 3)
		h := cl.Hosts()
		if c := pickCounts(cl, 400, nil); c[h[0]] != 100 || c[h[1]] != 300 {
			t.Errorf("weights 1:3 over 400 picks: %d:%d, want 100:300", c[h[0]], c[h[1]])
		}
	})
	t.Run("active requests divide the weight", func(t *testing.T) {
		cl := leastRequestCluster(t, nil, 1, 3)
		h := cl.Hosts()
		h[1].Active.Store(5) // effective weights 1 and 3/6
		c := pickCounts(cl, 3000, nil)
		if c[h[0]] < 1990 || c[h[0]] > 2010 {
			t.Errorf("weights 1 and 3/(5+1): %d:%d, want about 2000:1000", c[h[0]], c[h[1]])
		}
	})
	t.Run("bias 2", func(t *testing.T) {
		cl := leastRequestCluster(t, &clusterv3.Cluster_LeastRequestLbConfig{ActiveRequestBias: &corev3.RuntimeDouble{DefaultValue: 2, RuntimeKey: "k"}}, 1, 8)
		h := cl.Hosts()
		h[1].Active.Store(3) // effective weights 1 and 8/16
		c := pickCounts(cl, 3000, nil)
		if c[h[0]] < 1990 || c[h[0]] > 2010 {
			t.Errorf("weights 1 and 8/(3+1)^2: %d:%d, want about 2000:1000", c[h[0]], c[h[1]])
		}
	})
	t.Run("bias 0 ignores active requests", func(t *testing.T) {
		cl := leastRequestCluster(t, &clusterv3.Cluster_LeastRequestLbConfig{ActiveRequestBias: &corev3.RuntimeDouble{DefaultValue: 0, RuntimeKey: "k"}}, 1, 3)
		h := cl.Hosts()
		h[1].Active.Store(100)
		if c := pickCounts(cl, 400, nil); c[h[0]] != 100 || c[h[1]] != 300 {
			t.Errorf("bias 0, weights 1:3: %d:%d, want 100:300", c[h[0]], c[h[1]])
		}
	})
	t.Run("skipped hosts", func(t *testing.T) {
		cl := leastRequestCluster(t, nil, 1, 3, 2)
		h := cl.Hosts()
		c := pickCounts(cl, 300, func(x *Host) bool { return x == h[1] })
		if c[h[1]] != 0 || c[h[0]] != 100 || c[h[2]] != 200 {
			t.Errorf("host 2 skipped, weights 1 and 2: %d:%d:%d, want 100:0:200", c[h[0]], c[h[1]], c[h[2]])
		}
	})
	t.Run("concurrent picks", func(t *testing.T) {
		cl := leastRequestCluster(t, nil, 1, 3)
		h := cl.Hosts()
		var mu sync.Mutex
		total := map[*Host]int{}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				c := pickCounts(cl, 500, nil)
				mu.Lock()
				for k, v := range c {
					total[k] += v
				}
				mu.Unlock()
			})
		}
		wg.Wait()
		if total[h[0]] != 1000 || total[h[1]] != 3000 {
			t.Errorf("8x500 concurrent picks: %d:%d, want 1000:3000", total[h[0]], total[h[1]])
		}
	})
}

// TestLeastRequestChoiceCount checks choice_count with equal weights: with
// all hosts among the choices the idle one always wins.
func TestLeastRequestChoiceCount(t *testing.T) {
	cl := leastRequestCluster(t, &clusterv3.Cluster_LeastRequestLbConfig{ChoiceCount: wrapperspb.UInt32(64)}, 1, 1)
	h := cl.Hosts()
	h[0].Active.Store(3)
	if c := pickCounts(cl, 200, nil); c[h[1]] != 200 {
		t.Errorf("64 choices among 2 hosts, one busy: idle host picked %d/200", c[h[1]])
	}
}

// BenchmarkLeastRequestPick picks from 100 hosts, from parallel
// goroutines: weighted (the EDF schedule, one lock) and equal weights
// (two random choices, no lock).
func BenchmarkLeastRequestPick(b *testing.B) {
	for _, weighted := range []bool{true, false} {
		name := "equal"
		if weighted {
			name = "weighted"
		}
		b.Run(name, func(b *testing.B) {
			weights := make([]uint32, 100)
			for i := range weights {
				weights[i] = 1
				if weighted {
					weights[i] += uint32(i % 4)
				}
			}
			c := eds("c", clusterv3.Cluster_LEAST_REQUEST)
			s, commit, err := Build(map[string]*clusterv3.Cluster{"c": c}, map[string]*endpointv3.ClusterLoadAssignment{"c": cla("c", weights...)}, nil)
			if err != nil {
				b.Fatal(err)
			}
			commit()
			cl := s.Get("c")
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if cl.Pick("", 0, false, nil) == nil {
						b.Fatal("no host")
					}
				}
			})
		})
	}
}
