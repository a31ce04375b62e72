package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

// selfSigned returns a PEM certificate and key for 127.0.0.1/localhost.
func selfSigned(t testing.TB) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}))
}

// tlsListener is an HTTP listener terminating TLS with inline certs.
func tlsListener(t testing.TB, name, addr, rds string) *listenerv3.Listener {
	cert, key := selfSigned(t)
	l := xdstest.HTTPListener(name, addr, xdstest.HCM(name, rds))
	dtc := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		AlpnProtocols: []string{"h2", "http/1.1"},
		TlsCertificates: []*tlsv3.TlsCertificate{{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: cert}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: key}},
		}},
	}}
	l.FilterChains[0].TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: xdstest.Any(dtc)}}
	return l
}

func findH2spec(t *testing.T) string {
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p
	}
	home, _ := os.UserHomeDir()
	for _, p := range []string{filepath.Join(os.Getenv("GOPATH"), "bin", "h2spec"), filepath.Join(home, "go", "bin", "h2spec")} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("h2spec not installed in CI: go install github.com/summerwind/h2spec/cmd/h2spec@latest")
	}
	t.Skip("h2spec not installed (go install github.com/summerwind/h2spec/cmd/h2spec@latest)")
	return ""
}

var h2specSummary = regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`)

// TestH2spec runs the h2spec conformance suite against the proxy's h2c
// and TLS listeners. A bare Go 1.26 server fails 5 (h2c) and 4 (TLS) of
// 145; the proxy must not fail more.
func TestH2spec(t *testing.T) {
	bin := findH2spec(t)
	if testing.Short() {
		t.Skip("h2spec takes a while")
	}
	up := newBackend(t, "up", nil)
	h2c, tlsAddr := xdstest.FreeAddr(t), xdstest.FreeAddr(t)
	res := xdstest.Resources{
		Clusters: []*clusterT{xdstest.StaticCluster("outbound|80||up", up.addr())},
		Listeners: []*listenerv3.Listener{
			xdstest.HTTPListener("h2c", h2c, xdstest.HCM("h2c", "80")),
			tlsListener(t, "tls", tlsAddr, "80"),
		},
		Routes: []*routeT{xdstest.RouteConfig("80", "outbound|80||up")},
	}
	newHarness(t, res)
	for _, c := range []struct {
		name, addr string
		tls        bool
		baseline   int
	}{{"h2c", h2c, false, 5}, {"tls", tlsAddr, true, 4}} {
		t.Run(c.name, func(t *testing.T) {
			host, port := splitHostPort(t, c.addr)
			args := []string{"-h", host, "-p", port, "-o", "2"}
			if c.tls {
				args = append(args, "-t", "-k")
			}
			out, _ := exec.Command(bin, args...).CombinedOutput()
			m := h2specSummary.FindSubmatch(out)
			if m == nil {
				t.Fatalf("no h2spec summary in output:\n%s", out)
			}
			failed, _ := strconv.Atoi(string(m[4]))
			t.Logf("h2spec %s: %s", c.name, m[0])
			if failed > c.baseline {
				t.Errorf("h2spec %s: %d failed, a bare Go server fails %d:\n%s", c.name, failed, c.baseline, failures(out))
			}
		})
	}
}

func splitHostPort(t *testing.T, a string) (string, string) {
	for i := len(a) - 1; i >= 0; i-- {
		if a[i] == ':' {
			return a[:i], a[i+1:]
		}
	}
	t.Fatalf("bad address %q", a)
	return "", ""
}

// failures extracts the "Failures:" section of h2spec output.
func failures(out []byte) string {
	if i := regexp.MustCompile(`(?m)^Failures:`).FindIndex(out); i != nil {
		return string(out[i[0]:])
	}
	return string(out)
}
