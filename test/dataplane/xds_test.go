package dataplane

import (
	"fmt"
	"testing"
	"time"
)

// TestProxyStatusMixedXDSModes connects a state-of-the-world sidecar and a
// delta (incremental) client to one weftd and changes a route both use:
// both apply it, and weftd's sync status (weft proxy-status) must then
// show both SYNCED.
func TestProxyStatusMixedXDSModes(t *testing.T) {
	m := NewMesh(t)
	echo := m.AddService("echo", "http", "HTTP")
	server := m.AddWorkload(echo, "v1", BackendHTTP) // its sidecar uses state of the world
	delta := m.StartProxy(ProxyOptions{Name: "delta-client", App: "delta-client", Delta: true})
	m.Sync()
	m.Apply("echo-vs.yaml", VirtualServiceYAML("echo", fmt.Sprintf(`hosts: [%[1]s]
http:
- headers: {request: {set: {x-route: changed}}}
  route: [{destination: {host: %[1]s}}]
`, echo.Host)))

	// Both proxies serve the new route (each also routes outbound to echo).
	for _, p := range []*Proxy{delta, server.Sidecar} {
		eventually(t, p.Name+" applies the new route", func() error {
			r := p.Get(t, echo.URL("/"))
			if r.Echo == nil || r.Echo.Header.Get("X-Route") != "changed" {
				return fmt.Errorf("%d %q", r.Status, r.Body)
			}
			return nil
		})
	}
	err := m.TrySync(3*time.Second, delta, server.Sidecar)
	// SotW and delta stream ids are numbered independently by
	// go-control-plane; weftd must keep their records apart.
	if err != nil {
		t.Fatal(err)
	}
}
