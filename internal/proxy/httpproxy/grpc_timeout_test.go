package httpproxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// TestGRPCTimeoutHeader sends gRPC requests with grpc-timeout: 100m to a
// backend answering after 1s (or when the proxy gives up): on Istio's
// outbound route (max_grpc_timeout 0s) the router times out (UT, a
// trailers-only UNAVAILABLE as Envoy's 504 mapping), on Istio's inbound
// route (max_stream_duration with grpc_timeout_header_max 0s) the stream
// duration ends it (DT, DEADLINE_EXCEEDED). A non-gRPC request with the
// header is not bounded by it.
func TestGRPCTimeoutHeader(t *testing.T) {
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(time.Second):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Grpc-Status", "0")
	})
	quick := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		w.Write([]byte("late but fine"))
	})
	outbound := func(a *routev3.RouteAction) { a.Timeout, a.MaxGrpcTimeout = durationpb.New(0), durationpb.New(0) }
	inbound := func(a *routev3.RouteAction) {
		a.Timeout = durationpb.New(0)
		a.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: durationpb.New(0), GrpcTimeoutHeaderMax: durationpb.New(0)}
	}
	cases := []struct {
		name        string
		backend     http.Handler
		edit        func(*routev3.RouteAction)
		contentType string
		status      int
		grpcStatus  string
		flags       string
	}{
		{"outbound route", slow, outbound, "application/grpc", 200, "14", "UT"},
		{"inbound route", slow, inbound, "application/grpc+proto", 200, "4", "DT"},
		{"not gRPC", quick, outbound, "text/plain", 200, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := &Handler{Resolver: oneCluster{routeTo(t, c.edit), loopbackCluster(t, c.backend, nil)}}
			r := httptest.NewRequest("POST", "http://svc/pkg.Svc/Call", strings.NewReader("\x00\x00\x00\x00\x00"))
			r.Header.Set("Content-Type", c.contentType)
			r.Header.Set("Grpc-Timeout", "100m")
			start := time.Now()
			w, info := serveInfo(h, r)
			took := time.Since(start)
			if w.Code != c.status || w.Header().Get("Grpc-Status") != c.grpcStatus || info.Flags != c.flags {
				t.Errorf("HTTP %d grpc-status %q flags %q after %s; want %d, %q, %q", w.Code, w.Header().Get("Grpc-Status"), info.Flags, took, c.status, c.grpcStatus, c.flags)
			}
			if c.grpcStatus != "" {
				if took >= 800*time.Millisecond {
					t.Errorf("answered after %s, want about 100ms", took)
				}
				if w.Body.Len() != 0 || w.Header().Get("Content-Type") != "application/grpc" || info.GRPCStatus != c.grpcStatus {
					t.Errorf("not a trailers-only gRPC reply: body %q, content-type %q, logged grpc status %q", w.Body, w.Header().Get("Content-Type"), info.GRPCStatus)
				}
			}
		})
	}
}

// TestGRPCLocalReply checks that the proxy's own error replies to gRPC
// requests are trailers-only gRPC responses with Envoy's status mapping.
func TestGRPCLocalReply(t *testing.T) {
	h := &Handler{Static: echoTable(t)} // only /a/ is routed
	for _, c := range []struct {
		contentType string
		status      int
		grpcStatus  string
	}{
		{"application/grpc", 200, "12"}, // 404 NR -> UNIMPLEMENTED
		{"application/grpc-web", 404, ""},
		{"text/plain", 404, ""},
	} {
		r := httptest.NewRequest("POST", "http://h/nowhere", nil)
		r.Header.Set("Content-Type", c.contentType)
		w, info := serveInfo(h, r)
		if w.Code != c.status || w.Header().Get("Grpc-Status") != c.grpcStatus || info.Flags != FlagNoRoute {
			t.Errorf("%s: HTTP %d grpc-status %q flags %q, want %d %q NR", c.contentType, w.Code, w.Header().Get("Grpc-Status"), info.Flags, c.status, c.grpcStatus)
		}
	}
	if got := grpcPercentEncode("a b%c\n\xff"); got != "a b%25c%0A%FF" {
		t.Errorf("grpcPercentEncode = %q", got)
	}
}
