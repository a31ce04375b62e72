package upstream

import (
	"sync/atomic"
	"time"
)

// Host is one upstream endpoint. Its counters are updated concurrently by
// requests; its identity fields never change after creation.
type Host struct {
	// Addr is "ip:port" (or "name:port" for DNS clusters before resolving).
	Addr     string
	Weight   uint32
	Priority uint32
	Locality string
	// Labels are the endpoint's istio metadata (workload, namespace, app,
	// version...) used for peer telemetry labels.
	Labels map[string]string
	// SocketMatch is the endpoint's "envoy.transport_socket_match"
	// metadata (Istio's tlsMode), matched by transport_socket_matches.
	SocketMatch map[string]string
	// healthy reflects the EDS health status.
	healthy bool

	// Active is the number of in-flight requests (least request LB).
	Active atomic.Int64
	// outlier detection state.
	consecutive5xx     atomic.Int32
	consecutiveGateway atomic.Int32
	ejectedUntil       atomic.Int64 // unix nanos; 0 when not ejected
	ejections          atomic.Int32
}

// Healthy reports whether the control plane marked the host usable.
func (h *Host) Healthy() bool { return h.healthy }

// Ejected reports whether outlier detection currently ejects the host.
func (h *Host) Ejected(now int64) bool {
	u := h.ejectedUntil.Load()
	return u != 0 && now < u
}

// usable is healthy and not ejected.
func (h *Host) usable(now int64) bool { return h.healthy && !h.Ejected(now) }

// outlier tracks consecutive failures and ejects hosts. It belongs to a
// Cluster and is immutable; per-host state lives in Host.
type outlier struct {
	consecutive5xx     int32
	consecutiveGateway int32
	baseEjection       time.Duration
	maxEjection        time.Duration
	maxEjectPercent    int
}

// record notes a response status (or 0 for a connection failure) for h.
// It reports whether this ejected the host.
func (o *outlier) record(c *Cluster, h *Host, status int) bool {
	if o == nil {
		return false
	}
	if status > 0 && status < 500 {
		h.consecutive5xx.Store(0)
		h.consecutiveGateway.Store(0)
		return false
	}
	gateway := status == 0 || status == 502 || status == 503 || status == 504
	n5 := h.consecutive5xx.Add(1)
	var ng int32
	if gateway {
		ng = h.consecutiveGateway.Add(1)
	} else {
		h.consecutiveGateway.Store(0)
	}
	trip := (o.consecutive5xx > 0 && n5 >= o.consecutive5xx) || (o.consecutiveGateway > 0 && gateway && ng >= o.consecutiveGateway)
	if !trip {
		return false
	}
	now := time.Now().UnixNano()
	if h.Ejected(now) {
		return false
	}
	hosts := c.hosts.Load().all
	ejected := 0
	for _, x := range hosts {
		if x.Ejected(now) {
			ejected++
		}
	}
	// Envoy always allows ejecting one host, then caps at the percentage.
	if ejected > 0 && (ejected+1)*100 > o.maxEjectPercent*len(hosts) {
		return false
	}
	k := h.ejections.Add(1)
	d := o.baseEjection * time.Duration(k)
	if o.maxEjection > 0 && d > o.maxEjection {
		d = o.maxEjection
	}
	h.ejectedUntil.Store(now + int64(d))
	h.consecutive5xx.Store(0)
	h.consecutiveGateway.Store(0)
	c.Stats.OutlierEjections.Add(1)
	return true
}
