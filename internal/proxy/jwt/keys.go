package jwt

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// keySource gives the current key set of a provider.
type keySource interface {
	keys(now time.Time) (*jose.JSONWebKeySet, error)
}

type staticKeys struct{ ks *jose.JSONWebKeySet }

func (s staticKeys) keys(time.Time) (*jose.JSONWebKeySet, error) { return s.ks, nil }

// remoteKeys fetches a JWKS URI directly and caches it for its cache
// duration; a failed refresh keeps the previous keys for another
// duration (the provider owns the cache; mu guards it).
type remoteKeys struct {
	uri     string
	ttl     time.Duration
	client  *http.Client
	mu      sync.Mutex
	cached  *jose.JSONWebKeySet
	expires time.Time
}

func newRemoteKeys(uri string, ttl, timeout time.Duration) *remoteKeys {
	return &remoteKeys{uri: uri, ttl: ttl, client: &http.Client{Timeout: timeout}}
}

func (r *remoteKeys) keys(now time.Time) (*jose.JSONWebKeySet, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cached != nil && now.Before(r.expires) {
		return r.cached, nil
	}
	ks, err := r.fetch()
	if err != nil {
		if r.cached != nil {
			r.expires = now.Add(r.ttl)
			return r.cached, nil
		}
		return nil, err
	}
	r.cached, r.expires = ks, now.Add(r.ttl)
	return ks, nil
}

func (r *remoteKeys) fetch() (*jose.JSONWebKeySet, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, r.uri, nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks %s: status %d", r.uri, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	return parseJWKS(body)
}
