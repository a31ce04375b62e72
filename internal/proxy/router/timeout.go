package router

import (
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// GRPCTimeout is a route's deprecated max_grpc_timeout and
// grpc_timeout_offset: the router's timeout for a gRPC request comes from
// its grpc-timeout header (Istio sets max_grpc_timeout on its routes).
type GRPCTimeout struct {
	// Max caps the header's value; 0 leaves it uncapped.
	Max time.Duration
	// Offset is subtracted from the header's value when smaller than it.
	Offset time.Duration
}

// StreamDuration is a route's max_stream_duration: a limit on the whole
// stream enforced by the connection manager (flag DT) rather than the
// router. Envoy ignores max_grpc_timeout on a route that has one.
type StreamDuration struct {
	// Max is max_stream_duration (0: none); HasMax reports it was set.
	Max    time.Duration
	HasMax bool
	// HeaderMax is grpc_timeout_header_max; when HasHeaderMax, a
	// grpc-timeout header sets the limit, capped by HeaderMax unless 0.
	HeaderMax    time.Duration
	HasHeaderMax bool
	// HeaderOffset is grpc_timeout_header_offset.
	HeaderOffset time.Duration
}

// compileTimeouts reads the gRPC timeout fields of a route action.
func compileTimeouts(r *Route, ra *routev3.RouteAction) {
	if ms := ra.GetMaxStreamDuration(); ms != nil {
		sd := &StreamDuration{}
		if d := ms.GetMaxStreamDuration(); d != nil {
			sd.Max, sd.HasMax = d.AsDuration(), true
		}
		if d := ms.GetGrpcTimeoutHeaderMax(); d != nil {
			sd.HeaderMax, sd.HasHeaderMax = d.AsDuration(), true
		}
		sd.HeaderOffset = ms.GetGrpcTimeoutHeaderOffset().AsDuration()
		r.StreamDuration = sd
		return
	}
	if d := ra.GetMaxGrpcTimeout(); d != nil { // deprecated, but what Istio sets
		r.GRPCTimeout = &GRPCTimeout{Max: d.AsDuration(), Offset: ra.GetGrpcTimeoutOffset().AsDuration()}
	}
}

// RouterTimeout is the router's whole-request timeout for a request (0:
// none), as Envoy's FilterUtility::finalTimeout: for a gRPC request on a
// route with max_grpc_timeout, the grpc-timeout header value (none when
// absent) less the offset, capped by max_grpc_timeout unless that is 0;
// otherwise the route's timeout.
func (r *Route) RouterTimeout(grpc bool, grpcTimeout string) time.Duration {
	g := r.GRPCTimeout
	if !grpc || g == nil {
		return r.Timeout
	}
	t, _ := ParseGRPCTimeout(grpcTimeout)
	if g.Offset > 0 && g.Offset < t {
		t -= g.Offset
	}
	if g.Max != 0 && (t == 0 || t > g.Max) {
		t = g.Max
	}
	return t
}

// StreamTimeout is the connection manager's limit on the whole stream
// from its start (0: none), as Envoy's refreshDurationTimeout: with a
// grpc-timeout header and grpc_timeout_header_max set, the header's
// value capped by a non-zero grpc_timeout_header_max, less
// grpc_timeout_header_offset (an offset not smaller than the value
// removes the limit); otherwise max_stream_duration.
func (r *Route) StreamTimeout(grpcTimeout string) time.Duration {
	sd := r.StreamDuration
	if sd == nil {
		return 0
	}
	t, ok := ParseGRPCTimeout(grpcTimeout)
	if !ok || !sd.HasHeaderMax {
		return sd.Max
	}
	if sd.HeaderMax != 0 && t > sd.HeaderMax {
		t = sd.HeaderMax
	}
	if t != 0 && sd.HeaderOffset > 0 {
		if sd.HeaderOffset < t {
			t -= sd.HeaderOffset
		} else {
			t = 0
		}
	}
	return t
}

// ParseGRPCTimeout parses a grpc-timeout header value: at most 8 digits
// and a unit (H, M, S, m, u, n). ok is false when v is empty or invalid,
// which Envoy treats as no header.
func ParseGRPCTimeout(v string) (d time.Duration, ok bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	var n int64
	for _, c := range v[:len(v)-1] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	return time.Duration(n) * unit, true
}
