package mtls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/bootstrap"
)

// testPKI is an operator's own CA (not the mesh's) with a server
// certificate for the gateway's host and a client certificate.
type testPKI struct {
	caPool                 *x509.CertPool
	caFile, certFile, key  string
	client                 tls.Certificate
	stranger               tls.Certificate // from another CA
	dir                    string
	serverName, clientName string
}

func newPKI(t *testing.T, host string) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir(), serverName: host, clientName: "client.example.com"}
	caKey, ca := selfSigned(t, "Test Gateway CA")
	p.caPool = x509.NewCertPool()
	p.caPool.AddCert(ca)
	p.caFile = p.write(t, "ca.pem", pemCert(ca.Raw))
	srvDER, srvKey := issue(t, ca, caKey, host, x509.ExtKeyUsageServerAuth)
	p.certFile = p.write(t, "cert.pem", pemCert(srvDER))
	p.key = p.write(t, "key.pem", pemKey(t, srvKey))
	cliDER, cliKey := issue(t, ca, caKey, p.clientName, x509.ExtKeyUsageClientAuth)
	p.client = tls.Certificate{Certificate: [][]byte{cliDER}, PrivateKey: cliKey}
	otherKey, other := selfSigned(t, "Stranger CA")
	strDER, strKey := issue(t, other, otherKey, p.clientName, x509.ExtKeyUsageClientAuth)
	p.stranger = tls.Certificate{Certificate: [][]byte{strDER}, PrivateKey: strKey}
	return p
}

func (p *testPKI) write(t *testing.T, name string, data []byte) string {
	f := filepath.Join(p.dir, name)
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func selfSigned(t *testing.T, cn string) (*ecdsa.PrivateKey, *x509.Certificate) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return key, c
}

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func pemKey(t *testing.T, k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// TestGatewaySimpleAndMutualTLS: an ingress gateway with its own workload
// identity terminates TLS from outside (SIMPLE with file certificates, and
// MUTUAL verifying the client against caCertificates), then reaches the
// backend's sidecar over mesh mTLS: the backend sees the gateway's SPIFFE
// ID.
func TestGatewaySimpleAndMutualTLS(t *testing.T) {
	const host = "reviews.example.com"
	pki := newPKI(t, host)
	extra := func(ip string) string {
		return fmt.Sprintf(`---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8443, name: https, protocol: HTTPS}
    bind: %[1]s
    hosts: [%[2]s]
    tls: {mode: SIMPLE, serverCertificate: %[3]s, privateKey: %[4]s}
  - port: {number: 9443, name: https-mutual, protocol: HTTPS}
    bind: %[1]s
    hosts: [%[2]s]
    tls: {mode: MUTUAL, serverCertificate: %[3]s, privateKey: %[4]s, caCertificates: %[5]s}
  - port: {number: 10443, name: https-credential, protocol: HTTPS}
    bind: %[1]s
    hosts: [%[2]s]
    tls: {mode: MUTUAL, credentialName: reviews-credential}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-ingress, namespace: default}
spec:
  hosts: [%[2]s]
  gateways: [gw]
  http:
  - route:
    - destination: {host: reviews.default.svc.cluster.local, port: {number: 9080}}
`, ip, host, pki.certFile, pki.key, pki.caFile)
	}
	m := startMeshWith(t, time.Hour, extra)
	gwIP := m.gatewayIP
	// credentialName secrets from files, laid out as a mounted
	// Kubernetes TLS secret.
	credDir := t.TempDir()
	os.MkdirAll(filepath.Join(credDir, "reviews-credential"), 0o700)
	for src, dst := range map[string]string{pki.certFile: "tls.crt", pki.key: "tls.key", pki.caFile: "ca.crt"} {
		b, _ := os.ReadFile(src)
		os.WriteFile(filepath.Join(credDir, "reviews-credential", dst), b, 0o600)
	}
	gw := m.startProxyAs("router", "istio-system", "istio-ingressgateway-service-account", "istio-ingressgateway", gwIP,
		map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"}, "",
		func(c *bootstrap.Config) { c.CA.CredentialDir = credDir })

	get := func(port int, cert *tls.Certificate) (string, error) {
		cfg := &tls.Config{RootCAs: pki.caPool, ServerName: host}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true,
			DialContext: (&net.Dialer{}).DialContext}}
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("https://%s:%d/gw", gwIP, port), nil)
		req.Host = host
		resp, err := c.Do(req)
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
	t.Cleanup(func() {
		if t.Failed() {
			resp, err := http.Get("http://" + gw.Addr("admin") + "/config_dump")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				t.Logf("gateway config_dump:\n%s", b)
			}
		}
	})
	const gatewayID = "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
	var body string
	m.eventually("the SIMPLE TLS server answers", func() error {
		var err error
		body, err = get(8443, nil)
		return err
	})
	if xfccURI(body) != gatewayID {
		t.Errorf("through the gateway (SIMPLE), the backend saw client %q (xfcc %q), want the gateway's identity %s", xfccURI(body), body, gatewayID)
	}
	if body, err := get(9443, &pki.client); err != nil || xfccURI(body) != gatewayID {
		t.Errorf("MUTUAL with a client certificate of caCertificates: %q, %v", body, err)
	}
	if _, err := get(9443, nil); err == nil {
		t.Error("MUTUAL without a client certificate was accepted")
	}
	if _, err := get(9443, &pki.stranger); err == nil {
		t.Error("MUTUAL with a client certificate of another CA was accepted")
	}
	if body, err := get(10443, &pki.client); err != nil || xfccURI(body) != gatewayID {
		t.Errorf("MUTUAL with credentialName (--credential-dir): %q, %v", body, err)
	}
	if _, err := get(10443, &pki.stranger); err == nil {
		t.Error("MUTUAL with credentialName accepted a client certificate of another CA")
	}
	if !strings.Contains(metrics(t, m.server), `source_principal="`+gatewayID+`"`) {
		t.Error("the server sidecar's metrics do not show the gateway as source_principal")
	}
}
