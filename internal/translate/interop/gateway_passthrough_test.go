package interop_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestGatewayTLSPassthroughBySNI runs an ingress gateway compiled from a
// Gateway server in PASSTHROUGH mode and VirtualService tls routes: each
// TLS connection goes, still encrypted, to the backend its SNI names, which
// terminates TLS itself; an SNI no route names gets no backend.
func TestGatewayTLSPassthroughBySNI(t *testing.T) {
	backend := func(name string) int {
		s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s saw SNI %s", name, r.TLS.ServerName)
		}))
		t.Cleanup(s.Close)
		return s.Listener.Addr().(*net.TCPAddr).Port
	}
	nginx, shop := backend("nginx"), backend("shop")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gport := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	yaml := strings.NewReplacer("GPORT", gport, "NGINX", strconv.Itoa(nginx), "SHOP", strconv.Itoa(shop)).Replace(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: nginx, namespace: default}
spec:
  hosts: [nginx.example.com]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 443, name: tls, protocol: TLS, targetPort: NGINX}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shop, namespace: default}
spec:
  hosts: [shop.example.com]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 443, name: tls, protocol: TLS, targetPort: SHOP}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: GPORT, name: tls-passthrough, protocol: TLS}
    bind: 127.0.0.1
    hosts: [nginx.example.com, shop.example.com]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: nginx, namespace: istio-system}
spec:
  hosts: [nginx.example.com]
  gateways: [gw]
  tls:
  - match: [{port: GPORT, sniHosts: [nginx.example.com]}]
    route: [{destination: {host: nginx.example.com, port: {number: 443}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: istio-system}
spec:
  hosts: [shop.example.com]
  gateways: [gw]
  tls:
  - match: [{port: GPORT, sniHosts: [shop.example.com]}]
    route: [{destination: {host: shop.example.com, port: {number: 443}}}]
`)
	serveTranslated(t, gatewayResources(t, "passthrough.yaml", yaml))
	addr := "127.0.0.1:" + gport

	get := func(sni string) (string, error) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
			&tls.Config{ServerName: sni, InsecureSkipVerify: true}) //nolint:gosec // the test checks who answers, not the certificate
		if err != nil {
			return "", err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", sni)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	for sni, want := range map[string]string{
		"nginx.example.com": "nginx saw SNI nginx.example.com",
		"shop.example.com":  "shop saw SNI shop.example.com",
	} {
		got, err := get(sni)
		if err != nil || got != want {
			t.Errorf("SNI %s: %q, %v; want %q (TLS terminated by the backend)", sni, got, err, want)
		}
	}
	if got, err := get("unknown.example.com"); err == nil {
		t.Errorf("SNI unknown.example.com reached a backend: %q", got)
	}
}
