package jwt

import (
	"testing"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	jose "github.com/go-jose/go-jose/v4"
)

// BenchmarkVerify is one request through the filter with a valid token.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA} {
		b.Run(string(alg), func(b *testing.B) {
			t := &testing.T{}
			k := newKey(t, alg, "k")
			f := filter(t, &jwtv3.JwtProvider{Issuer: iss, JwksSourceSpecifier: local(jwks(k))})
			tok := k.sign(t, std(nil))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if lr, _, _ := run(f, tok); lr != nil {
					b.Fatal(lr.Body)
				}
			}
		})
	}
}
