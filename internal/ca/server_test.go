package ca_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	securityv1alpha1 "istio.io/api/security/v1alpha1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/internal/ca"
	"github.com/weftmesh/weft/internal/ca/authn"
	"github.com/weftmesh/weft/internal/ca/caclient"
	"github.com/weftmesh/weft/internal/ca/spiffe"
)

var (
	reviews = spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "reviews"}
	ratings = spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "ratings"}
)

// env is a CA served over TLS on loopback.
type env struct {
	ca     *ca.CA
	srv    *ca.Server
	tokens *authn.TokenStore
	addr   string
	dir    string
}

func startCA(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	c, err := ca.New(ca.Options{Dir: filepath.Join(dir, "ca"), MaxTTL: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := authn.OpenTokenStore(filepath.Join(dir, "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.NewServer(c, ca.ServerOptions{
		Authenticator: authn.Chain{tokens, authn.CertAuthenticator{TrustDomain: c.TrustDomain()}},
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
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
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return &env{ca: c, srv: srv, tokens: tokens, addr: lis.Addr().String(), dir: dir}
}

func (e *env) client(t *testing.T, opts caclient.Options) *caclient.Client {
	t.Helper()
	opts.Address = e.addr
	if opts.RootPEM == nil && opts.RootCertFile == "" && !opts.TrustOnFirstUse {
		opts.RootPEM = e.ca.RootsPEM()
	}
	c, err := caclient.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func csrFor(t *testing.T, id spiffe.ID) []byte {
	t.Helper()
	key, err := caclient.GenerateKey(caclient.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := caclient.NewCSR(key, id)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if got := status.Code(errors.Unwrap(err)); got != code {
		t.Fatalf("got %v (%v), want %v", got, err, code)
	}
}

func TestCreateCertificateEndToEnd(t *testing.T) {
	e := startCA(t)
	token, err := e.tokens.Issue(reviews)
	if err != nil {
		t.Fatal(err)
	}
	cl := e.client(t, caclient.Options{Token: token})
	ctx := context.Background()

	t.Run("valid token", func(t *testing.T) {
		resp, err := cl.Sign(ctx, csrFor(t, reviews), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		leaf := resp.Chain[0]
		id, err := spiffe.FromCertificate(leaf)
		if err != nil || id != reviews {
			t.Fatalf("identity %v (%v)", id, err)
		}
		if d := time.Until(leaf.NotAfter); d > time.Hour || d < 59*time.Minute {
			t.Errorf("lifetime left %v, want about the requested 1h", d)
		}
		if len(resp.Roots) != 1 || !resp.Roots[0].Equal(e.ca.Certificate()) {
			t.Error("trust bundle is not the CA root")
		}
	})
	t.Run("wrong identity", func(t *testing.T) {
		_, err := cl.Sign(ctx, csrFor(t, ratings), 0)
		wantCode(t, err, codes.PermissionDenied)
	})
	t.Run("malformed CSR", func(t *testing.T) {
		_, err := cl.Sign(ctx, []byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"), 0)
		wantCode(t, err, codes.InvalidArgument)
	})
	t.Run("TTL above max", func(t *testing.T) {
		_, err := cl.Sign(ctx, csrFor(t, reviews), 72*time.Hour)
		wantCode(t, err, codes.InvalidArgument)
	})
	t.Run("unknown token", func(t *testing.T) {
		_, err := e.client(t, caclient.Options{Token: authn.TokenPrefix + "bogus"}).Sign(ctx, csrFor(t, reviews), 0)
		wantCode(t, err, codes.Unauthenticated)
	})
	t.Run("no token", func(t *testing.T) {
		conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: e.ca.RootPool(), ServerName: "localhost"})))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = securityv1alpha1.NewIstioCertificateServiceClient(conn).CreateCertificate(ctx, &securityv1alpha1.IstioCertificateRequest{Csr: string(csrFor(t, reviews))})
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("got %v, want Unauthenticated", err)
		}
	})
	t.Run("revoked token", func(t *testing.T) {
		tok, err := e.tokens.Issue(ratings)
		if err != nil {
			t.Fatal(err)
		}
		c := e.client(t, caclient.Options{Token: tok})
		if _, err := c.Sign(ctx, csrFor(t, ratings), 0); err != nil {
			t.Fatalf("before revocation: %v", err)
		}
		if ok, err := e.tokens.Revoke(tok); !ok || err != nil {
			t.Fatalf("Revoke: %v %v", ok, err)
		}
		_, err = c.Sign(ctx, csrFor(t, ratings), 0)
		wantCode(t, err, codes.Unauthenticated)
	})
	st := e.srv.Stats()
	if st.Issued != 2 || st.PermissionDenied != 1 || st.InvalidArgument != 2 || st.Unauthenticated != 3 {
		t.Errorf("stats %+v", st)
	}
}

func TestTokenIssuedByAnotherProcessIsAccepted(t *testing.T) {
	e := startCA(t)
	// `weft demo` opens the same file separately and issues a token.
	demo, err := authn.OpenTokenStore(filepath.Join(e.dir, "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := demo.Issue(ratings)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client(t, caclient.Options{Token: token}).Sign(context.Background(), csrFor(t, ratings), 0); err != nil {
		t.Fatal(err)
	}
	// The token file also works as TokenFile.
	tf := filepath.Join(e.dir, "ratings.token")
	if err := os.WriteFile(tf, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client(t, caclient.Options{TokenFile: tf}).Sign(context.Background(), csrFor(t, ratings), 0); err != nil {
		t.Fatal(err)
	}
}

func TestServingCertificateHostsAndTrust(t *testing.T) {
	e := startCA(t)
	token, err := e.tokens.Issue(reviews)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"localhost", "127.0.0.1", "istiod.istio-system.svc", "weftd"} {
		t.Run(name, func(t *testing.T) {
			c := e.client(t, caclient.Options{Token: token, ServerName: name})
			if _, err := c.Sign(context.Background(), csrFor(t, reviews), 0); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("wrong name", func(t *testing.T) {
		c := e.client(t, caclient.Options{Token: token, ServerName: "evil.example.com"})
		_, err := c.Sign(context.Background(), csrFor(t, reviews), 0)
		wantCode(t, err, codes.Unavailable)
	})
	t.Run("wrong root", func(t *testing.T) {
		other, err := ca.New(ca.Options{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		c := e.client(t, caclient.Options{Token: token, RootPEM: other.RootsPEM()})
		_, err = c.Sign(context.Background(), csrFor(t, reviews), 0)
		wantCode(t, err, codes.Unavailable)
	})
	t.Run("no root without opt-in", func(t *testing.T) {
		_, err := caclient.New(context.Background(), caclient.Options{Address: e.addr, Token: token, RootCertFile: filepath.Join(t.TempDir(), "missing.pem")})
		if err == nil {
			t.Fatal("client started without a root to verify weftd")
		}
	})
	t.Run("trust on first use", func(t *testing.T) {
		rootFile := filepath.Join(t.TempDir(), "root-cert.pem")
		c := e.client(t, caclient.Options{Token: token, RootCertFile: rootFile, TrustOnFirstUse: true})
		if _, err := c.Sign(context.Background(), csrFor(t, reviews), 0); err != nil {
			t.Fatal(err)
		}
		saved, err := os.ReadFile(rootFile)
		if err != nil {
			t.Fatal(err)
		}
		if string(saved) != string(e.ca.RootsPEM()) {
			t.Error("learned root differs from the CA root")
		}
	})
}

func TestRenewalAuthenticatedByCertificate(t *testing.T) {
	e := startCA(t)
	token, err := e.tokens.Issue(reviews)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := caclient.GenerateKey(caclient.ECDSAP256)
	csr, _ := caclient.NewCSR(key, reviews)
	resp, err := e.client(t, caclient.Options{Token: token}).Sign(context.Background(), csr, 0)
	if err != nil {
		t.Fatal(err)
	}
	cert := &tls.Certificate{PrivateKey: key, Leaf: resp.Chain[0]}
	for _, c := range resp.Chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	if _, err := e.tokens.Revoke(token); err != nil {
		t.Fatal(err)
	}
	// No token, only the certificate: a renewal for the same identity works…
	c := e.client(t, caclient.Options{GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }})
	if _, err := c.Sign(context.Background(), csrFor(t, reviews), 0); err != nil {
		t.Fatalf("renewal by certificate: %v", err)
	}
	// …and a certificate does not let it become another identity.
	_, err = c.Sign(context.Background(), csrFor(t, ratings), 0)
	wantCode(t, err, codes.PermissionDenied)
}

func TestServerNeedsAuthenticator(t *testing.T) {
	c, err := ca.New(ca.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.NewServer(c, ca.ServerOptions{}); err == nil {
		t.Fatal("NewServer without Authenticator succeeded")
	}
}
