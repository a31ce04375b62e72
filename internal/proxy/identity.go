package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/weftmesh/weft/internal/ca/caclient"
	"github.com/weftmesh/weft/internal/ca/spiffe"
	"github.com/weftmesh/weft/internal/proxy/bootstrap"
	"github.com/weftmesh/weft/internal/proxy/sds"
)

// newRotator builds the workload identity's CA client and rotator from
// the bootstrap (pilot-agent's role); Run starts the rotator.
func newRotator(ctx context.Context, cfg bootstrap.Config, p *Proxy) (*caclient.Rotator, error) {
	ca := cfg.CA
	td := ca.TrustDomain
	if td == "" {
		td = "cluster.local"
	}
	id := spiffe.ID{TrustDomain: td, Namespace: cfg.Node.Namespace, ServiceAccount: cfg.Node.ServiceAccount}
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("ca: workload identity: %w", err)
	}
	opts := caclient.Options{Address: ca.Address, ServerName: ca.ServerName, RootCertFile: ca.RootCertFile, TokenFile: ca.TokenFile}
	if ca.RootURL != "" {
		root, err := fetchRoot(ctx, ca.RootURL)
		if err != nil {
			return nil, fmt.Errorf("ca.rootURL: %w", err)
		}
		opts.RootPEM = root
	}
	var rot *caclient.Rotator
	// Renewals authenticate with the current certificate, so a bootstrap
	// token that was revoked after first use does not stop rotation.
	opts.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if c := rot.Certificate(); c != nil {
			return c, nil
		}
		return &tls.Certificate{}, nil
	}
	cl, err := caclient.New(ctx, opts)
	if err != nil {
		return nil, err
	}
	rot, err = caclient.NewRotator(caclient.RotatorOptions{Signer: cl, Identity: id, TTL: time.Duration(ca.CertTTL),
		Logger: p.log.With("component", "ca")})
	if err != nil {
		cl.Close()
		return nil, err
	}
	p.caClient = cl
	return rot, nil
}

// fetchRoot reads weftd's root bundle from its admin API.
func fetchRoot(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return b, nil
}

// startIdentity runs the rotator and waits for the first certificate, so
// the data plane starts with its identity (as Envoy waits for the agent's
// SDS). The rotator stops with ctx.
func (p *Proxy) startIdentity(ctx context.Context) error {
	if p.rotator == nil {
		return nil
	}
	go func() {
		p.rotator.Run(ctx)
		p.caClient.Close()
	}()
	select {
	case <-p.rotator.Ready():
		st := p.rotator.Status()
		p.log.Info("workload certificate issued", "identity", st.Identity, "expires", st.NotAfter)
		return nil
	case <-ctx.Done():
		return nil // Run then stops as usual
	}
}

// Secrets returns the local SDS secrets (nil without an identity).
func (p *Proxy) Secrets() *sds.Store { return p.secrets }
