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
// proxy has acknowledged the new configuration before sending requests.
//
// The package has no non-test code besides this comment.
package dataplane
