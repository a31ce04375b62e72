package upstream

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestRetryBudget: a cluster's retry_budget replaces max_retries with a
// share of active plus pending requests (Envoy's defaults 20% and 3).
func TestRetryBudget(t *testing.T) {
	c := h1Cluster(t, "127.0.0.1:1", 0, 0).config
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		RetryBudget: &clusterv3.CircuitBreakers_Thresholds_RetryBudget{BudgetPercent: &typev3.Percent{Value: 25}, MinRetryConcurrency: wrapperspb.UInt32(2)},
	}}}
	cl, err := Compile(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	acquire := func(n int) (got int) {
		for range n {
			if cl.AcquireRetry() {
				got++
			}
		}
		return got
	}
	// No active requests: the floor, 2.
	if got := acquire(5); got != 2 {
		t.Fatalf("idle cluster: %d retries allowed, want 2 (min_retry_concurrency)", got)
	}
	if o := cl.Stats.RqRetryOverflow.Load(); o != 3 {
		t.Fatalf("upstream_rq_retry_overflow %d, want 3", o)
	}
	cl.ReleaseRetry()
	cl.ReleaseRetry()
	// 20 active and 4 pending requests: 25% of 24 = 6.
	cl.Stats.RqActive.Store(20)
	cl.Stats.RqPendingActive.Store(4)
	if got := acquire(10); got != 6 {
		t.Fatalf("24 requests: %d retries allowed, want 6", got)
	}
	// Defaults when the budget names no field: 20%, at least 3.
	c.CircuitBreakers.Thresholds[0].RetryBudget = &clusterv3.CircuitBreakers_Thresholds_RetryBudget{}
	if cl, err = Compile(c, nil); err != nil {
		t.Fatal(err)
	}
	if b := cl.retryBudget; b == nil || b.percent != 20 || b.minConcurrency != 3 {
		t.Fatalf("default budget %+v, want 20%% and 3", b)
	}
}
