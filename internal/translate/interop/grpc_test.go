package interop_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/translate"
	"github.com/weftmesh/weft/internal/xds"
)

// serveTestService serves a grpc_testing TestService on a free loopback
// port until the test ends and returns the port.
func serveTestService(t *testing.T, impl testgrpc.TestServiceServer) uint32 {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(srv, impl)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return uint32(lis.Addr().(*net.TCPAddr).Port)
}

// echoServices declares service echo with workloads v1 and v2 on the two
// ports given to Sprintf, and their subsets.
const echoServices = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo.default.svc.cluster.local]
  addresses: [10.0.0.80]
  resolution: STATIC
  ports:
  - {number: 8080, name: grpc, protocol: GRPC}
  workloadSelector:
    labels: {app: echo}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: echo-v1, namespace: default}
spec:
  address: 127.0.0.1
  ports: {grpc: %d}
  labels: {app: echo, version: v1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: echo-v2, namespace: default}
spec:
  address: 127.0.0.1
  ports: {grpc: %d}
  labels: {app: echo, version: v2}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: default}
spec:
  host: echo
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
`

const echoConfig = echoServices + `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo]
  http:
  - match:
    - headers:
        x-version: {exact: v2}
    route:
    - destination: {host: echo, subset: v2}
  - route:
    - destination: {host: echo, subset: v1}
`

// TestProxylessGRPCClient runs a real grpc-go xDS client against the xDS
// server serving translate.Generate's output, and checks that it routes
// calls by the VirtualService to the right backend.
func TestProxylessGRPCClient(t *testing.T) {
	t.Run("Generate", func(t *testing.T) { testProxylessGRPCClient(t, translate.Generate) })
	t.Run("Cache", func(t *testing.T) { testProxylessGRPCClient(t, translate.NewCache().Generate) })
}

func testProxylessGRPCClient(t *testing.T, gen xds.Generator) {
	v1, v2 := serveTestService(t, &flakyServer{name: "v1"}), serveTestService(t, &flakyServer{name: "v2"})
	configs, diags := manifest.Decode("echo.yaml", []byte(fmt.Sprintf(echoConfig, v1, v2)), "test")
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	conn := proxylessConn(t, configs, gen)
	client := testgrpc.NewTestServiceClient(conn)
	call := func(md ...string) string {
		t.Helper()
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		if len(md) > 0 {
			cctx = metadata.AppendToOutgoingContext(cctx, md...)
		}
		resp, err := client.UnaryCall(cctx, &testgrpc.SimpleRequest{}, grpc.WaitForReady(true))
		if err != nil {
			t.Fatalf("UnaryCall: %v", err)
		}
		return resp.Hostname
	}
	for i := 0; i < 3; i++ {
		if got := call(); got != "v1" {
			t.Errorf("default route reached %q, want v1", got)
		}
		if got := call("x-version", "v2"); got != "v2" {
			t.Errorf("x-version: v2 reached %q, want v2", got)
		}
	}
}
