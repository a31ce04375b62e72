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
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/ca/catest"
	"github.com/weftmesh/weft/internal/ca/spiffe"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy/listener"
	"github.com/weftmesh/weft/internal/proxy/sds"
	"github.com/weftmesh/weft/internal/translate"
)

// identity returns the SDS store of service account sa in default, with a
// certificate from c.
func identity(t *testing.T, c *catest.CA, sa string) *sds.Store {
	t.Helper()
	return sds.New(c.Rotator(t, spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: sa}, 0))
}

// clientTLS is a mesh client presenting its workload certificate.
func clientTLS(t *testing.T, id *sds.Store) *tls.Config {
	cert, err := id.Certificate(sds.SecretDefault)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{*cert}, InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}
}

// TestMTLSPrincipals authorizes by the mTLS peer identity end to end: a
// workload with STRICT mTLS admits, on its HTTP and TCP ports, only the
// service account its ALLOW policy names, and a DENY by namespace pattern
// applies; a client without a certificate never gets through.
func TestMTLSPrincipals(t *testing.T) {
	m := catest.Start(t)
	server, productpage, other := identity(t, m, "httpbin"), identity(t, m, "productpage"), identity(t, m, "other")

	rec := &recorder{}
	backend := httptest.NewServer(rec)
	defer backend.Close()
	var tcpAccepts atomic.Int32
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			tcpAccepts.Add(1)
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	freePort := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	}
	httpPort, tcpPort := freePort(), freePort()
	yaml := strings.NewReplacer("HTTPPORT", httpPort, "TCPPORT", tcpPort, "BACKEND", backend.Listener.Addr().String(), "ECHO", echo.Addr().String()).Replace(`
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: httpbin, namespace: default}
spec:
  workloadSelector: {labels: {app: httpbin}}
  ingress:
  - port: {number: HTTPPORT, protocol: HTTP, name: http}
    captureMode: NONE
    bind: 127.0.0.1
    defaultEndpoint: BACKEND
  - port: {number: TCPPORT, protocol: TCP, name: tcp}
    captureMode: NONE
    bind: 127.0.0.1
    defaultEndpoint: ECHO
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: default}
spec:
  selector: {matchLabels: {app: httpbin}}
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-productpage, namespace: default}
spec:
  selector: {matchLabels: {app: httpbin}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/productpage", "cluster.local/ns/default/sa/other"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-other, namespace: default}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: DENY
  rules:
  - from: [{source: {principals: ["*/sa/other"]}}]
`)
	res := translateYAML(t, "mtls.yaml", yaml, &model.Proxy{Type: model.ProxySidecar, Namespace: "default", Labels: map[string]string{"app": "httpbin"},
		ServiceAccount: "httpbin", IPs: []string{"127.0.0.1"}, Metadata: map[string]string{translate.MetadataInterceptionMode: "NONE"}})
	serveListeners(t, res, listener.Deps{Secrets: server}, "127.0.0.1_"+httpPort, "127.0.0.1_"+tcpPort)
	httpAddr, tcpAddr := "127.0.0.1:"+httpPort, "127.0.0.1:"+tcpPort

	get := func(cfg *tls.Config) int {
		c, err := tls.Dial("tcp", httpAddr, cfg)
		if err != nil {
			return -1 // handshake refused
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET /anything HTTP/1.1\r\nHost: httpbin\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	echoes := func(cfg *tls.Config) bool {
		c, err := tls.Dial("tcp", tcpAddr, cfg)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		c.Write([]byte("ping"))
		buf := make([]byte, 4)
		_, err = io.ReadFull(c, buf)
		return err == nil && string(buf) == "ping"
	}
	noCert := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}

	if got := get(clientTLS(t, productpage)); got != 200 || len(rec.take()) != 1 {
		t.Errorf("productpage over mTLS: %d, want 200 from the backend", got)
	}
	if got := get(clientTLS(t, other)); got != 403 {
		t.Errorf("denied service account: %d, want 403", got)
	}
	if got := get(noCert); got == 200 {
		t.Errorf("client without certificate: %d", got)
	}
	if n := len(rec.take()); n != 0 {
		t.Errorf("BYPASS: %d denied requests reached the backend", n)
	}
	before := tcpAccepts.Load()
	if !echoes(clientTLS(t, productpage)) {
		t.Error("productpage over mTLS TCP: no echo")
	}
	if tcpAccepts.Load() != before+1 {
		t.Error("allowed TCP connection did not reach the backend")
	}
	if echoes(clientTLS(t, other)) {
		t.Error("BYPASS: denied service account's TCP connection echoed")
	}
	if echoes(noCert) {
		t.Error("BYPASS: TCP connection without client certificate echoed")
	}
	if tcpAccepts.Load() != before+1 {
		t.Errorf("BYPASS: denied TCP connections reached the backend (%d)", tcpAccepts.Load()-before-1)
	}
}
