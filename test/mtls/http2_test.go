package mtls

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

// TestHTTP2OverMeshMTLS: an HTTP2 port (gRPC's case) is carried over one
// mesh mTLS connection negotiated to h2 between the sidecars, and reaches
// the backend as HTTP/2 with the client's identity.
func TestHTTP2OverMeshMTLS(t *testing.T) {
	m := startMesh(t, time.Hour, "")
	ln, err := net.Listen("tcp", net.JoinHostPort(m.serverIP, "19081"))
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h2c.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Proto, xfccURI(r.Header.Get("X-Forwarded-Client-Cert")))
	}), &http2.Server{})}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })

	var body string
	m.eventually("the HTTP2 service answers", func() error {
		resp, err := m.forwarder.Get("http://reviews-h2.default.svc.cluster.local:9081/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		body = string(b)
		return nil
	})
	if body != "HTTP/2.0 "+clientID {
		t.Errorf("backend saw %q, want HTTP/2.0 from %s", body, clientID)
	}
	cl := m.client.Cluster("outbound|9081||reviews-h2.default.svc.cluster.local")
	if cl == nil || !cl.HTTP2 {
		t.Fatalf("client cluster for the HTTP2 port: %+v", cl)
	}
}
