// Package caclient is the workload side of Weft's CA, for weft-proxy: it
// generates keys and CSRs, asks weftd's IstioCertificateService
// (istio.io/api/security/v1alpha1) for certificates over TLS with a
// bootstrap token, and keeps a certificate fresh with a Rotator whose
// GetCertificate/GetClientCertificate hooks make rotation invisible to
// established connections. It links no Kubernetes code and nothing of the
// control plane's model.
package caclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	securityv1alpha1 "istio.io/api/security/v1alpha1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Options configures a Client.
type Options struct {
	// Address is weftd's certificate service, host:port (port 15012).
	Address string
	// ServerName is the name weftd's certificate must carry; default the
	// host part of Address.
	ServerName string
	// RootPEM holds the roots that verify weftd's certificate. If empty,
	// RootCertFile is read.
	RootPEM []byte
	// RootCertFile is a PEM file of roots that verify weftd's certificate.
	RootCertFile string
	// TrustOnFirstUse, only when no roots are configured (RootPEM empty and
	// RootCertFile unset or missing), takes the root from weftd's first
	// TLS handshake, without verification, and writes it to RootCertFile
	// if set so later starts verify against it. It is an explicit opt-in
	// for demos: an attacker on the first connection becomes the CA.
	TrustOnFirstUse bool
	// Token is the bearer token ("Authorization: Bearer <token>").
	Token string
	// TokenFile is read on each request when Token is empty, so a token
	// that is rotated on disk is picked up.
	TokenFile string
	// GetClientCertificate, if set, presents a client certificate (for
	// instance a Rotator's current one) so weftd can authenticate renewals
	// by certificate.
	GetClientCertificate func(*tls.CertificateRequestInfo) (*tls.Certificate, error)
	// Timeout bounds each request; default 10 s.
	Timeout time.Duration
}

// Response is a certificate issued by the CA.
type Response struct {
	// Chain is the certificate followed by its intermediates.
	Chain []*x509.Certificate
	// Roots is the trust bundle the CA returned (every root, during a
	// root rotation both the old and the new).
	Roots []*x509.Certificate
}

// Client calls weftd's certificate service. It is safe for concurrent use.
//
// It verifies weftd's certificate with the configured roots until the
// first certificate is issued, and from then on with the trust bundle of
// the latest response, so it follows a root rotation of the CA.
type Client struct {
	opts  Options
	conn  *grpc.ClientConn
	svc   securityv1alpha1.IstioCertificateServiceClient
	trust atomic.Pointer[x509.CertPool] // verifies weftd's serving certificate
}

// New creates a client. With TrustOnFirstUse and no roots it connects to
// weftd once, within ctx, to learn the root.
func New(ctx context.Context, opts Options) (*Client, error) {
	if opts.Address == "" {
		return nil, errors.New("caclient: no Address")
	}
	host, _, err := net.SplitHostPort(opts.Address)
	if err != nil {
		return nil, fmt.Errorf("caclient: Address %q: %w", opts.Address, err)
	}
	if opts.ServerName == "" {
		opts.ServerName = host
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Token == "" && opts.TokenFile == "" && opts.GetClientCertificate == nil {
		return nil, errors.New("caclient: no credentials: set Token, TokenFile or GetClientCertificate")
	}
	roots, err := loadRoots(ctx, opts)
	if err != nil {
		return nil, err
	}
	c := &Client{opts: opts}
	c.trust.Store(roots)
	tlsConf := &tls.Config{
		MinVersion:           tls.VersionTLS12,
		ServerName:           opts.ServerName,
		GetClientCertificate: opts.GetClientCertificate,
		// The standard verification would pin the roots at construction;
		// VerifyConnection does the same checks with the current bundle.
		InsecureSkipVerify: true,
		VerifyConnection:   c.verifyServer,
	}
	conn, err := grpc.NewClient(opts.Address, grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)))
	if err != nil {
		return nil, fmt.Errorf("caclient: %w", err)
	}
	c.conn, c.svc = conn, securityv1alpha1.NewIstioCertificateServiceClient(conn)
	return c, nil
}

// verifyServer verifies weftd's certificate chain for ServerName against
// the current trust bundle.
func (c *Client) verifyServer(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("caclient: weftd presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, ic := range cs.PeerCertificates[1:] {
		inter.AddCert(ic)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		DNSName:       c.opts.ServerName,
		Roots:         c.trust.Load(),
		Intermediates: inter,
	})
	if err != nil {
		return fmt.Errorf("caclient: weftd's certificate: %w", err)
	}
	return nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Sign sends a PEM CSR and returns the issued chain and trust bundle. ttl
// 0 lets the CA choose (its default TTL). The chain is checked: it must
// verify, for client and server authentication, to a root of the
// returned bundle.
func (c *Client) Sign(ctx context.Context, csrPEM []byte, ttl time.Duration) (*Response, error) {
	token := c.opts.Token
	if token == "" && c.opts.TokenFile != "" {
		b, err := os.ReadFile(c.opts.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("caclient: token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	var callOpts []grpc.CallOption
	if token != "" {
		callOpts = append(callOpts, grpc.PerRPCCredentials(bearer(token)))
	}
	resp, err := c.svc.CreateCertificate(ctx, &securityv1alpha1.IstioCertificateRequest{
		Csr:              string(csrPEM),
		ValidityDuration: int64(ttl / time.Second),
	}, callOpts...)
	if err != nil {
		return nil, fmt.Errorf("caclient: CreateCertificate: %w", err)
	}
	r, err := parseResponse(resp.GetCertChain())
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, root := range r.Roots {
		pool.AddCert(root)
	}
	c.trust.Store(pool)
	return r, nil
}

// parseResponse splits Istio's response (leaf, intermediates..., root
// bundle last) and verifies it.
func parseResponse(pems []string) (*Response, error) {
	if len(pems) < 2 {
		return nil, fmt.Errorf("caclient: response has %d PEM elements, want the certificate and the root bundle at least", len(pems))
	}
	var r Response
	for i, p := range pems[:len(pems)-1] {
		certs, err := parseCerts([]byte(p))
		if err != nil {
			return nil, fmt.Errorf("caclient: response cert_chain[%d]: %w", i, err)
		}
		r.Chain = append(r.Chain, certs...)
	}
	roots, err := parseCerts([]byte(pems[len(pems)-1]))
	if err != nil {
		return nil, fmt.Errorf("caclient: response root bundle: %w", err)
	}
	r.Roots = roots
	if _, err := verifyChain(r.Chain, roots, time.Now()); err != nil {
		return nil, fmt.Errorf("caclient: issued certificate does not verify: %w", err)
	}
	return &r, nil
}

// verifyChain verifies chain[0] through chain[1:] to one of roots.
func verifyChain(chain, roots []*x509.Certificate, now time.Time) ([][]*x509.Certificate, error) {
	rp := x509.NewCertPool()
	for _, r := range roots {
		rp.AddCert(r)
	}
	ip := x509.NewCertPool()
	for _, c := range chain[1:] {
		ip.AddCert(c)
	}
	return chain[0].Verify(x509.VerifyOptions{
		Roots:         rp,
		Intermediates: ip,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
}

// bearer is per-RPC credentials carrying a bearer token; it requires a
// secure transport.
type bearer string

// GetRequestMetadata adds the authorization header.
func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity keeps the token off plaintext connections.
func (bearer) RequireTransportSecurity() bool { return true }

// loadRoots returns the pool that verifies weftd's serving certificate.
func loadRoots(ctx context.Context, opts Options) (*x509.CertPool, error) {
	data := opts.RootPEM
	source := "RootPEM"
	if len(data) == 0 && opts.RootCertFile != "" {
		b, err := os.ReadFile(opts.RootCertFile)
		switch {
		case err == nil:
			data, source = b, opts.RootCertFile
		case errors.Is(err, os.ErrNotExist) && opts.TrustOnFirstUse:
		default:
			return nil, fmt.Errorf("caclient: root certificate: %w", err)
		}
	}
	if len(data) == 0 {
		if !opts.TrustOnFirstUse {
			return nil, errors.New("caclient: no root to verify weftd: set RootPEM or RootCertFile, or opt in to TrustOnFirstUse")
		}
		root, err := learnRoot(ctx, opts)
		if err != nil {
			return nil, err
		}
		if opts.RootCertFile != "" {
			if err := os.MkdirAll(filepath.Dir(opts.RootCertFile), 0o755); err != nil {
				return nil, fmt.Errorf("caclient: save learned root: %w", err)
			}
			if err := os.WriteFile(opts.RootCertFile, encodeCerts([]*x509.Certificate{root}), 0o644); err != nil {
				return nil, fmt.Errorf("caclient: save learned root: %w", err)
			}
		}
		pool := x509.NewCertPool()
		pool.AddCert(root)
		return pool, nil
	}
	certs, err := parseCerts(data)
	if err != nil {
		return nil, fmt.Errorf("caclient: %s: %w", source, err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// learnRoot performs one TLS handshake without verification and returns
// the self-signed CA certificate at the end of the presented chain, after
// checking that the chain verifies to it for opts.ServerName.
func learnRoot(ctx context.Context, opts Options) (*x509.Certificate, error) {
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, ServerName: opts.ServerName, NextProtos: []string{"h2"}}}
	conn, err := d.DialContext(ctx, "tcp", opts.Address)
	if err != nil {
		return nil, fmt.Errorf("caclient: trust on first use: %w", err)
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) < 2 {
		return nil, errors.New("caclient: trust on first use: weftd sent no root with its certificate")
	}
	root := certs[len(certs)-1]
	if !root.IsCA || root.CheckSignatureFrom(root) != nil {
		return nil, errors.New("caclient: trust on first use: weftd's chain does not end in a self-signed root")
	}
	rp := x509.NewCertPool()
	rp.AddCert(root)
	ip := x509.NewCertPool()
	for _, c := range certs[1 : len(certs)-1] {
		ip.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{DNSName: opts.ServerName, Roots: rp, Intermediates: ip}); err != nil {
		return nil, fmt.Errorf("caclient: trust on first use: %w", err)
	}
	return root, nil
}
