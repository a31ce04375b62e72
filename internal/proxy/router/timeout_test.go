package router

import (
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestParseGRPCTimeout(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"200m", 200 * time.Millisecond, true},
		{"1S", time.Second, true},
		{"2M", 2 * time.Minute, true},
		{"1H", time.Hour, true},
		{"5u", 5 * time.Microsecond, true},
		{"7n", 7, true},
		{"0m", 0, true},
		{"99999999S", 99999999 * time.Second, true},
		{"123456789S", 0, false}, // more than 8 digits
		{"", 0, false},
		{"m", 0, false},
		{"10", 0, false},
		{"1x", 0, false},
		{"-1S", 0, false},
		{"1.5S", 0, false},
	} {
		if got, ok := ParseGRPCTimeout(c.in); got != c.want || ok != c.ok {
			t.Errorf("ParseGRPCTimeout(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// TestGRPCTimeouts checks the router timeout (Envoy's finalTimeout) and
// the stream duration (refreshDurationTimeout) of routes as Istio writes
// them and with caps and offsets.
func TestGRPCTimeouts(t *testing.T) {
	d := durationpb.New
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	compile := func(ra *routev3.RouteAction) *Route {
		t.Helper()
		ra.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: "c"}
		tab, err := Compile(&routev3.RouteConfiguration{Name: "t", VirtualHosts: []*routev3.VirtualHost{{Name: "v", Domains: []string{"*"},
			Routes: []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, Action: &routev3.Route_Route{Route: ra}}}}}})
		if err != nil {
			t.Fatal(err)
		}
		return tab.any.Routes[0]
	}
	cases := []struct {
		name           string
		ra             *routev3.RouteAction
		grpc           bool
		header         string
		router, stream time.Duration
	}{
		// Istio's outbound routes: timeout 0s, max_grpc_timeout 0s.
		{"istio outbound, header", &routev3.RouteAction{Timeout: d(0), MaxGrpcTimeout: d(0)}, true, "200m", ms(200), 0},
		{"istio outbound, no header", &routev3.RouteAction{Timeout: d(0), MaxGrpcTimeout: d(0)}, true, "", 0, 0},
		{"istio outbound, not gRPC", &routev3.RouteAction{Timeout: d(0), MaxGrpcTimeout: d(0)}, false, "200m", 0, 0},
		// A VirtualService timeout: max_grpc_timeout caps the header.
		{"vs timeout caps a longer header", &routev3.RouteAction{Timeout: d(time.Second), MaxGrpcTimeout: d(time.Second)}, true, "5S", time.Second, 0},
		{"vs timeout, shorter header", &routev3.RouteAction{Timeout: d(time.Second), MaxGrpcTimeout: d(time.Second)}, true, "300m", ms(300), 0},
		{"vs timeout, no header", &routev3.RouteAction{Timeout: d(time.Second), MaxGrpcTimeout: d(time.Second)}, true, "", time.Second, 0},
		{"offset", &routev3.RouteAction{MaxGrpcTimeout: d(0), GrpcTimeoutOffset: d(ms(50))}, true, "200m", ms(150), 0},
		{"offset not below the header", &routev3.RouteAction{MaxGrpcTimeout: d(0), GrpcTimeoutOffset: d(ms(300))}, true, "200m", ms(200), 0},
		{"no max_grpc_timeout: route timeout", &routev3.RouteAction{Timeout: d(ms(700))}, true, "200m", ms(700), 0},
		{"default route timeout", &routev3.RouteAction{}, false, "", DefaultRouteTimeout, 0},
		// Istio's inbound route: max_stream_duration 0s and
		// grpc_timeout_header_max 0s: the header, uncapped, bounds the stream.
		{"istio inbound, header", &routev3.RouteAction{Timeout: d(0), MaxStreamDuration: &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: d(0), GrpcTimeoutHeaderMax: d(0)}}, true, "200m", 0, ms(200)},
		{"istio inbound, no header", &routev3.RouteAction{Timeout: d(0), MaxStreamDuration: &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: d(0), GrpcTimeoutHeaderMax: d(0)}}, true, "", 0, 0},
		{"header max caps", &routev3.RouteAction{MaxStreamDuration: &routev3.RouteAction_MaxStreamDuration{GrpcTimeoutHeaderMax: d(ms(100))}}, true, "200m", DefaultRouteTimeout, ms(100)},
		{"header offset", &routev3.RouteAction{MaxStreamDuration: &routev3.RouteAction_MaxStreamDuration{GrpcTimeoutHeaderMax: d(0), GrpcTimeoutHeaderOffset: d(ms(20))}}, true, "200m", DefaultRouteTimeout, ms(180)},
		{"header offset too large: none", &routev3.RouteAction{MaxStreamDuration: &routev3.RouteAction_MaxStreamDuration{GrpcTimeoutHeaderMax: d(0), GrpcTimeoutHeaderOffset: d(ms(300))}}, true, "200m", DefaultRouteTimeout, 0},
		{"header without header max: stream max", &routev3.RouteAction{MaxStreamDuration: &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: d(time.Second)}}, true, "200m", DefaultRouteTimeout, time.Second},
		// max_stream_duration makes Envoy ignore max_grpc_timeout.
		{"max_stream_duration wins", &routev3.RouteAction{Timeout: d(0), MaxGrpcTimeout: d(0), MaxStreamDuration: &routev3.RouteAction_MaxStreamDuration{GrpcTimeoutHeaderMax: d(0)}}, true, "200m", 0, ms(200)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := compile(c.ra)
			if got := r.RouterTimeout(c.grpc, c.header); got != c.router {
				t.Errorf("RouterTimeout(%v, %q) = %v, want %v", c.grpc, c.header, got, c.router)
			}
			if got := r.StreamTimeout(c.header); got != c.stream {
				t.Errorf("StreamTimeout(%q) = %v, want %v", c.header, got, c.stream)
			}
		})
	}
}
