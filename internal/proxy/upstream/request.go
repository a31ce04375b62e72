package upstream

import (
	"context"
	"net"
	"net/http"
	"time"
)

// Pick selects a host. origDst is the downstream connection's original
// destination (ip:port), used by ORIGINAL_DST clusters; hash and hasHash
// feed consistent hashing; skip rejects hosts (previous_hosts).
func (cl *Cluster) Pick(origDst string, hash uint64, hasHash bool, skip func(*Host) bool) *Host {
	if cl.Kind == KindOriginalDst {
		if origDst == "" {
			return nil
		}
		return &Host{Addr: origDst, Weight: 1, healthy: true}
	}
	cl.refreshDNS()
	hs := cl.hosts.Load()
	if h := cl.pickSpread(hs, hash, hasHash, skip); h != nil {
		return h
	}
	var h *Host
	for _, level := range hs.levels {
		if h = cl.balancer.Pick(level, hash, hasHash, skip); h != nil {
			return h
		}
	}
	if h == nil {
		h = cl.balancer.Pick(hs, hash, hasHash, skip)
	}
	if h == nil && skip != nil {
		// previous_hosts is best effort: fall back to any host.
		h = cl.balancer.Pick(hs, hash, hasHash, nil)
	}
	if h == nil {
		cl.Stats.NoHealthyUpstream.Add(1)
	}
	return h
}

// OrigDstHeader reports whether the ORIGINAL_DST cluster reads the
// destination from x-envoy-original-dst-host.
func (cl *Cluster) OrigDstHeader() bool { return cl.origDstHeader }

// Acquire applies the max_requests and (for HTTP/1.1) max_connections and
// max_pending_requests circuit breakers. It returns ErrOverflow (Envoy's
// UO) or a release function that must be called when the request ends.
func (cl *Cluster) Acquire(ctx context.Context) (release func(), err error) {
	st := cl.Stats
	cl.releaseFuncs()
	if st.RqActive.Add(1) > cl.maxRequests {
		st.RqActive.Add(-1)
		st.RqPendingOverflow.Add(1)
		return nil, ErrOverflow
	}
	if cl.HTTP2 {
		return cl.releaseRequestFn, nil
	}
	select {
	case cl.connSlots <- struct{}{}:
		return cl.releaseH1Fn, nil
	default:
	}
	// Every connection is busy: queue as a pending request, if allowed.
	if st.RqPendingActive.Add(1) > cl.maxPending {
		st.RqPendingActive.Add(-1)
		st.RqActive.Add(-1)
		st.RqPendingOverflow.Add(1)
		return nil, ErrOverflow
	}
	defer st.RqPendingActive.Add(-1)
	t := time.NewTimer(cl.ConnectTimeout + time.Second)
	defer t.Stop()
	select {
	case cl.connSlots <- struct{}{}:
		return cl.releaseH1Fn, nil
	case <-ctx.Done():
		st.RqActive.Add(-1)
		return nil, ctx.Err()
	case <-t.C:
		st.RqActive.Add(-1)
		st.RqPendingOverflow.Add(1)
		return nil, ErrOverflow
	}
}

func (cl *Cluster) releaseRequest() { cl.Stats.RqActive.Add(-1) }

// releaseFuncs returns the release closures, bound once per cluster so
// that Acquire does not allocate.
func (cl *Cluster) releaseFuncs() (h1, h2 func()) {
	cl.bindOnce.Do(func() {
		cl.releaseH1Fn, cl.releaseRequestFn = cl.releaseH1, cl.releaseRequest
	})
	return cl.releaseH1Fn, cl.releaseRequestFn
}

func (cl *Cluster) releaseH1() {
	<-cl.connSlots
	cl.Stats.RqActive.Add(-1)
}

// retryBudget limits concurrent retries to a share of the cluster's
// active and pending requests, with a floor (Envoy's retry_budget:
// defaults 20% and 3).
type retryBudget struct {
	percent        float64
	minConcurrency int64
}

// limit is the number of retries allowed at once with active requests
// and pending ones waiting for a connection.
func (b *retryBudget) limit(active, pending int64) int64 {
	return max(int64(b.percent/100*float64(active+pending)), b.minConcurrency)
}

// AcquireRetry applies the max_retries breaker, or the retry budget when
// the cluster has one.
func (cl *Cluster) AcquireRetry() bool {
	limit := cl.maxRetries
	if cl.retryBudget != nil {
		limit = cl.retryBudget.limit(cl.Stats.RqActive.Load(), cl.Stats.RqPendingActive.Load())
	}
	if cl.retriesActive.Add(1) > limit {
		cl.retriesActive.Add(-1)
		cl.Stats.RqRetryOverflow.Add(1)
		return false
	}
	cl.Stats.RqRetry.Add(1)
	return true
}

// ReleaseRetry ends a retry started with AcquireRetry.
func (cl *Cluster) ReleaseRetry() { cl.retriesActive.Add(-1) }

// RoundTrip sends req (whose URL already names the host) on the cluster's
// pooled transport.
func (cl *Cluster) RoundTrip(req *http.Request) (*http.Response, error) {
	if cl.h1 != nil && cl.h1.handles(req) {
		return cl.h1.roundTrip(req, nil)
	}
	if cl.maxPerConn > 0 {
		req = cl.traced(req, nil)
	}
	return cl.transport.RoundTrip(req)
}

// RoundTripLocal is RoundTrip that also stores in *local the local
// address of the upstream connection the request was sent on (the access
// log's upstream_local_address). *local is unchanged when no connection
// was obtained.
func (cl *Cluster) RoundTripLocal(req *http.Request, local *net.Addr) (*http.Response, error) {
	if cl.h1 != nil && cl.h1.handles(req) {
		return cl.h1.roundTrip(req, local)
	}
	return cl.transport.RoundTrip(cl.traced(req, local))
}

// Record notes the outcome of a request to h: status, or 0 when the
// connection failed or was reset. It feeds stats and outlier detection.
func (cl *Cluster) Record(h *Host, status int) {
	st := cl.Stats
	st.RqTotal.Add(1)
	switch {
	case status >= 500 || status == 0:
		st.Rq5xx.Add(1)
	case status >= 400:
		st.Rq4xx.Add(1)
	case status >= 300:
		st.Rq3xx.Add(1)
	default:
		st.Rq2xx.Add(1)
	}
	if h != nil && cl.Kind != KindOriginalDst {
		cl.outlier.record(cl, h, status)
	}
}
