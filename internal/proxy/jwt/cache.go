package jwt

import (
	"sync"

	jose "github.com/go-jose/go-jose/v4"
)

// verifiedCacheSize bounds the tokens whose signature is remembered per
// provider (Envoy's jwt_cache_config default is 100).
const verifiedCacheSize = 100

// verifiedCache remembers tokens whose signature verified with a key set,
// so that repeated requests with the same token skip the signature check.
// Time, issuer and audience checks still run on every request, and a new
// key set (rotation) invalidates the entries. The provider owns it; mu
// guards the map.
type verifiedCache struct {
	mu   sync.Mutex
	max  int
	toks map[string]*jose.JSONWebKeySet
}

func newVerifiedCache(max int) *verifiedCache {
	return &verifiedCache{max: max, toks: map[string]*jose.JSONWebKeySet{}}
}

func (c *verifiedCache) has(raw string, ks *jose.JSONWebKeySet) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.toks[raw] == ks
}

func (c *verifiedCache) add(raw string, ks *jose.JSONWebKeySet) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.toks) >= c.max {
		clear(c.toks)
	}
	c.toks[raw] = ks
}
