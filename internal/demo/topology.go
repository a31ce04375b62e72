package demo

import (
	"fmt"
	"net"
	"strconv"
)

// Workload is one member of the demo mesh: an application (or none, for a
// client-only sidecar) and the sidecar proxy in front of it.
//
// Addresses follow ADR 0007: the sidecar binds the service port on the
// workload's own loopback address (its WorkloadEntry address), forwards
// inbound requests to the application on the same address at AppPort
// (the Sidecar's defaultEndpoint 0.0.0.0:AppPort, Istio's "the instance
// address"), and serves the application's outbound calls as an HTTP
// forward proxy on EgressAddress (the application's HTTP_PROXY).
type Workload struct {
	// Name is the workload name, e.g. "reviews-v2".
	Name string
	// App and Version are the workload's app and version labels.
	App, Version string
	// ServiceAccount is its identity, e.g. "bookinfo-reviews".
	ServiceAccount string
	// Address is the workload's mesh address, e.g. 127.0.0.31.
	Address string
	// Port is the service port the sidecar binds on Address (0: no inbound).
	Port uint32
	// AppPort is where the application listens, on Address.
	AppPort uint32
	// EgressAddress is the sidecar's forward proxy (host:port).
	EgressAddress string
	// Binary and Args start the application; Binary is empty for a
	// client-only workload (a sidecar whose forward proxy a user calls).
	Binary string
	Args   []string
}

// AppAddress is where the application listens.
func (w Workload) AppAddress() string { return hostPort(w.Address, w.AppPort) }

// ServiceAddress is where the sidecar accepts mesh traffic.
func (w Workload) ServiceAddress() string { return hostPort(w.Address, w.Port) }

// Labels are the workload's labels.
func (w Workload) Labels() map[string]string {
	return map[string]string{"app": w.App, "version": w.Version}
}

func hostPort(host string, port uint32) string {
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// Service is one mesh service of the demo (a ServiceEntry).
type Service struct {
	Name string
	Port uint32
}

// Namespace is where the demo's workloads live.
const Namespace = "default"

// GatewayNamespace is the ingress gateway's namespace.
const GatewayNamespace = "istio-system"

// Services are the demo's services: bookinfo's four on 9080 and httpbin on
// 8000, as in Istio's samples.
var Services = []Service{
	{"productpage", 9080},
	{"details", 9080},
	{"reviews", 9080},
	{"ratings", 9080},
	{"httpbin", 8000},
}

// appPortOffset separates the application's port from the service port.
const appPortOffset = 10000

// Workloads returns the demo's workloads: bookinfo (productpage v1,
// details v1, reviews v1/v2/v3, ratings v1), httpbin v1/v2 and a client
// sidecar "fortio" for the circuit-breaking and mirroring tasks. Their
// mesh addresses are in 127.0.BLOCK.0/24 and their forward proxies in
// 127.0.BLOCK+1.0/24 (block 0: 127.0.0.10 and 127.0.1.10 for productpage).
func Workloads(block uint8) []Workload {
	bookinfo := func(app, version string, last int, args ...string) Workload {
		w := Workload{
			Name: app + "-" + version, App: app, Version: version,
			ServiceAccount: "bookinfo-" + app,
			Address:        fmt.Sprintf("127.0.%d.%d", block, last),
			Port:           9080, AppPort: 9080 + appPortOffset,
			EgressAddress: fmt.Sprintf("127.0.%d.%d:15001", int(block)+1, last),
			Binary:        "bookinfo",
		}
		w.Args = append([]string{app, "--listen", w.AppAddress()}, args...)
		return w
	}
	httpbin := func(version string, last int) Workload {
		w := Workload{
			Name: "httpbin-" + version, App: "httpbin", Version: version,
			ServiceAccount: "httpbin",
			Address:        fmt.Sprintf("127.0.%d.%d", block, last),
			Port:           8000, AppPort: 8000 + appPortOffset,
			EgressAddress: fmt.Sprintf("127.0.%d.%d:15001", int(block)+1, last),
			Binary:        "httpbin",
		}
		w.Args = []string{"--listen", w.AppAddress(), "--name", w.Name, "--hostname", w.Name}
		return w
	}
	return []Workload{
		bookinfo("productpage", "v1", 10),
		bookinfo("details", "v1", 20),
		bookinfo("reviews", "v1", 30, "--version", "v1", "--podname", "reviews-v1"),
		bookinfo("reviews", "v2", 31, "--version", "v2", "--podname", "reviews-v2"),
		bookinfo("reviews", "v3", 32, "--version", "v3", "--podname", "reviews-v3"),
		bookinfo("ratings", "v1", 40),
		{
			Name: "fortio", App: "fortio", Version: "v1", ServiceAccount: "fortio",
			Address:       fmt.Sprintf("127.0.%d.50", block),
			EgressAddress: fmt.Sprintf("127.0.%d.50:15001", int(block)+1),
		},
		httpbin("v1", 60),
		httpbin("v2", 61),
	}
}

// GatewayAddress is the ingress gateway proxy's own address (admin, ready
// and stats ports), 127.0.BLOCK.2; its listener binds the Gateway server
// port on all interfaces.
func GatewayAddress(block uint8) string { return fmt.Sprintf("127.0.%d.2", block) }

// MaxBlock is the largest address block (its egress block is MaxBlock+1).
const MaxBlock = 254
