package caclient_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/weftmesh/weft/internal/ca/authn"
	"github.com/weftmesh/weft/internal/ca/caclient"
	"github.com/weftmesh/weft/internal/ca/catest"
	"github.com/weftmesh/weft/internal/ca/spiffe"
)

var (
	productpage = spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "productpage"}
	details     = spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "details"}
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func run(t *testing.T, r *caclient.Rotator) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestRotatorRenewsBeforeExpiry(t *testing.T) {
	w := catest.Start(t)
	r := w.Rotator(t, productpage, 2*time.Second)
	first := r.Certificate()
	st := r.Status()
	if st.Rotations != 1 || st.Identity != productpage.String() || st.NotAfter != first.Leaf.NotAfter {
		t.Fatalf("status after first certificate: %+v", st)
	}
	lifetime := st.NotAfter.Sub(st.LastRotation)
	if due := st.NextRotation.Sub(st.LastRotation); due > lifetime/2+time.Millisecond || due < lifetime*45/100-time.Millisecond {
		t.Errorf("next rotation due %v after install, want 45–50%% of %v", due, lifetime)
	}
	changed := r.Changed()
	waitFor(t, changed, "rotation")
	second := r.Certificate()
	if second.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
		t.Fatal("rotation kept the same certificate")
	}
	// (Certificate times have one-second resolution, hence not After.)
	if second.Leaf.NotAfter.Before(first.Leaf.NotAfter) {
		t.Error("new certificate expires before the old one")
	}
	if first.Leaf.PublicKey.(*ecdsa.PublicKey).Equal(second.Leaf.PublicKey) {
		t.Error("rotation reused the key")
	}
	// The renewal happened while the old certificate was still valid.
	if rot := r.Status().LastRotation; !rot.Before(first.Leaf.NotAfter) {
		t.Errorf("renewed at %v, after the old certificate expired at %v", rot, first.Leaf.NotAfter)
	}
	if st := r.Status(); st.Rotations < 2 || st.Failures != 0 || st.LastError != "" {
		t.Errorf("status %+v", st)
	}
}

// echo serves line-echo over TLS with the given config until the test ends.
func echo(t *testing.T, conf *tls.Config) string {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := io.WriteString(c, "echo "+line); err != nil {
						return
					}
				}
			}()
		}
	}()
	return lis.Addr().String()
}

func roundTrip(t *testing.T, c *tls.Conn, br *bufio.Reader, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		t.Fatalf("write on established connection: %v", err)
	}
	got, err := br.ReadString('\n')
	if err != nil || got != "echo "+msg+"\n" {
		t.Fatalf("read on established connection: %q %v", got, err)
	}
}

func TestRotationKeepsConnectionsAndServesNewCertToNewHandshakes(t *testing.T) {
	w := catest.Start(t)
	server := w.Rotator(t, productpage, 2*time.Second)
	client := w.Rotator(t, details, time.Hour)

	var sawClient atomic.Pointer[spiffe.ID] // set by the server's handshake goroutine
	addr := echo(t, server.ServerTLSConfig(func(id spiffe.ID) error {
		if id != details {
			return fmt.Errorf("%s may not call productpage", id)
		}
		sawClient.Store(&id)
		return nil
	}))
	dial := func() (*tls.Conn, *bufio.Reader) {
		c, err := tls.Dial("tcp", addr, client.ClientTLSConfig(func(id spiffe.ID) error {
			if id != productpage {
				return fmt.Errorf("server is %s, want productpage", id)
			}
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}

	changed := server.Changed()
	old := server.Certificate().Leaf
	c1, br1 := dial()
	roundTrip(t, c1, br1, "before")
	if got := c1.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(old.SerialNumber) != 0 {
		t.Fatal("first connection did not get the current certificate")
	}
	if got := sawClient.Load(); got == nil || *got != details {
		t.Errorf("server saw client %v", got)
	}

	waitFor(t, changed, "server certificate rotation")
	current := server.Certificate().Leaf
	roundTrip(t, c1, br1, "after rotation")

	c2, br2 := dial()
	roundTrip(t, c2, br2, "new connection")
	// The server may rotate again meanwhile (every second or so), so ask
	// only for a certificate issued no earlier than the first rotation.
	got := c2.ConnectionState().PeerCertificates[0]
	if got.SerialNumber.Cmp(old.SerialNumber) == 0 {
		t.Fatal("new handshake got the old certificate")
	}
	if got.NotAfter.Before(current.NotAfter) {
		t.Fatalf("new handshake got a certificate expiring %v, before the rotated one (%v)", got.NotAfter, current.NotAfter)
	}

	// Once the old certificate has expired the connection made with it
	// still carries traffic: TLS checks certificates only at handshake.
	time.Sleep(time.Until(old.NotAfter) + 50*time.Millisecond)
	roundTrip(t, c1, br1, "after old certificate expired")

	// A client with a certificate from another CA is refused.
	other := catest.Start(t)
	stranger := other.Rotator(t, details, time.Hour)
	conf := stranger.ClientTLSConfig(nil)
	conf.VerifyPeerCertificate = nil // trust anything: the server must still refuse us
	c3, err := tls.Dial("tcp", addr, conf)
	if err == nil {
		c3.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = io.WriteString(c3, "x\n")
		if err == nil {
			_, err = bufio.NewReader(c3).ReadString('\n')
		}
		c3.Close()
	}
	if err == nil {
		t.Fatal("server accepted a client certificate from a foreign CA")
	}
}

func TestSecretsExport(t *testing.T) {
	w := catest.Start(t)
	r := w.Rotator(t, productpage, time.Hour)
	secrets := r.Secrets()
	if len(secrets) != 2 {
		t.Fatalf("%d secrets, want 2", len(secrets))
	}
	byName := map[string]*tlsv3.Secret{}
	for _, s := range secrets {
		if err := s.ValidateAll(); err != nil {
			t.Errorf("secret %q: ValidateAll: %v", s.Name, err)
		}
		byName[s.Name] = s
	}
	def := byName[caclient.SecretDefault].GetTlsCertificate()
	if def == nil {
		t.Fatal("no default TlsCertificate")
	}
	pair, err := tls.X509KeyPair(def.GetCertificateChain().GetInlineBytes(), def.GetPrivateKey().GetInlineBytes())
	if err != nil {
		t.Fatalf("default secret is not a usable key pair: %v", err)
	}
	if pair.Leaf.SerialNumber.Cmp(r.Certificate().Leaf.SerialNumber) != 0 {
		t.Error("default secret is not the current certificate")
	}
	vc := byName[caclient.SecretRootCA].GetValidationContext()
	block, _ := pem.Decode(vc.GetTrustedCa().GetInlineBytes())
	if block == nil {
		t.Fatal("ROOTCA has no PEM")
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !root.Equal(w.CA.Certificate()) {
		t.Fatalf("ROOTCA is not the CA root (%v)", err)
	}
}

func TestRotatorRetriesUntilTokenWorks(t *testing.T) {
	w := catest.Start(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(authn.TokenPrefix+"not-issued"), 0o600); err != nil {
		t.Fatal(err)
	}
	cl, err := caclient.New(context.Background(), caclient.Options{Address: w.Addr, RootPEM: w.CA.RootsPEM(), TokenFile: tokenFile})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	r, err := caclient.NewRotator(caclient.RotatorOptions{Signer: cl, Identity: details, RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if r.Secrets() != nil || r.Certificate() != nil {
		t.Fatal("certificate before the first rotation")
	}
	if _, err := r.GetCertificate(nil); err == nil {
		t.Fatal("GetCertificate succeeded without a certificate")
	}
	run(t, r)
	deadline := time.Now().Add(20 * time.Second)
	for r.Status().Failures < 2 {
		if time.Now().After(deadline) {
			t.Fatal("rotator did not retry")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := r.Status(); st.LastError == "" || st.Rotations != 0 {
		t.Fatalf("status after failures: %+v", st)
	}
	token, err := w.Tokens.Issue(details)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r.Ready(), "certificate after the token was fixed")
	if st := r.Status(); st.LastError != "" || st.Rotations != 1 {
		t.Fatalf("status after recovery: %+v", st)
	}
}

func TestNewRotatorValidatesOptions(t *testing.T) {
	for _, o := range []caclient.RotatorOptions{
		{Identity: details},
		{Signer: &caclient.Client{}, Identity: spiffe.ID{TrustDomain: "cluster.local"}},
		{Signer: &caclient.Client{}, Identity: details, RenewAt: 1.5},
	} {
		if _, err := caclient.NewRotator(o); err == nil {
			t.Errorf("NewRotator(%+v) succeeded", o)
		}
	}
}
