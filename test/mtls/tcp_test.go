package mtls

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestTCPOverMeshMTLS: a TCP service reached through the ingress gateway
// (tcp_proxy) goes to the server sidecar over mesh mTLS (auto mTLS on the
// gateway's upstream connection, TLS terminated by the sidecar's TCP
// chain), so it keeps working under STRICT while a plaintext TCP client
// straight to the sidecar is cut off.
func TestTCPOverMeshMTLS(t *testing.T) {
	m := startMeshWith(t, time.Hour, func(gw string) string {
		return fmt.Sprintf(`---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tcp-gw, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 9000, name: tcp, protocol: TCP}
    bind: %s
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-tcp, namespace: default}
spec:
  hosts: ["*"]
  gateways: [tcp-gw]
  tcp:
  - route:
    - destination: {host: reviews-tcp.default.svc.cluster.local, port: {number: 9000}}
`, gw)
	})
	// The TCP application: a line echo.
	ln, err := net.Listen("tcp", net.JoinHostPort(m.serverIP, "19000"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintf(c, "echo:%s\n", sc.Text())
				}
			}()
		}
	}()
	m.startProxyAs("router", "istio-system", "istio-ingressgateway-service-account", "istio-ingressgateway", m.gatewayIP,
		map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"}, "")

	echo := func(addr string) (string, error) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(c, "hello\n"); err != nil {
			return "", err
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		return strings.TrimSpace(line), err
	}
	gw := net.JoinHostPort(m.gatewayIP, "9000")
	direct := net.JoinHostPort(m.serverIP, "9000")
	m.eventually("TCP through the gateway echoes", func() error {
		got, err := echo(gw)
		if err == nil && got != "echo:hello" {
			err = fmt.Errorf("got %q", got)
		}
		return err
	})
	if got, err := echo(direct); err != nil || got != "echo:hello" {
		t.Fatalf("plaintext TCP to the sidecar under PERMISSIVE: %q, %v", got, err)
	}
	// A plain-text connection that stays open across the switch to STRICT.
	long, err := net.DialTimeout("tcp", direct, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	longR := bufio.NewReader(long)
	fmt.Fprintf(long, "before\n")
	long.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := longR.ReadString('\n'); err != nil || line != "echo:before\n" {
		t.Fatalf("long-lived plaintext connection: %q, %v", line, err)
	}
	m.apply(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
`)
	m.eventually("plaintext TCP to the sidecar is cut off under STRICT", func() error {
		if got, err := echo(direct); err == nil {
			return fmt.Errorf("plaintext TCP answered %q", got)
		}
		return nil
	})
	for i := 0; i < 3; i++ {
		if got, err := echo(gw); err != nil || got != "echo:hello" {
			t.Fatalf("TCP through the gateway under STRICT (mesh mTLS): %q, %v", got, err)
		}
	}
	// The plain-text connection from before STRICT is cut off.
	long.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(long, "after\n")
	if line, err := longR.ReadString('\n'); err == nil {
		t.Errorf("plaintext TCP connection from before STRICT still echoes %q", line)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("plaintext TCP connection from before STRICT is still open (read timed out)")
	}
}
