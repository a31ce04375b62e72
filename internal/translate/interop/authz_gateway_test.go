package interop_test

import (
	"fmt"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/proxy/router"
	"github.com/weftmesh/weft/internal/proxy/upstream"
)

// routedResolver serves RDS route tables and clusters.
type routedResolver struct {
	set    *upstream.Set
	tables map[string]*router.Table
}

func (r routedResolver) RouteTable(name string) *router.Table  { return r.tables[name] }
func (r routedResolver) Cluster(name string) *upstream.Cluster { return r.set.Get(name) }

// TestGatewayAuthorizationEndToEnd runs an ingress gateway compiled from
// translated configuration (RDS routes, EDS endpoints) in front of a
// recording backend: gateway policies see the authority as sent, port
// included (as in Istio, gateways do not strip it: a hosts entry without
// a port matches only a Host without one), the peer address rather than a spoofed X-Forwarded-For, normalized
// paths, and JWT principals.
func TestGatewayAuthorizationEndToEnd(t *testing.T) {
	s := newSigner(t)
	rec := &recorder{}
	backend := httptest.NewServer(rec)
	defer backend.Close()
	bport := backend.Listener.Addr().(*net.TCPAddr).Port
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gport := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	yaml := strings.NewReplacer("GPORT", gport, "BPORT", strconv.Itoa(bport), "ISSUER", issuer, "JWKS", s.jwks).Replace(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shop, namespace: default}
spec:
  hosts: [shop.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: BPORT}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: GPORT, name: http, protocol: HTTP}, bind: 127.0.0.1, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: [gw]
  http: [{route: [{destination: {host: shop.default.svc.cluster.local, port: {number: 80}}}]}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  jwtRules: [{issuer: ISSUER, jwks: 'JWKS'}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin", "/admin/*"]}}]
  - from: [{source: {remoteIpBlocks: ["203.0.113.0/24"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  rules:
  - to: [{operation: {hosts: ["shop.weft.test", "shop.weft.test:*"]}}]
  - from: [{source: {remoteIpBlocks: ["203.0.113.0/24"]}}]
  - from: [{source: {requestPrincipals: ["ISSUER/alice"]}}]
    to: [{operation: {hosts: ["api.weft.test"]}}]
`)
	if n := serveTranslated(t, gatewayResources(t, "gw.yaml", yaml)); n != 1 {
		t.Fatalf("%d gateway listeners", n)
	}
	addr := "127.0.0.1:" + gport
	alice, bob := s.sign(t, claims(nil)), s.sign(t, claims(func(m map[string]any) { m["sub"] = "bob" }))
	for _, c := range []struct {
		name, target, host, header string
		status                     int
		upstream                   string
	}{
		{"allowed host", "/cart", "shop.weft.test", "", 200, "/cart"},
		{"allowed host with port", "/cart", "shop.weft.test:" + gport, "", 200, "/cart"},
		{"allowed host upper case and port", "/cart", "SHOP.weft.test:" + gport, "", 200, "/cart"},
		{"other host", "/cart", "other.weft.test", "", 403, ""},
		{"denied path", "/admin/users", "shop.weft.test", "", 403, ""},
		{"denied path normalized", "/cart/../admin/users", "shop.weft.test:" + gport, "", 403, ""},
		{"normalized upstream", "/cart/./items/../list", "shop.weft.test", "", 200, "/cart/list"},
		{"spoofed XFF is not the remote address", "/cart", "other.weft.test", "X-Forwarded-For: 203.0.113.7\r\n", 403, ""},
		{"spoofed XFF does not trigger a deny either", "/cart", "shop.weft.test", "X-Forwarded-For: 203.0.113.7\r\n", 200, "/cart"},
		{"jwt principal allowed", "/v1", "api.weft.test", "Authorization: Bearer " + alice + "\r\n", 200, "/v1"},
		{"jwt principal, host port not listed", "/v1", "api.weft.test:" + gport, "Authorization: Bearer " + alice + "\r\n", 403, ""},
		{"jwt other principal", "/v1", "api.weft.test", "Authorization: Bearer " + bob + "\r\n", 403, ""},
		{"jwt missing", "/v1", "api.weft.test", "", 403, ""},
		{"jwt invalid", "/cart", "shop.weft.test", "Authorization: Bearer a.b.c\r\n", 401, ""},
	} {
		raw := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n", c.target, c.host, c.header)
		got, body := rawRequest(t, addr, raw)
		seen := rec.take()
		switch {
		case got != c.status:
			t.Errorf("%s: status %d (%q), want %d", c.name, got, body, c.status)
		case c.status != 200 && len(seen) > 0:
			t.Errorf("BYPASS %s: reached the backend as %s", c.name, seen[0].RequestURI)
		case c.status == 200 && (len(seen) != 1 || seen[0].RequestURI != c.upstream):
			t.Errorf("%s: backend saw %d requests (%v), want %s", c.name, len(seen), seen, c.upstream)
		}
	}
}
