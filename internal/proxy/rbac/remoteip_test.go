package rbac

import (
	"net/http"
	"net/http/httptest"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httprbac "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/httpproxy"
	"github.com/weftmesh/weft/internal/proxy/router"
)

// TestRemoteIPIsTheHCMsTrustedClient: remote_ip matches the trusted
// client address the connection manager derives from X-Forwarded-For
// with its use_remote_address and xff_num_trusted_hops (Envoy's
// downstream remote address), direct_remote_ip the connection's peer.
func TestRemoteIPIsTheHCMsTrustedClient(t *testing.T) {
	tab, err := router.Compile(&routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{
		Name: "vh", Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 200}},
		}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	denyIP := func(direct bool, ip string) *HTTPFilter {
		cidr := &corev3.CidrRange{AddressPrefix: ip, PrefixLen: wrapperspb.UInt32(32)}
		p := &rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: cidr}}
		if direct {
			p = &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: cidr}}
		}
		f, err := CompileHTTP("rbac", &httprbac.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{
			"deny": {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}}, Principals: []*rbacv3.Principal{p}},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	const peer = "10.0.0.1"
	for _, tc := range []struct {
		name      string
		fwd       httpproxy.Forwarding
		xff       string
		remoteIP  string // the address remote_ip must match
		notRemote string // an XFF address it must not match
	}{
		{"transparent, 0 hops: last XFF", httpproxy.Forwarding{}, "1.1.1.1, 2.2.2.2", "2.2.2.2", "1.1.1.1"},
		{"transparent, 1 hop: second from the right", httpproxy.Forwarding{TrustedHops: 1}, "1.1.1.1, 2.2.2.2", "1.1.1.1", "2.2.2.2"},
		{"transparent, 1 hop, too few: the peer", httpproxy.Forwarding{TrustedHops: 1}, "2.2.2.2", peer, "2.2.2.2"},
		{"use_remote_address, 0 hops: the peer", httpproxy.Forwarding{UseRemoteAddress: true}, "2.2.2.2", peer, "2.2.2.2"},
		{"use_remote_address, 1 hop: last XFF", httpproxy.Forwarding{UseRemoteAddress: true, TrustedHops: 1}, "1.1.1.1, 2.2.2.2", "2.2.2.2", "1.1.1.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status := func(f *HTTPFilter) int {
				h := &httpproxy.Handler{Static: tab, Forwarding: tc.fwd, Filters: []httpproxy.Filter{f}}
				r := httptest.NewRequest("GET", "http://svc/", nil)
				r.RemoteAddr = peer + ":40000"
				r.Header.Set("X-Forwarded-For", tc.xff)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				return w.Code
			}
			if got := status(denyIP(false, tc.remoteIP)); got != http.StatusForbidden {
				t.Errorf("remote_ip %s: status %d, want 403", tc.remoteIP, got)
			}
			if got := status(denyIP(false, tc.notRemote)); got != http.StatusOK {
				t.Errorf("remote_ip %s: status %d, want 200", tc.notRemote, got)
			}
			if got := status(denyIP(true, peer)); got != http.StatusForbidden {
				t.Errorf("direct_remote_ip %s: status %d, want 403", peer, got)
			}
			if tc.remoteIP != peer {
				if got := status(denyIP(true, tc.remoteIP)); got != http.StatusOK {
					t.Errorf("direct_remote_ip %s: status %d, want 200", tc.remoteIP, got)
				}
			}
		})
	}
}
