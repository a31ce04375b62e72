package httpproxy

import (
	"strings"
	"sync/atomic"
)

// Stats are an HTTP connection manager's downstream counters, named after
// Envoy's http.<stat_prefix>.downstream_rq_* stats.
type Stats struct {
	Prefix                           string
	RqTotal, Rq1xx, Rq2xx, Rq3xx     atomic.Uint64
	Rq4xx, Rq5xx, NoRoute, NoCluster atomic.Uint64
	FaultAbort, FaultDelay, Timeout  atomic.Uint64
	// RBACDenied counts requests denied by an RBAC filter.
	RBACDenied atomic.Uint64
}

func (s *Stats) record(i *Info) {
	s.RqTotal.Add(1)
	switch {
	case i.Status >= 500:
		s.Rq5xx.Add(1)
	case i.Status >= 400:
		s.Rq4xx.Add(1)
	case i.Status >= 300:
		s.Rq3xx.Add(1)
	case i.Status >= 200:
		s.Rq2xx.Add(1)
	default:
		s.Rq1xx.Add(1)
	}
	switch i.Flags {
	case FlagNoRoute:
		s.NoRoute.Add(1)
	case FlagNoCluster:
		s.NoCluster.Add(1)
	case FlagFaultAbort:
		s.FaultAbort.Add(1)
	case FlagFaultDelay:
		s.FaultDelay.Add(1)
	case FlagTimeout:
		s.Timeout.Add(1)
	}
	if strings.HasPrefix(i.Details, "rbac_access_denied") {
		s.RBACDenied.Add(1)
	}
}
