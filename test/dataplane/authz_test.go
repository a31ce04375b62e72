package dataplane

import (
	"fmt"
	"io"
	"testing"
	"time"
)

// TestNetworkRBACDenyAccessLog: a TCP connection denied by an
// AuthorizationPolicy (network RBAC on the server sidecar) is closed
// before any byte reaches the backend, and the server sidecar's access log
// has a line for it as Envoy's tcp_proxy writes one: the RBAC filter's
// connection_termination_details naming the matched policy, no response
// flag, no bytes, the inbound cluster.
func TestNetworkRBACDenyAccessLog(t *testing.T) {
	m := NewMesh(t)
	svc := m.AddService("tcpecho", "tcp", "TCP")
	// AddWorkload, with the workload sidecar's access log on.
	w := &Workload{Name: svc.Name + "-v1", Version: "v1", Address: m.NewAddress(), Service: svc}
	w.Backend = StartBackend(t, BackendTCP, w.Name, w.Address)
	svc.Workloads = append(svc.Workloads, w)
	m.Apply("service-"+svc.Name+".yaml", svc.yaml())
	w.Sidecar = m.StartProxy(ProxyOptions{Name: w.Name, Address: w.Address, App: svc.Name, Version: "v1", ServiceAccount: svc.Name, AccessLog: true})
	client := m.StartClient("client")
	m.Apply("deny.yaml", fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-tcp, namespace: %s}
spec:
  selector: {matchLabels: {app: tcpecho}}
  action: DENY
  rules:
  - to:
    - operation: {ports: ["%d"]}
`, Namespace, svc.Port))
	m.Sync()

	c, err := client.Dial(svc.HostPort())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "hello\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(c); len(b) > 0 {
		t.Errorf("denied connection read %q (%v); want it closed with nothing", b, err)
	}

	const want = "rbac_access_denied_matched_policy[ns[" + Namespace + "]-policy[deny-tcp]-rule[0]]"
	var line AccessLogEntry
	eventually(t, "access log line of the denied connection", func() error {
		for _, e := range w.Sidecar.AccessLogEntries(t) {
			if e.Str("connection_termination_details") != "" {
				line = e
				return nil
			}
		}
		return fmt.Errorf("no line with connection_termination_details")
	})
	if got := line.Str("connection_termination_details"); got != want {
		t.Errorf("connection_termination_details = %q, want %q", got, want)
	}
	if f := line.Str("response_flags"); f != "" && f != "-" {
		t.Errorf("response_flags = %q, want none (Envoy's network RBAC sets no flag)", f)
	}
	if got := line.Str("upstream_cluster"); got != fmt.Sprintf("inbound|%d||", svc.Port) {
		t.Errorf("upstream_cluster = %q, want the inbound cluster", got)
	}
	if r, s := line["bytes_received"], line["bytes_sent"]; fmt.Sprint(r) != "0" || fmt.Sprint(s) != "0" {
		t.Errorf("bytes received %v sent %v, want 0 0", r, s)
	}
	if n := len(w.Backend.Requests()); n != 0 {
		t.Errorf("the backend saw %d requests", n)
	}
}
