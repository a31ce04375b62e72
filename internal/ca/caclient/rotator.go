package caclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/ca/spiffe"
)

// Signer obtains a certificate for a CSR; *Client implements it.
type Signer interface {
	Sign(ctx context.Context, csrPEM []byte, ttl time.Duration) (*Response, error)
}

// RotatorOptions configures a Rotator.
type RotatorOptions struct {
	// Signer is the CA client; required.
	Signer Signer
	// Identity is the workload's SPIFFE ID; required.
	Identity spiffe.ID
	// KeyType of the workload key; default ECDSAP256. Every rotation uses
	// a fresh key.
	KeyType KeyType
	// TTL requested for each certificate; 0 lets the CA choose.
	TTL time.Duration
	// RenewAt is the fraction of a certificate's remaining lifetime (from
	// receipt to expiry) after which it is renewed; default 0.5.
	RenewAt float64
	// Jitter spreads renewals: the renewal point is drawn uniformly from
	// [RenewAt*(1-Jitter), RenewAt]; default 0.1.
	Jitter float64
	// RetryMin and RetryMax bound the exponential backoff after a failed
	// rotation; defaults 1 s and 1 min.
	RetryMin, RetryMax time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Status is a snapshot of a Rotator's state, for metrics and admin pages.
type Status struct {
	Identity string
	// Serial, NotBefore and NotAfter describe the current certificate
	// (zero before the first one).
	Serial              string
	NotBefore, NotAfter time.Time
	// LastRotation is when the current certificate was installed;
	// NextRotation when the next attempt is due.
	LastRotation, NextRotation time.Time
	// Rotations counts installed certificates, Failures failed attempts.
	Rotations, Failures uint64
	// LastError is the most recent failure ("" after a success).
	LastError string
}

// Rotator keeps a workload certificate fresh: Run obtains one at start and
// renews it before it expires. Its GetCertificate and GetClientCertificate
// methods always return the current certificate, so a tls.Config using
// them serves new handshakes with the new certificate while established
// connections continue undisturbed.
type Rotator struct {
	opts RotatorOptions

	mu      sync.Mutex
	cert    *tls.Certificate
	keyPEM  []byte
	chain   []*x509.Certificate
	roots   []*x509.Certificate
	status  Status
	ready   chan struct{} // closed when the first certificate is installed
	changed chan struct{} // closed and replaced at every installation
}

// NewRotator creates a rotator; Run starts it.
func NewRotator(opts RotatorOptions) (*Rotator, error) {
	if opts.Signer == nil {
		return nil, errors.New("caclient: rotator needs a Signer")
	}
	if err := opts.Identity.Validate(); err != nil {
		return nil, fmt.Errorf("caclient: rotator identity: %w", err)
	}
	if opts.RenewAt == 0 {
		opts.RenewAt = 0.5
	}
	if opts.Jitter == 0 {
		opts.Jitter = 0.1
	}
	if opts.RenewAt <= 0 || opts.RenewAt >= 1 || opts.Jitter < 0 || opts.Jitter >= 1 {
		return nil, fmt.Errorf("caclient: RenewAt %v must be in (0,1) and Jitter %v in [0,1)", opts.RenewAt, opts.Jitter)
	}
	if opts.RetryMin == 0 {
		opts.RetryMin = time.Second
	}
	if opts.RetryMax == 0 {
		opts.RetryMax = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Rotator{
		opts:    opts,
		status:  Status{Identity: opts.Identity.String()},
		ready:   make(chan struct{}),
		changed: make(chan struct{}),
	}, nil
}

// Run obtains a certificate now and renews it at RenewAt of its lifetime,
// retrying failures with backoff, until ctx is done. It returns ctx's
// error.
func (r *Rotator) Run(ctx context.Context) error {
	failures := 0
	for {
		var wait time.Duration
		if err := r.Rotate(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failures++
			wait = backoff(r.opts.RetryMin, r.opts.RetryMax, failures)
			r.opts.Logger.Warn("certificate rotation failed", "identity", r.opts.Identity.String(), "retry_in", wait, "error", err)
		} else {
			failures = 0
			wait = time.Until(r.Status().NextRotation)
		}
		r.mu.Lock()
		r.status.NextRotation = time.Now().Add(wait)
		r.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Rotate obtains and installs a new certificate with a fresh key now.
func (r *Rotator) Rotate(ctx context.Context) error {
	err := r.rotate(ctx)
	if err != nil {
		r.mu.Lock()
		r.status.Failures++
		r.status.LastError = err.Error()
		r.mu.Unlock()
	}
	return err
}

func (r *Rotator) rotate(ctx context.Context) error {
	key, err := GenerateKey(r.opts.KeyType)
	if err != nil {
		return err
	}
	csr, err := NewCSR(key, r.opts.Identity)
	if err != nil {
		return err
	}
	resp, err := r.opts.Signer.Sign(ctx, csr, r.opts.TTL)
	if err != nil {
		return err
	}
	leaf := resp.Chain[0]
	if !publicKeyEqual(key.Public(), leaf.PublicKey) {
		return errors.New("caclient: issued certificate is not for the key in the CSR")
	}
	if id, err := spiffe.FromCertificate(leaf); err != nil || id != r.opts.Identity {
		return fmt.Errorf("caclient: issued certificate identity %v is not %s (%v)", leaf.URIs, r.opts.Identity, err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range resp.Chain {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	now := time.Now()
	start := leaf.NotBefore
	if now.After(start) {
		start = now
	}
	frac := r.opts.RenewAt * (1 - r.opts.Jitter*rand.Float64())
	next := start.Add(time.Duration(float64(leaf.NotAfter.Sub(start)) * frac))

	r.mu.Lock()
	defer r.mu.Unlock()
	r.cert, r.keyPEM, r.chain, r.roots = tc, keyPEM, resp.Chain, resp.Roots
	r.status.Serial = leaf.SerialNumber.Text(16)
	r.status.NotBefore, r.status.NotAfter = leaf.NotBefore, leaf.NotAfter
	r.status.LastRotation, r.status.NextRotation = now, next
	r.status.Rotations++
	r.status.LastError = ""
	if r.status.Rotations == 1 {
		close(r.ready)
	}
	close(r.changed)
	r.changed = make(chan struct{})
	return nil
}

// backoff returns the delay before retry number n (1-based): RetryMin
// doubled per failure, capped at RetryMax, with full jitter in its upper
// half.
func backoff(min, max time.Duration, n int) time.Duration {
	d := min
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// Ready is closed once the first certificate is installed.
func (r *Rotator) Ready() <-chan struct{} { return r.ready }

// Changed returns a channel closed at the next installation of a
// certificate (call it again afterwards for the following one).
func (r *Rotator) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Certificate returns the current certificate, or nil before the first.
func (r *Rotator) Certificate() *tls.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cert
}

// Roots returns the current trust bundle as a new pool (nil before the
// first certificate).
func (r *Rotator) Roots() *x509.CertPool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.roots == nil {
		return nil
	}
	p := x509.NewCertPool()
	for _, c := range r.roots {
		p.AddCert(c)
	}
	return p
}

// Status returns a snapshot of the rotator's state.
func (r *Rotator) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// errNoCertificate is returned by the TLS hooks before Ready.
var errNoCertificate = errors.New("caclient: no workload certificate yet")

// GetCertificate is a tls.Config.GetCertificate hook returning the current
// certificate.
func (r *Rotator) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := r.Certificate(); c != nil {
		return c, nil
	}
	return nil, errNoCertificate
}

// GetClientCertificate is a tls.Config.GetClientCertificate hook
// returning the current certificate.
func (r *Rotator) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if c := r.Certificate(); c != nil {
		return c, nil
	}
	return nil, errNoCertificate
}
