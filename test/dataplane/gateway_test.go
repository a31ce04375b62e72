package dataplane

import (
	"fmt"
	"io"
	"net/http"
	"testing"
)

// TestGatewayHTTP serves a Gateway server bound on the ingress gateway's
// address and routes it with a VirtualService bound to the gateway: the
// request reaches the service through the gateway and the service's
// sidecar, with the client's Host (port stripped, as Istio's gateways do).
func TestGatewayHTTP(t *testing.T) {
	m := NewMesh(t)
	echo := m.AddService("echo", "http", "HTTP")
	m.AddWorkload(echo, "v1", BackendHTTP)
	gw := m.StartGateway("ingress")
	port := gw.FreePort(t)
	m.Apply("gateway.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: %[1]d, name: http, protocol: HTTP}
    bind: %[2]s
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ingress, namespace: default}
spec:
  hosts: ["*"]
  gateways: [istio-system/ingress]
  http:
  - match: [{uri: {prefix: /echo/}}]
    route: [{destination: {host: %[3]s, port: {number: %[4]d}}}]
`, port, gw.Address, echo.Host, echo.Port))
	m.Sync()

	url := fmt.Sprintf("http://%s:%d", gw.Address, port)
	var r *Response
	eventually(t, "the gateway listener answers", func() error {
		resp, err := http.Get(url + "/echo/hi")
		if err != nil {
			return err
		}
		r = readResponse(t, resp)
		return nil
	})
	if r.Status != 200 || r.Echo == nil || r.Echo.Instance != "echo-v1" || r.Echo.URI != "/echo/hi" {
		t.Fatalf("GET %s/echo/hi: %d %q", url, r.Status, r.Body)
	}
	// As Istio (ISTIO_GATEWAY_STRIP_HOST_PORT off), gateways keep the
	// Host's port: their route configurations ignore it when matching
	// (ignore_port_in_host_matching) and the backend sees it unchanged.
	if want := fmt.Sprintf("%s:%d", gw.Address, port); r.Echo.Host != want {
		t.Errorf("backend saw Host %q, want the client's, %q", r.Echo.Host, want)
	}
	resp, err := http.Get(url + "/elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /elsewhere through the gateway: %s, want 404 (no route)", resp.Status)
	}
}
