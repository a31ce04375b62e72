package caclient_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/ca"
	"github.com/weftmesh/weft/internal/ca/authn"
	"github.com/weftmesh/weft/internal/ca/caclient"
)

// serveAt runs a certificate server for c on addr ("127.0.0.1:0" for any
// port) and returns the address and a function stopping it.
func serveAt(t *testing.T, c *ca.CA, tokens *authn.TokenStore, addr string) (string, func()) {
	t.Helper()
	srv, err := ca.NewServer(c, ca.ServerOptions{Authenticator: tokens, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	var lis net.Listener
	for i := 0; ; i++ { // the port of a stopped server may take a moment to free
		if lis, err = net.Listen("tcp", addr); err == nil || i == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Run(ctx, lis); close(done) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return lis.Addr().String(), stop
}

// TestClientFollowsRootRotation: a proxy configured with the old root
// keeps reaching weftd after the CA's root was staged and promoted,
// because it trusts the bundle of its latest response.
func TestClientFollowsRootRotation(t *testing.T) {
	dir := t.TempDir()
	opts := ca.Options{Dir: filepath.Join(dir, "ca")}
	c0, err := ca.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	oldRootPEM := c0.RootsPEM()
	tokens, err := authn.OpenTokenStore(filepath.Join(dir, "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := tokens.Issue(details)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := ca.StageRoot(opts); err != nil {
		t.Fatal(err)
	}
	c1, err := ca.New(opts) // weftd restarted after staging
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := serveAt(t, c1, tokens, "127.0.0.1:0")
	cl, err := caclient.New(context.Background(), caclient.Options{Address: addr, RootPEM: oldRootPEM, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	sign := func(cl *caclient.Client) (*caclient.Response, error) {
		key, _ := caclient.GenerateKey(caclient.ECDSAP256)
		csr, _ := caclient.NewCSR(key, details)
		return cl.Sign(context.Background(), csr, 0)
	}
	resp, err := sign(cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Roots) != 2 {
		t.Fatalf("bundle after staging has %d roots, want 2", len(resp.Roots))
	}

	stop()
	if err := ca.PromoteRoot(opts); err != nil {
		t.Fatal(err)
	}
	c2, err := ca.New(opts) // weftd restarted after promotion: new serving chain
	if err != nil {
		t.Fatal(err)
	}
	serveAt(t, c2, tokens, addr)

	if _, err := sign(cl); err != nil {
		t.Fatalf("client that learned the bundle cannot reach weftd after promotion: %v", err)
	}
	fresh, err := caclient.New(context.Background(), caclient.Options{Address: addr, RootPEM: oldRootPEM, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if _, err := sign(fresh); err == nil {
		t.Fatal("a client trusting only the old root accepted weftd's new-root certificate: verification is not happening")
	}
}
