// Package dataplane holds end-to-end tests of weft-proxy's features
// through real processes: the weftd and weft-proxy binaries, built once per
// test binary, and Go backend servers, all on loopback addresses of their
// own.
//
// The harness (harness_test.go, backends_test.go) starts a weftd per test
// on a temporary config directory, declares services in local mode the way
// internal/demo does (ServiceEntry + WorkloadEntry + a Sidecar with
// captureMode NONE binding the service port on the workload's address),
// starts a sidecar proxy per workload in front of a Go backend, and a
// client sidecar whose HTTP forward proxy (HTTP_PROXY, and CONNECT for
// everything that is not HTTP/1.1) the test sends traffic through. Tests
// then write Istio YAML into the config directory and wait until every
// proxy has acknowledged the new configuration before sending requests:
//
//	m := NewMesh(t)                                 // weftd
//	echo := m.AddService("echo", "http", "HTTP")    // ServiceEntry (port chosen free)
//	m.AddWorkload(echo, "v1", BackendHTTP)          // backend + its sidecar
//	client := m.StartClientWithAccessLog("client")  // client sidecar
//	m.Apply("vs.yaml", VirtualServiceYAML("echo", "hosts: [...]\nhttp: ..."))
//	m.Sync()                                        // every proxy ACKed it
//	r := client.Get(t, echo.URL("/path"), "x-user", "jason")
//	// r.Echo says which instance answered and what it saw
//
// Non-HTTP/1.1 traffic goes through [Proxy.Dial] (a CONNECT tunnel the
// proxy treats as a connection intercepted to host:port) or
// [Proxy.H2CClient]. Gateways: [Mesh.StartGateway], with Gateway servers
// bound on the gateway's address. Every process is stopped at the end of
// the test and its output is logged if the test failed.
//
// go test ./test/dataplane -args -weft-bin DIR uses prebuilt binaries
// instead of building them (useful while the working tree does not build).
//
// The package has no non-test code besides this comment.
package dataplane
