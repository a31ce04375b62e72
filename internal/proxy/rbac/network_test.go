package rbac

import (
	"net/netip"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	netrbac "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
)

// TestNetworkCheckDetails: a denied connection gets Envoy's
// connection_termination_details: the matched DENY policy, or "none"
// when an ALLOW engine matched nothing.
func TestNetworkCheckDetails(t *testing.T) {
	anything := []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}}
	anyone := []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}}
	nobody := []*rbacv3.Principal{{Identifier: &rbacv3.Principal_NotId{NotId: &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}}}}
	for _, tc := range []struct {
		name   string
		rules  *rbacv3.RBAC
		ok     bool
		detail string
	}{
		{"deny matched", &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{"ns[foo]-policy[deny tcp]-rule[0]": {Permissions: anything, Principals: anyone}}},
			false, "rbac_access_denied_matched_policy[ns[foo]-policy[deny_tcp]-rule[0]]"},
		{"allow unmatched", &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{"p": {Permissions: anything, Principals: nobody}}},
			false, "rbac_access_denied_matched_policy[none]"},
		{"allow matched", &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{"p": {Permissions: anything, Principals: anyone}}},
			true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := CompileNetwork("rbac", &netrbac.RBAC{StatPrefix: "tcp.", Rules: tc.rules})
			if err != nil {
				t.Fatal(err)
			}
			a := ConnAttributes(netip.MustParseAddrPort("10.0.0.1:5555"), netip.MustParseAddrPort("10.0.0.2:9000"), "", nil)
			ok, detail := f.Check(a)
			if ok != tc.ok || detail != tc.detail {
				t.Errorf("Check = %v, %q; want %v, %q", ok, detail, tc.ok, tc.detail)
			}
		})
	}
}
