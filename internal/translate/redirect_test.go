package translate

import (
	"testing"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	networking "istio.io/api/networking/v1alpha3"
)

// TestRedirectPort checks HTTPRedirect's port and derivePort as Istio's
// applyRedirect writes them.
func TestRedirectPort(t *testing.T) {
	for _, c := range []struct {
		name string
		in   *networking.HTTPRedirect
		want uint32
	}{
		{"no port", &networking.HTTPRedirect{Authority: "a"}, 0},
		{"port", &networking.HTTPRedirect{RedirectPort: &networking.HTTPRedirect_Port{Port: 8443}}, 8443},
		{"from request port", &networking.HTTPRedirect{RedirectPort: &networking.HTTPRedirect_DerivePort{DerivePort: networking.HTTPRedirect_FROM_REQUEST_PORT}}, 9080},
		{"from protocol default", &networking.HTTPRedirect{RedirectPort: &networking.HTTPRedirect_DerivePort{DerivePort: networking.HTTPRedirect_FROM_PROTOCOL_DEFAULT}}, 0},
	} {
		ra := redirect(c.in, 9080)
		if ra.PortRedirect != c.want || ra.HostRedirect != c.in.Authority || ra.ResponseCode != route.RedirectAction_MOVED_PERMANENTLY {
			t.Errorf("%s: port_redirect %d host %q code %v, want %d %q 301", c.name, ra.PortRedirect, ra.HostRedirect, ra.ResponseCode, c.want, c.in.Authority)
		}
		if err := ra.ValidateAll(); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
