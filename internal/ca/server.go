package ca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	securityv1alpha1 "istio.io/api/security/v1alpha1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/internal/ca/authn"
)

// DefaultHosts are the names weftd's serving certificate is valid for
// when ServerOptions.Hosts is empty.
var DefaultHosts = []string{"weftd", "istiod.istio-system.svc", "istiod.istio-system.svc.cluster.local", "localhost", "127.0.0.1", "::1"}

// maxCSRBytes bounds the CSR a request may carry.
const maxCSRBytes = 64 << 10

// ServerOptions configures a Server.
type ServerOptions struct {
	// Authenticator identifies callers; required.
	Authenticator authn.Authenticator
	// Hosts are the DNS names and IP addresses of the serving certificate;
	// default DefaultHosts.
	Hosts []string
	// ServingTTL is the serving certificate's lifetime; it is renewed at
	// half its life. Default: the CA's default TTL.
	ServingTTL time.Duration
	// Logger receives one line per refused request; default slog.Default().
	Logger *slog.Logger
}

// Stats counts CreateCertificate outcomes since start.
type Stats struct {
	Issued, Unauthenticated, PermissionDenied, InvalidArgument, Internal uint64
}

// Server serves Istio's IstioCertificateService
// (istio.io/api/security/v1alpha1) for a CA: CreateCertificate signs the
// caller's CSR once the Authenticator has identified the caller and the
// CSR asks for exactly that identity. It also owns weftd's TLS serving
// certificate, issued by the same CA.
type Server struct {
	securityv1alpha1.UnimplementedIstioCertificateServiceServer

	ca    *CA
	auth  authn.Authenticator
	dns   []string
	ips   []net.IP
	ttl   time.Duration
	log   *slog.Logger
	stats struct{ issued, unauth, denied, invalid, internal atomic.Uint64 }

	mu      sync.Mutex
	serving *tls.Certificate // current serving certificate, renewed lazily
}

// NewServer creates a certificate service for c.
func NewServer(c *CA, opts ServerOptions) (*Server, error) {
	if opts.Authenticator == nil {
		return nil, errors.New("ca: server needs an Authenticator")
	}
	hosts := opts.Hosts
	if len(hosts) == 0 {
		hosts = DefaultHosts
	}
	s := &Server{ca: c, auth: opts.Authenticator, ttl: opts.ServingTTL, log: opts.Logger}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			s.ips = append(s.ips, ip)
		} else if h != "" {
			s.dns = append(s.dns, h)
		}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if _, err := s.servingCertificate(); err != nil {
		return nil, err
	}
	return s, nil
}

// Register adds the certificate service to a gRPC server (weftd mounts it
// on its TLS port 15012 next to xDS). The gRPC server must use TLSConfig's
// credentials for certificate authentication to see client certificates.
func (s *Server) Register(r grpc.ServiceRegistrar) {
	securityv1alpha1.RegisterIstioCertificateServiceServer(r, s)
}

// TLSConfig returns a server TLS configuration presenting the CA-issued
// serving certificate (renewed automatically at half its life) and
// accepting, but not requiring, client certificates from the mesh.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.servingCertificate()
		},
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  s.ca.RootPool(),
	}
}

// Run serves the certificate service over TLS on lis until ctx is done,
// then stops gracefully (waiting at most 5 s for calls in flight). It
// returns nil after a cancellation and the serve error otherwise.
func (s *Server) Run(ctx context.Context, lis net.Listener) error {
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(s.TLSConfig())))
	s.Register(gs)
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		gs.Stop()
		<-stopped
	}
	<-errc
	return nil
}

// Stats returns the request counters.
func (s *Server) Stats() Stats {
	return Stats{
		Issued:           s.stats.issued.Load(),
		Unauthenticated:  s.stats.unauth.Load(),
		PermissionDenied: s.stats.denied.Load(),
		InvalidArgument:  s.stats.invalid.Load(),
		Internal:         s.stats.internal.Load(),
	}
}

// CreateCertificate implements IstioCertificateService. The response chain
// is the new certificate, its intermediates, and last the trust bundle
// (every root, concatenated), as Istio returns it.
func (s *Server) CreateCertificate(ctx context.Context, req *securityv1alpha1.IstioCertificateRequest) (*securityv1alpha1.IstioCertificateResponse, error) {
	cred := credentialsFrom(ctx)
	caller, err := s.auth.Authenticate(ctx, cred)
	if err != nil {
		if errors.Is(err, authn.ErrUnauthenticated) {
			return nil, s.refuse(codes.Unauthenticated, &s.stats.unauth, cred, err)
		}
		return nil, s.refuse(codes.Unavailable, &s.stats.internal, cred, fmt.Errorf("authenticate: %w", err))
	}
	if len(req.GetCsr()) > maxCSRBytes {
		return nil, s.refuse(codes.InvalidArgument, &s.stats.invalid, cred, fmt.Errorf("CSR of %d bytes exceeds %d", len(req.GetCsr()), maxCSRBytes))
	}
	if req.GetValidityDuration() < 0 || req.GetValidityDuration() > int64(1<<62/time.Second) {
		return nil, s.refuse(codes.InvalidArgument, &s.stats.invalid, cred, fmt.Errorf("validity_duration %d s out of range", req.GetValidityDuration()))
	}
	ttl := time.Duration(req.GetValidityDuration()) * time.Second
	issued, err := s.ca.SignCSR([]byte(req.GetCsr()), caller, ttl)
	switch {
	case errors.Is(err, ErrPermissionDenied):
		return nil, s.refuse(codes.PermissionDenied, &s.stats.denied, cred, err)
	case errors.Is(err, ErrInvalidRequest):
		return nil, s.refuse(codes.InvalidArgument, &s.stats.invalid, cred, err)
	case err != nil:
		return nil, s.refuse(codes.Internal, &s.stats.internal, cred, err)
	}
	s.stats.issued.Add(1)
	resp := &securityv1alpha1.IstioCertificateResponse{}
	for _, c := range issued.Chain {
		resp.CertChain = append(resp.CertChain, string(encodeCerts([]*x509.Certificate{c})))
	}
	resp.CertChain = append(resp.CertChain, string(issued.RootsPEM()))
	return resp, nil
}

func (s *Server) refuse(code codes.Code, counter *atomic.Uint64, cred authn.Credentials, err error) error {
	counter.Add(1)
	s.log.Info("certificate request refused", "code", code.String(), "remote", cred.RemoteAddr, "error", err)
	return status.Error(code, err.Error())
}

// credentialsFrom extracts the caller's credentials from a gRPC context.
func credentialsFrom(ctx context.Context) authn.Credentials {
	var cred authn.Credentials
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		for _, v := range md.Get("authorization") {
			if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
				cred.BearerToken = strings.TrimSpace(v[7:])
				break
			}
		}
	}
	if p, ok := peer.FromContext(ctx); ok {
		cred.RemoteAddr = p.Addr
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			cred.VerifiedChains = ti.State.VerifiedChains
		}
	}
	return cred
}

// servingCertificate returns the current serving certificate, issuing a
// new one when there is none or the current one is past half its life.
func (s *Server) servingCertificate() (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.ca.opts.Now()
	if c := s.serving; c != nil {
		half := c.Leaf.NotBefore.Add(c.Leaf.NotAfter.Sub(c.Leaf.NotBefore) / 2)
		if now.Before(half) {
			return c, nil
		}
	}
	c, err := s.issueServing()
	if err != nil {
		if s.serving != nil && now.Before(s.serving.Leaf.NotAfter) {
			s.log.Warn("serving certificate renewal failed; keeping the current one", "error", err)
			return s.serving, nil
		}
		return nil, err
	}
	s.serving = c
	return c, nil
}

func (s *Server) issueServing() (*tls.Certificate, error) {
	key, err := GenerateKey(ECDSAP256)
	if err != nil {
		return nil, fmt.Errorf("ca: serving key: %w", err)
	}
	issued, err := s.ca.IssueServing(key.Public(), s.dns, s.ips, s.ttl)
	if err != nil {
		return nil, fmt.Errorf("ca: serving certificate: %w", err)
	}
	chain := issued.Chain
	// Append the root the chain verifies to, so that a client that
	// explicitly trusts on first use can learn it from the handshake.
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if vc, err := chain[0].Verify(x509.VerifyOptions{Roots: s.ca.rootPool, Intermediates: inter, CurrentTime: s.ca.opts.Now()}); err == nil && len(vc) > 0 {
		chain = append(chain, vc[0][len(vc[0])-1])
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return tc, nil
}
