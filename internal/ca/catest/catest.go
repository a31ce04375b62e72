// Package catest runs weftd's real certificate authority on loopback TLS
// for tests: a self-signed CA, a bootstrap token store and Istio's
// certificate service, stopped when the test ends.
package catest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/ca"
	"github.com/weftmesh/weft/internal/ca/authn"
	"github.com/weftmesh/weft/internal/ca/caclient"
	"github.com/weftmesh/weft/internal/ca/spiffe"
)

// Quiet is a logger that discards everything.
var Quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// CA is a running certificate service.
type CA struct {
	// CA is the authority; Tokens authenticates workloads; Addr is the
	// certificate service's loopback address.
	CA     *ca.CA
	Tokens *authn.TokenStore
	Addr   string
}

// Start creates a CA in a temporary directory and serves it on a free
// loopback port until the test ends.
func Start(t testing.TB) *CA {
	t.Helper()
	dir := t.TempDir()
	c, err := ca.New(ca.Options{Dir: filepath.Join(dir, "ca")})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := authn.OpenTokenStore(filepath.Join(dir, "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.NewServer(c, ca.ServerOptions{Authenticator: tokens, Logger: Quiet})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, lis) }()
	t.Cleanup(func() { cancel(); <-done })
	return &CA{CA: c, Tokens: tokens, Addr: lis.Addr().String()}
}

// Rotator issues a bootstrap token for id, runs a rotator requesting
// certificates of lifetime ttl (0: the CA's default) until the test ends,
// and waits (up to 20 s) for its first certificate.
func (c *CA) Rotator(t testing.TB, id spiffe.ID, ttl time.Duration) *caclient.Rotator {
	t.Helper()
	token, err := c.Tokens.Issue(id)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := caclient.New(context.Background(), caclient.Options{Address: c.Addr, RootPEM: c.CA.RootsPEM(), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	r, err := caclient.NewRotator(caclient.RotatorOptions{Signer: cl, Identity: id, TTL: ttl, Logger: Quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-r.Ready():
	case <-time.After(20 * time.Second):
		t.Fatalf("catest: no certificate for %s", id)
	}
	return r
}
