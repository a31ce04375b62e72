package xdsconf

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/weftmesh/weft/internal/ca"
	"github.com/weftmesh/weft/internal/ca/authn"
	"github.com/weftmesh/weft/internal/ca/spiffe"
)

// Namespace is the benchmark workloads' namespace.
const Namespace = "bench"

// Service accounts of the mesh path's two sidecars.
const (
	ClientServiceAccount = "client"
	ServerServiceAccount = "server"
)

// Principal is the SPIFFE ID of a bench workload's service account.
func Principal(serviceAccount string) string {
	return spiffe.ID{TrustDomain: spiffe.DefaultTrustDomain, Namespace: Namespace, ServiceAccount: serviceAccount}.String()
}

// CA is weftd's certificate service run in the harness: a self-signed
// internal/ca authority serving Istio's CreateCertificate over TLS on
// loopback, with bootstrap tokens. A weft-proxy started with Flags gets
// its workload certificate from it exactly as it does from weftd's port
// 15012 in production (caclient, CSR, rotator, local SDS "default" and
// "ROOTCA").
type CA struct {
	dir    string
	addr   string
	tokens *authn.TokenStore
	cancel context.CancelFunc
	done   chan struct{}
}

// StartCA creates a CA in dir (which must be empty or not exist) and
// serves its certificate service on a free loopback port until Stop.
func StartCA(dir string) (*CA, error) {
	authority, err := ca.New(ca.Options{Dir: filepath.Join(dir, "cacerts")})
	if err != nil {
		return nil, err
	}
	tokens, err := authn.OpenTokenStore(filepath.Join(dir, "tokens.json"))
	if err != nil {
		return nil, err
	}
	srv, err := ca.NewServer(authority, ca.ServerOptions{
		Authenticator: authn.Chain{tokens, authn.CertAuthenticator{TrustDomain: authority.TrustDomain()}},
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "root-cert.pem"), authority.RootsPEM(), 0o644); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &CA{dir: dir, addr: ln.Addr().String(), tokens: tokens, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		srv.Run(ctx, ln)
	}()
	return c, nil
}

// Addr is the certificate service's host:port.
func (c *CA) Addr() string { return c.addr }

// RootFile is the PEM file of the trust bundle, which also verifies the
// certificate service.
func (c *CA) RootFile() string { return filepath.Join(c.dir, "root-cert.pem") }

// TokenFile issues a bootstrap token for serviceAccount in Namespace and
// writes it to a new file, returning its path.
func (c *CA) TokenFile(serviceAccount string) (string, error) {
	id := spiffe.ID{TrustDomain: spiffe.DefaultTrustDomain, Namespace: Namespace, ServiceAccount: serviceAccount}
	tok, err := c.tokens.Issue(id)
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(c.dir, serviceAccount+"-*.token")
	if err != nil {
		return "", err
	}
	_, werr := f.WriteString(tok)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return "", fmt.Errorf("xdsconf: token file: %w", werr)
	}
	return f.Name(), nil
}

// ServerName is the name the certificate service's serving certificate
// carries for loopback clients.
const ServerName = "localhost"

// Flags returns weft-proxy's command-line flags for the identity of
// serviceAccount, with a newly issued bootstrap token.
func (c *CA) Flags(serviceAccount string) ([]string, error) {
	tok, err := c.TokenFile(serviceAccount)
	if err != nil {
		return nil, err
	}
	return []string{
		"--namespace", Namespace, "--service-account", serviceAccount,
		"--ca-address", c.addr, "--ca-server-name", ServerName,
		"--ca-root-file", c.RootFile(), "--token-file", tok,
	}, nil
}

// Stop stops the certificate service.
func (c *CA) Stop() {
	c.cancel()
	<-c.done
}
