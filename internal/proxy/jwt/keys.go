package jwt

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/weftmesh/weft/internal/proxy/upstream"
)

// keySource gives the current key set of a provider.
type keySource interface {
	keys(now time.Time) (*jose.JSONWebKeySet, error)
}

type staticKeys struct{ ks *jose.JSONWebKeySet }

func (s staticKeys) keys(time.Time) (*jose.JSONWebKeySet, error) { return s.ks, nil }

// Clusters gives the proxy's current upstream clusters (the HTTP
// connection manager's resolver).
type Clusters interface {
	Cluster(name string) *upstream.Cluster
}

// remoteKeys fetches an http:// JWKS URI through its cluster when the
// proxy has that cluster (as Envoy does), https:// URIs and URIs of
// unknown clusters directly (verifying the server's certificate; weft-proxy
// cannot tell whether a cluster originates TLS), and caches it for its
// cache duration; a failed refresh keeps the previous keys for another
// duration (the provider owns the cache; mu guards it).
type remoteKeys struct {
	uri      string
	cluster  string
	clusters Clusters
	ttl      time.Duration
	timeout  time.Duration
	client   *http.Client
	mu       sync.Mutex
	cached   *jose.JSONWebKeySet
	expires  time.Time
}

func newRemoteKeys(uri, cluster string, clusters Clusters, ttl, timeout time.Duration) *remoteKeys {
	return &remoteKeys{uri: uri, cluster: cluster, clusters: clusters, ttl: ttl, timeout: timeout, client: &http.Client{Timeout: timeout}}
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
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.uri, nil)
	if err != nil {
		return nil, err
	}
	var resp *http.Response
	if cl := r.lookup(); cl != nil {
		resp, err = viaCluster(cl, req)
	} else {
		resp, err = r.client.Do(req)
	}
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

func (r *remoteKeys) lookup() *upstream.Cluster {
	if r.clusters == nil || r.cluster == "" || !strings.HasPrefix(r.uri, "http://") {
		return nil
	}
	return r.clusters.Cluster(r.cluster)
}

// viaCluster sends req to a host of cl with the cluster's transport (its
// TLS settings, if any), keeping the URI's authority as Host.
func viaCluster(cl *upstream.Cluster, req *http.Request) (*http.Response, error) {
	host := cl.Pick("", 0, false, nil)
	if host == nil {
		return nil, fmt.Errorf("jwks cluster: no healthy upstream")
	}
	release, err := cl.Acquire(req.Context())
	if err != nil {
		return nil, err
	}
	defer release()
	out := req.Clone(req.Context())
	out.Host = req.URL.Host
	out.URL.Scheme, out.URL.Host = "http", host.Addr
	resp, err := cl.RoundTrip(out)
	if err != nil {
		cl.Record(host, 0)
		return nil, err
	}
	cl.Record(host, resp.StatusCode)
	return resp, nil
}
