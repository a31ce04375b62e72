package jwt

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Status is a verification failure, with Envoy's message.
type Status string

// Envoy's jwt_authn failure statuses (their messages are its 401 bodies).
const (
	StatusMissing          Status = "Jwt is missing"
	StatusBadFormat        Status = "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
	StatusBadAlg           Status = "Jwt header [alg] is not supported"
	StatusBadJSON          Status = "Jwt payload is an invalid JSON"
	StatusExpired          Status = "Jwt is expired"
	StatusNotYetValid      Status = "Jwt not yet valid"
	StatusUnknownIssuer    Status = "Jwt issuer is not configured"
	StatusAudience         Status = "Audiences in Jwt are not allowed"
	StatusNoKey            Status = "Jwks doesn't have key to match kid or alg from Jwt"
	StatusVerificationFail Status = "Jwt verification fails"
	StatusJwksFetchFail    Status = "Jwks remote fetch is failed"
)

// Error returns the status message.
func (s Status) Error() string { return string(s) }

// allowedAlgs are the signature algorithms accepted; "none" and the HMAC
// algorithms are never accepted.
var allowedAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// token is a parsed, not yet verified, JWT.
type token struct {
	raw    string
	jws    *jose.JSONWebSignature
	claims map[string]any
	// payload is the base64url payload segment.
	payload string
}

// parse splits and decodes a compact JWT and its claims.
func parse(raw string) (*token, error) {
	if strings.Count(raw, ".") != 2 {
		return nil, StatusBadFormat
	}
	jws, err := jose.ParseSignedCompact(raw, allowedAlgs)
	if err != nil {
		if strings.Contains(err.Error(), "algorithm") {
			return nil, StatusBadAlg
		}
		return nil, StatusBadFormat
	}
	if len(jws.Signatures) != 1 {
		return nil, StatusBadFormat
	}
	t := &token{raw: raw, jws: jws, payload: strings.Split(raw, ".")[1]}
	body, err := base64.RawURLEncoding.DecodeString(t.payload)
	if err != nil {
		return nil, StatusBadFormat
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	if err := dec.Decode(&t.claims); err != nil || t.claims == nil {
		return nil, StatusBadJSON
	}
	return t, nil
}

func (t *token) str(name string) string {
	s, _ := t.claims[name].(string)
	return s
}

// numericDate reads exp/nbf/iat; absent is 0.
func (t *token) numericDate(name string) (int64, bool) {
	v, ok := t.claims[name]
	if !ok {
		return 0, true
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	if err != nil {
		return 0, false
	}
	return int64(f), true
}

// audiences is the aud claim as a list.
func (t *token) audiences() []string {
	switch v := t.claims["aud"].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// checkTime applies exp and nbf with the clock skew.
func (t *token) checkTime(now time.Time, skew time.Duration) error {
	exp, ok1 := t.numericDate("exp")
	nbf, ok2 := t.numericDate("nbf")
	if !ok1 || !ok2 {
		return StatusBadJSON
	}
	if exp != 0 && now.Add(-skew).Unix() >= exp {
		return StatusExpired
	}
	if nbf != 0 && now.Add(skew).Unix() < nbf {
		return StatusNotYetValid
	}
	return nil
}

// verifySignature checks the signature with the keys matching the
// token's kid (all keys when it has none) and algorithm.
func (t *token) verifySignature(keys *jose.JSONWebKeySet) error {
	h := t.jws.Signatures[0].Protected
	tried := false
	for i := range keys.Keys {
		k := &keys.Keys[i]
		if h.KeyID != "" && k.KeyID != h.KeyID {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != h.Algorithm {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if !k.Valid() || !k.IsPublic() {
			continue
		}
		tried = true
		if _, err := t.jws.Verify(k); err == nil {
			return nil
		}
	}
	if !tried {
		return StatusNoKey
	}
	return StatusVerificationFail
}

// parseJWKS reads a JSON Web Key Set, keeping only public keys.
func parseJWKS(data []byte) (*jose.JSONWebKeySet, error) {
	var ks jose.JSONWebKeySet
	if err := json.Unmarshal(data, &ks); err != nil {
		return nil, err
	}
	out := &jose.JSONWebKeySet{}
	for _, k := range ks.Keys {
		if k.IsPublic() && k.Valid() {
			out.Keys = append(out.Keys, k)
		}
	}
	if len(out.Keys) == 0 {
		return nil, errors.New("no public key")
	}
	return out, nil
}
