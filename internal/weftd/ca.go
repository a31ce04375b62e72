package weftd

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/ca"
	"github.com/weftmesh/weft/internal/ca/authn"
	"github.com/weftmesh/weft/internal/ca/spiffe"
)

// citadel is weftd's certificate authority and the TLS service that
// issues workload certificates (Istio's citadel).
type citadel struct {
	ca     *ca.CA
	tokens *authn.TokenStore
	server *ca.Server
}

// defaultCADir is where the self-signed CA lives when no directory is set.
func defaultCADir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "weft", "ca"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("ca.dir: not set and no home directory: %w", err)
	}
	return filepath.Join(home, ".local", "state", "weft", "ca"), nil
}

func newCitadel(cfg Config, s *Server) (*citadel, error) {
	dir := cfg.CA.Dir
	if dir == "" && cfg.CA.PluggedDir == "" {
		var err error
		if dir, err = defaultCADir(); err != nil {
			return nil, err
		}
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("ca.dir: %w", err)
		}
	}
	authority, err := ca.New(ca.Options{
		Dir:         dir,
		PluggedDir:  cfg.CA.PluggedDir,
		TrustDomain: cfg.CA.TrustDomain,
		DefaultTTL:  time.Duration(cfg.CA.WorkloadTTL),
	})
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	tokenFile := cfg.CA.TokenFile
	if tokenFile == "" {
		base := dir
		if base == "" {
			base = cfg.CA.PluggedDir
		}
		tokenFile = filepath.Join(base, "tokens.json")
	}
	tokens, err := authn.OpenTokenStore(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("ca.tokenFile: %w", err)
	}
	srv, err := ca.NewServer(authority, ca.ServerOptions{
		Authenticator: authn.Chain{tokens, authn.CertAuthenticator{TrustDomain: cfg.CA.TrustDomain}},
		Logger:        s.log.With("component", "ca"),
	})
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	c := &citadel{ca: authority, tokens: tokens, server: srv}
	c.registerMetrics(s.registry)
	return c, nil
}

func (c *citadel) registerMetrics(reg prometheus.Registerer) {
	counter := func(name, help string, f func(ca.Stats) uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f(c.server.Stats())) }))
	}
	counter("citadel_server_success_cert_issuance_count", "Workload certificates issued.", func(s ca.Stats) uint64 { return s.Issued })
	counter("citadel_server_authentication_failure_count", "Certificate requests refused as unauthenticated.", func(s ca.Stats) uint64 { return s.Unauthenticated })
	counter("citadel_server_csr_parsing_err_count", "Certificate requests refused as invalid.", func(s ca.Stats) uint64 { return s.InvalidArgument })
	counter("weft_ca_permission_denied_total", "Certificate requests asking for another identity.", func(s ca.Stats) uint64 { return s.PermissionDenied })
}

// run serves the certificate API on lis until ctx ends.
func (c *citadel) run(ctx context.Context, lis net.Listener) error { return c.server.Run(ctx, lis) }

// handleRoot serves the trust bundle (PEM) proxies verify weftd with.
func (c *citadel) handleRoot(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(c.ca.RootsPEM())
}

// handleToken issues a bootstrap token for ?namespace=NS&serviceAccount=SA:
// local mode's way for `weft demo` to give each proxy its identity. The
// admin port must therefore only be reachable by the operator.
func (c *citadel) handleToken(w http.ResponseWriter, r *http.Request) {
	ns, sa := r.URL.Query().Get("namespace"), r.URL.Query().Get("serviceAccount")
	id := spiffe.ID{TrustDomain: c.ca.TrustDomain(), Namespace: ns, ServiceAccount: sa}
	if err := id.Validate(); err != nil {
		writeJSONStatus(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	tok, err := c.tokens.Issue(id)
	if err != nil {
		writeJSONStatus(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	writeJSONStatus(w, http.StatusOK, map[string]string{"identity": id.String(), "token": tok})
}
