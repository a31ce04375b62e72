package jwt

import (
	"encoding/base64"
	"strings"
	"testing"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	jose "github.com/go-jose/go-jose/v4"
)

// FuzzToken feeds arbitrary tokens to the filter: it never panics, and
// only the one valid token (or no token) is let through.
func FuzzToken(f *testing.F) {
	t := &testing.T{}
	k := newKey(t, jose.ES256, "k")
	valid := k.sign(t, std(nil))
	f.Add(valid)
	f.Add("a.b.c")
	f.Add(strings.Replace(valid, ".", "..", 1))
	filt := filter(t, &jwtv3.JwtProvider{Issuer: iss, JwksSourceSpecifier: local(jwks(k))})
	f.Fuzz(func(t *testing.T, tok string) {
		if strings.ContainsAny(tok, "\r\n\x00") {
			return
		}
		lr, _, _ := run(filt, tok)
		if tok = strings.TrimSpace(tok); lr == nil && tok != "" && !sameBytes(tok, valid) {
			t.Fatalf("token %q accepted", tok)
		}
	})
}

// sameBytes reports whether two compact tokens decode to the same bytes
// (base64 allows several spellings of the last character of a segment).
func sameBytes(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	if len(as) != len(bs) {
		return false
	}
	for i := range as {
		x, err1 := base64.RawURLEncoding.DecodeString(as[i])
		y, err2 := base64.RawURLEncoding.DecodeString(bs[i])
		if err1 != nil || err2 != nil || string(x) != string(y) {
			return false
		}
	}
	return true
}
