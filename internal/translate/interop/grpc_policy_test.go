package interop_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/translate"
)

// flakyServer fails every call whose metadata asks for it ("x-flaky") with
// UNAVAILABLE until it has failed that many calls, and counts attempts.
type flakyServer struct {
	testgrpc.UnimplementedTestServiceServer
	name     string
	attempts atomic.Int64
	failed   atomic.Int64
}

func (s *flakyServer) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	s.attempts.Add(1)
	md, _ := metadata.FromIncomingContext(ctx)
	if len(md.Get("x-flaky")) > 0 && s.failed.Load() < 2 {
		s.failed.Add(1)
		return nil, status.Error(codes.Unavailable, "flaky backend says no")
	}
	return &testgrpc.SimpleResponse{Hostname: s.name}, nil
}

// policyConfig routes by the x-test header: "split" 50/50 between v1 and
// v2, "abort" to a fault that aborts every call with UNAVAILABLE, "retry"
// to v1 with three retries on unavailable, "noretry" to v1 with retries
// off; everything else to v1 (with Istio's default retry policy).
const policyConfig = echoServices + `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo]
  http:
  - match:
    - headers: {x-test: {exact: split}}
    route:
    - {destination: {host: echo, subset: v1}, weight: 50}
    - {destination: {host: echo, subset: v2}, weight: 50}
  - match:
    - headers: {x-test: {exact: abort}}
    fault:
      abort:
        grpcStatus: UNAVAILABLE
        percentage: {value: 100}
    route:
    - destination: {host: echo, subset: v1}
  - match:
    - headers: {x-test: {exact: retry}}
    retries:
      attempts: 3
      retryOn: unavailable
    route:
    - destination: {host: echo, subset: v1}
  - match:
    - headers: {x-test: {exact: noretry}}
    retries:
      attempts: 0
    route:
    - destination: {host: echo, subset: v1}
  - route:
    - destination: {host: echo, subset: v1}
`

// TestProxylessGRPCTrafficPolicies shows weighted routing, fault injection
// and retries, translated by weft and served by its xDS server, taking
// effect in a real grpc-go xDS client.
func TestProxylessGRPCTrafficPolicies(t *testing.T) {
	v1 := &flakyServer{name: "v1"}
	v2 := &flakyServer{name: "v2"}
	configs, diags := manifest.Decode("policy.yaml", []byte(fmt.Sprintf(policyConfig, serveTestService(t, v1), serveTestService(t, v2))), "test")
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	conn := proxylessConn(t, configs, translate.NewCache().Generate)
	client := testgrpc.NewTestServiceClient(conn)
	call := func(md ...string) (string, error) {
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		cctx = metadata.AppendToOutgoingContext(cctx, md...)
		resp, err := client.UnaryCall(cctx, &testgrpc.SimpleRequest{}, grpc.WaitForReady(true))
		if err != nil {
			return "", err
		}
		return resp.Hostname, nil
	}
	if got, err := call(); err != nil || got != "v1" {
		t.Fatalf("default route: %q, %v; want v1", got, err)
	}

	// Weighted: 200 calls split 50/50. With a fair split, fewer than 60 or
	// more than 140 calls to v2 has a probability below 1e-8.
	counts := map[string]int{}
	for i := 0; i < 200; i++ {
		got, err := call("x-test", "split")
		if err != nil {
			t.Fatalf("split call %d: %v", i, err)
		}
		counts[got]++
	}
	if counts["v2"] < 60 || counts["v2"] > 140 || counts["v1"]+counts["v2"] != 200 {
		t.Errorf("50/50 split gave %v", counts)
	}

	// Fault: every call aborts with UNAVAILABLE and none reaches a backend.
	before := v1.attempts.Load() + v2.attempts.Load()
	for i := 0; i < 5; i++ {
		if _, err := call("x-test", "abort"); status.Code(err) != codes.Unavailable {
			t.Errorf("abort fault: err = %v, want code Unavailable", err)
		}
	}
	if after := v1.attempts.Load() + v2.attempts.Load(); after != before {
		t.Errorf("aborted calls reached the backends (%d attempts)", after-before)
	}

	// Retries: the backend fails twice with UNAVAILABLE; three retries on
	// "unavailable" turn that into a success after three attempts.
	attempts := v1.attempts.Load()
	got, err := call("x-test", "retry", "x-flaky", "1")
	if err != nil || got != "v1" {
		t.Fatalf("retried call: %q, %v; want v1 after retries", got, err)
	}
	if n := v1.attempts.Load() - attempts; n != 3 {
		t.Errorf("retried call took %d attempts, want 3 (2 failures, then success)", n)
	}
	// With retries off the same failure reaches the client after one attempt.
	v1.failed.Store(0)
	attempts = v1.attempts.Load()
	if _, err := call("x-test", "noretry", "x-flaky", "1"); status.Code(err) != codes.Unavailable {
		t.Errorf("call with retries off: err = %v, want Unavailable from the flaky backend", err)
	}
	if n := v1.attempts.Load() - attempts; n != 1 {
		t.Errorf("call with retries off took %d attempts, want 1", n)
	}
	// A route without retry settings gets Istio's default policy: 2 retries
	// on connect-failure, refused-stream, unavailable, cancelled.
	v1.failed.Store(0)
	attempts = v1.attempts.Load()
	if got, err := call("x-flaky", "1"); err != nil || got != "v1" {
		t.Errorf("default route with a flaky backend: %q, %v; want success through Istio's default retries", got, err)
	}
	if n := v1.attempts.Load() - attempts; n != 3 {
		t.Errorf("default route took %d attempts, want 3", n)
	}
}
