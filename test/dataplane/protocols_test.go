package dataplane

import (
	"testing"
)

// TestHTTP1ForwardProxy sends HTTP/1.1 requests through the client
// sidecar's forward proxy (HTTP_PROXY, absolute-form) to a service of two
// workloads: each answers through its own sidecar, and the server sees
// the service's authority.
func TestHTTP1ForwardProxy(t *testing.T) {
	m := NewMesh(t)
	echo := m.AddService("echo", "http", "HTTP")
	m.AddWorkload(echo, "v1", BackendHTTP)
	m.AddWorkload(echo, "v2", BackendHTTP)
	client := m.StartClient("client")

	seen := map[string]int{}
	for range 20 {
		r := client.Get(t, echo.URL("/hello?x=1"))
		if r.Status != 200 || r.Echo == nil {
			t.Fatalf("GET %s: %d %q", echo.URL("/hello"), r.Status, r.Body)
		}
		if r.Echo.Proto != "HTTP/1.1" || r.Echo.URI != "/hello?x=1" || r.Echo.Host != echo.HostPort() {
			t.Errorf("backend saw %s %s host %s, want HTTP/1.1 /hello?x=1 host %s", r.Echo.Proto, r.Echo.URI, r.Echo.Host, echo.HostPort())
		}
		seen[r.Echo.Instance]++
	}
	if seen["echo-v1"] == 0 || seen["echo-v2"] == 0 {
		t.Errorf("instances answering = %v, want both echo-v1 and echo-v2", seen)
	}
}
