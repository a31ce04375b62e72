package interop_test

import (
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy/listener"
	"github.com/weftmesh/weft/internal/translate"
)

// TestNetworkAuthorization checks AuthorizationPolicy on a TCP port end
// to end: the network RBAC filter lets allowed connections reach the
// backend and closes denied ones before any byte is forwarded; rules with
// HTTP-only fields follow Istio (ALLOW rule dropped, DENY rule broadened).
func TestNetworkAuthorization(t *testing.T) {
	cases := []struct {
		name, policy string
		allowed      bool
	}{
		{"allow source ip", `rules: [{from: [{source: {ipBlocks: ["127.0.0.1/32"]}}]}]`, true},
		{"allow other ip", `rules: [{from: [{source: {ipBlocks: ["10.0.0.0/8"]}}]}]`, false},
		{"allow port", `rules: [{to: [{operation: {ports: ["PORT"]}}]}]`, true},
		{"allow with http-only field", `rules: [{to: [{operation: {paths: ["/x"]}}]}]`, false},
		{"allow without rules", `{}`, false},
		{"deny with http-only field", `{action: DENY, rules: [{to: [{operation: {methods: ["GET"]}}]}]}`, false},
		{"deny other ip", `{action: DENY, rules: [{from: [{source: {ipBlocks: ["10.0.0.0/8"]}}]}]}`, true},
		{"deny not ip", `{action: DENY, rules: [{from: [{source: {notIpBlocks: ["10.0.0.0/8"]}}]}]}`, false},
		{"deny destination port", `{action: DENY, rules: [{when: [{key: destination.port, values: ["PORT"]}]}]}`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var accepted atomic.Int32
			backend, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer backend.Close()
			go func() {
				for {
					conn, err := backend.Accept()
					if err != nil {
						return
					}
					accepted.Add(1)
					go func() { io.Copy(conn, conn); conn.Close() }()
				}
			}()
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
			l.Close()
			spec := c.policy
			if !strings.HasPrefix(spec, "{") {
				spec = "{" + spec + "}"
			}
			yaml := strings.ReplaceAll(`
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: db, namespace: default}
spec:
  workloadSelector: {labels: {app: db}}
  ingress:
  - port: {number: PORT, protocol: TCP, name: tcp}
    captureMode: NONE
    bind: 127.0.0.1
    defaultEndpoint: `+backend.Addr().String()+`
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: plaintext, namespace: default}
spec:
  selector: {matchLabels: {app: db}}
  mtls: {mode: DISABLE}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: default}
spec: `+spec+"\n", "PORT", port)
			res := translateYAML(t, "tcp.yaml", yaml, &model.Proxy{Type: model.ProxySidecar, Namespace: "default", Labels: map[string]string{"app": "db"},
				IPs: []string{"127.0.0.1"}, Metadata: map[string]string{translate.MetadataInterceptionMode: "NONE"}})
			m, ls := serveListeners(t, res, listener.Deps{}, "127.0.0.1_"+port)
			conn, err := net.Dial("tcp", m.Addr(ls[0].Addr))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(3 * time.Second))
			conn.Write([]byte("ping"))
			buf := make([]byte, 4)
			_, rerr := io.ReadFull(conn, buf)
			if c.allowed {
				if rerr != nil || string(buf) != "ping" {
					t.Errorf("allowed connection: read %q, %v", buf, rerr)
				}
				return
			}
			if rerr == nil {
				t.Errorf("BYPASS: denied connection echoed %q", buf)
			}
			if n := accepted.Load(); n != 0 {
				t.Errorf("BYPASS: denied connection reached the backend (%d accepts)", n)
			}
		})
	}
}
