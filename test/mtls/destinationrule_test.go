package mtls

import (
	"crypto/ecdsa"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDestinationRuleTLSModes: a DestinationRule's TLS mode overrides auto
// mTLS. SIMPLE and MUTUAL originate TLS to a server outside the mesh with
// the operator's files (the server's certificate verified against
// caCertificates and its SAN, the client certificate presented); DISABLE
// sends plaintext to a sidecar, which STRICT then refuses.
func TestDestinationRuleTLSModes(t *testing.T) {
	pki := newPKI(t, "ext.example.com")
	var extIP string
	m := startMeshWith(t, time.Hour, func(gw string) string {
		extIP = strings.TrimSuffix(gw, ".3") + ".4"
		return fmt.Sprintf(`---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: [ext.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports:
  - {number: 8080, name: http-simple, protocol: HTTP, targetPort: 8443}
  - {number: 8081, name: http-mutual, protocol: HTTP, targetPort: 9443}
  endpoints: [{address: %[1]s}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ext, namespace: default}
spec:
  host: ext.example.com
  trafficPolicy:
    portLevelSettings:
    - port: {number: 8080}
      tls: {mode: SIMPLE, caCertificates: %[2]s, subjectAltNames: [ext.example.com]}
    - port: {number: 8081}
      tls: {mode: MUTUAL, caCertificates: %[2]s, clientCertificate: %[3]s, privateKey: %[4]s}
`, extIP, pki.caFile, pki.clientCertFile(t), pki.clientKeyFile(t))
	})

	// The external servers: 8443 plain TLS, 9443 requires a client
	// certificate of the test CA.
	srvCert, err := tls.LoadX509KeyPair(pki.certFile, pki.key)
	if err != nil {
		t.Fatal(err)
	}
	serve := func(port int, mutual bool) {
		cfg := &tls.Config{Certificates: []tls.Certificate{srvCert}}
		if mutual {
			cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, pki.caPool
		}
		ln, err := tls.Listen("tcp", net.JoinHostPort(extIP, fmt.Sprint(port)), cfg)
		if err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			who := "anonymous"
			if len(r.TLS.PeerCertificates) > 0 {
				who = r.TLS.PeerCertificates[0].Subject.CommonName
			}
			fmt.Fprintf(w, "tls sni=%s client=%s", r.TLS.ServerName, who)
		})}
		go hs.Serve(ln)
		t.Cleanup(func() { hs.Close() })
	}
	serve(8443, false)
	serve(9443, true)

	get := func(host string, port int) (string, error) {
		resp, err := m.forwarder.Get(fmt.Sprintf("http://%s:%d/", host, port))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		return string(b), nil
	}
	var body string
	m.eventually("TLS origination (SIMPLE) works", func() error {
		body, err = get("ext.example.com", 8080)
		return err
	})
	if body != "tls sni=ext.example.com client=anonymous" {
		t.Errorf("SIMPLE: server saw %q", body)
	}
	if body, err := get("ext.example.com", 8081); err != nil || body != "tls sni=ext.example.com client=client.example.com" {
		t.Errorf("MUTUAL: %q, %v; want the client certificate presented", body, err)
	}

	// DISABLE to a STRICT sidecar: refused; auto mTLS again: accepted.
	m.apply(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-plain, namespace: default}
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy:
    tls: {mode: DISABLE}
`)
	m.eventually("plaintext (DR DISABLE) to a STRICT sidecar fails", func() error {
		if _, err := m.get("/"); err == nil {
			return fmt.Errorf("request succeeded")
		}
		return nil
	})
	m.apply(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-plain, namespace: default}
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
`)
	m.eventually("explicit ISTIO_MUTUAL to the STRICT sidecar works", func() error {
		body, err := m.get("/")
		if err == nil && xfccURI(body) != clientID {
			return fmt.Errorf("backend saw client %q", xfccURI(body))
		}
		return err
	})
}

func (p *testPKI) clientCertFile(t *testing.T) string {
	return p.write(t, "client.pem", pemCert(p.client.Certificate[0]))
}

func (p *testPKI) clientKeyFile(t *testing.T) string {
	return p.write(t, "client-key.pem", pemKey(t, p.clientKey()))
}

func (p *testPKI) clientKey() *ecdsa.PrivateKey { return p.client.PrivateKey.(*ecdsa.PrivateKey) }
