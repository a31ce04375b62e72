package mtls

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestSniffedPortHTTPOverMTLS: an HTTP request to a port of unknown
// protocol crosses mesh mTLS as HTTP, as between Istio sidecars: the
// client sidecar offers Istio's HTTP ALPN (istio-http/1.1, istio,
// http/1.1) and the server sidecar's inbound listener picks its HTTP
// chain for it (not the TCP metadata-exchange chain), so the server
// reports the request as HTTP with the client's identity.
func TestSniffedPortHTTPOverMTLS(t *testing.T) {
	m := startMesh(t, time.Hour, "")
	const host = "reviews-auto.default.svc.cluster.local:9082"
	m.eventually("a request to the sniffed port", func() error {
		resp, err := m.forwarder.Get("http://" + host + "/alpn")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	m.eventually("the server's HTTP metric for the sniffed port", func() error {
		text := metrics(t, m.server)
		if !hasSeries(text, "istio_requests_total{", `reporter="destination"`, `source_principal="`+clientID+`"`,
			`connection_security_policy="mutual_tls"`, `request_protocol="http"`, `response_code="200"`, `destination_service="reviews-auto.default.svc.cluster.local"`) {
			return fmt.Errorf("server sidecar has no HTTP series for reviews-auto:\n%s", text)
		}
		return nil
	})
}
