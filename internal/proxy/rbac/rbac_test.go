package rbac

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/httpproxy"
	"github.com/weftmesh/weft/internal/proxy/pathnorm"
)

func prefixPath(p string) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{
		Path: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: p}}}}}}
}

func exactPath(p string) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{
		Path: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: p}}}}}}
}

func anyPrincipal() *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
}

func engine(t testing.TB, action rbacv3.RBAC_Action, perms ...*rbacv3.Permission) *Engine {
	e, err := CompileEngine("rules", &rbacv3.RBAC{Action: action, Policies: map[string]*rbacv3.Policy{
		"p": {Permissions: perms, Principals: []*rbacv3.Principal{anyPrincipal()}}}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func req(path string) *Attributes {
	return &Attributes{HTTP: true, Method: "GET", Path: path, Host: "h", Headers: http.Header{}}
}

func TestEngineActions(t *testing.T) {
	deny := engine(t, rbacv3.RBAC_DENY, prefixPath("/admin/"), exactPath("/admin"))
	allow := engine(t, rbacv3.RBAC_ALLOW, prefixPath("/public/"))
	log := engine(t, rbacv3.RBAC_LOG, prefixPath("/"))
	empty, _ := CompileEngine("rules", &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW})
	var none *Engine
	for _, c := range []struct {
		e    *Engine
		path string
		want bool
	}{
		{deny, "/admin", false}, {deny, "/admin/x?y", false}, {deny, "/adminx", true}, {deny, "/public/admin/", true},
		{allow, "/public/x", true}, {allow, "/public", false}, {allow, "/x", false},
		{log, "/x", true}, {empty, "/x", false}, {none, "/x", true},
	} {
		if got, _ := c.e.Allowed(req(c.path)); got != c.want {
			t.Errorf("%v %s: %v, want %v", c.e, c.path, got, c.want)
		}
	}
}

func TestHeaderSemantics(t *testing.T) {
	hm := func(h *routev3.HeaderMatcher) *Engine {
		return engine(t, rbacv3.RBAC_ALLOW, &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: h}})
	}
	exact := hm(&routev3.HeaderMatcher{Name: "x-a", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "v"}}}})
	inverted := hm(&routev3.HeaderMatcher{Name: "x-a", InvertMatch: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "v"}}}})
	present := hm(&routev3.HeaderMatcher{Name: "x-a", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}})
	method := hm(&routev3.HeaderMatcher{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "GET"}}}})
	authority := hm(&routev3.HeaderMatcher{Name: ":authority", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{IgnoreCase: true, MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "H.example"}}}})
	with := func(vs ...string) *Attributes {
		a := req("/")
		if len(vs) > 0 {
			a.Headers["X-A"] = vs
		}
		return a
	}
	for i, c := range []struct {
		e    *Engine
		a    *Attributes
		want bool
	}{
		{exact, with("v"), true}, {exact, with("w"), false}, {exact, with(), false}, {exact, with("v", "w"), false},
		{inverted, with("w"), true}, {inverted, with("v"), false}, {inverted, with(), false},
		{present, with(""), true}, {present, with(), false},
		{method, req("/"), true}, {method, &Attributes{Path: "/"}, false},
		{authority, &Attributes{HTTP: true, Host: "h.EXAMPLE"}, true},
	} {
		if got, _ := c.e.Allowed(c.a); got != c.want {
			t.Errorf("case %d: %v, want %v", i, got, c.want)
		}
	}
}

func TestPrincipalsAndMetadata(t *testing.T) {
	p := func(pr *rbacv3.Principal) *Engine {
		e, err := CompileEngine("r", &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
			"p": {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}}, Principals: []*rbacv3.Principal{pr}}}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	spiffe := p(&rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{
		PrincipalName: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "spiffe://cluster.local/ns/a/sa/b"}}}}})
	cidr := p(&rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: &corev3.CidrRange{AddressPrefix: "10.0.0.0", PrefixLen: wrapperspb.UInt32(8)}}})
	remote := p(&rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: &corev3.CidrRange{AddressPrefix: "192.168.0.1", PrefixLen: wrapperspb.UInt32(32)}}})
	claims := p(&rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: &matcherv3.MetadataMatcher{
		Filter: "istio_authn",
		Path: []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: "request.auth.claims"}},
			{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: "groups"}}},
		Value: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{
			MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{
				StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "admins"}}}}}}}},
	}}})
	md := func(groups ...any) *Attributes {
		return &Attributes{Metadata: map[string]map[string]any{"istio_authn": {"request.auth.claims": map[string]any{"groups": groups}}}}
	}
	for i, c := range []struct {
		e    *Engine
		a    *Attributes
		want bool
	}{
		{spiffe, &Attributes{Authenticated: true, Principal: "spiffe://cluster.local/ns/a/sa/b"}, true},
		{spiffe, &Attributes{Principal: "spiffe://cluster.local/ns/a/sa/b"}, false},
		{spiffe, &Attributes{Authenticated: true, Principal: "spiffe://cluster.local/ns/a/sa/bb"}, false},
		{cidr, &Attributes{DirectRemote: netip.MustParseAddrPort("10.1.2.3:5")}, true},
		{cidr, &Attributes{DirectRemote: netip.MustParseAddrPort("[::ffff:10.1.2.3]:5")}, true}, // IPv4-mapped addresses match IPv4 ranges
		{cidr, &Attributes{DirectRemote: netip.MustParseAddrPort("11.1.2.3:5")}, false},
		{remote, &Attributes{Remote: netip.MustParseAddr("192.168.0.1")}, true},
		{remote, &Attributes{}, false},
		{claims, md("users", "admins"), true},
		{claims, md("users"), false},
		{claims, &Attributes{}, false},
	} {
		if got, _ := c.e.Allowed(c.a); got != c.want {
			t.Errorf("case %d: %v, want %v", i, got, c.want)
		}
	}
}

func TestRequestAttributesXFF(t *testing.T) {
	r, _ := http.NewRequest("GET", "http://h/p?q=1", nil)
	r.RemoteAddr = "10.0.0.1:1234"
	r.Header.Set("X-Forwarded-For", "1.1.1.1, 2.2.2.2")
	st := &httpproxy.FilterState{ClientAddress: netip.MustParseAddr("2.2.2.2")}
	if a := RequestAttributes(r, st); a.Remote.String() != "2.2.2.2" || a.DirectRemote.Addr().String() != "10.0.0.1" || a.Path != "/p?q=1" {
		t.Errorf("trusted client address from the HCM: %+v", a)
	}
	// XFF itself is never read: without the HCM's client address the
	// remote is the peer.
	if a := RequestAttributes(r, &httpproxy.FilterState{}); a.Remote.String() != "10.0.0.1" {
		t.Errorf("no trusted client address: remote %v", a.Remote)
	}
}

func TestUnsupportedRejected(t *testing.T) {
	_, err := CompileEngine("rules", &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
		"p": {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_UriTemplate{}}}, Principals: []*rbacv3.Principal{anyPrincipal()}}}})
	if err == nil || !strings.Contains(err.Error(), "rules.policies[p].permissions[0]") {
		t.Errorf("unsupported rule: %v", err)
	}
}

var strict = pathnorm.Options{Normalize: true, MergeSlashes: true, EscapedSlashes: pathnorm.UnescapeAndForward}

// FuzzDenyPrefix checks the authorization matcher with path
// normalization: a request denied by the prefix /admin/ (or the exact
// path /admin) stays denied in every encoding variant of its path, and
// the matcher is deterministic and never panics on any path or header.
func FuzzDenyPrefix(f *testing.F) {
	for _, s := range []string{"/admin/x", "/admin", "/a/../admin/x", "/%61dmin%2Fx", "/admin//x", "/x\\..\\admin\\y", "/admin;x/y"} {
		f.Add(s, "v", uint16(0))
	}
	deny := engine(f, rbacv3.RBAC_DENY, prefixPath("/admin/"), exactPath("/admin"))
	hdr := engine(f, rbacv3.RBAC_DENY, &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{Name: "x-a",
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
			SafeRegex: &matcherv3.RegexMatcher{Regex: `(?s)(.*,)?\s*v\s*(,.*)?`}}}}}}})
	f.Fuzz(func(t *testing.T, p, h string, seed uint16) {
		a := req(p)
		a.Headers["X-A"] = []string{h, "v"}
		if ok, _ := hdr.Allowed(a); ok {
			t.Fatalf("repeated header with the denied value %q allowed", []string{h, "v"})
		}
		norm, _, err := pathnorm.Path(p, strict)
		if err != nil {
			return
		}
		allowed, _ := deny.Allowed(req(norm))
		if again, _ := deny.Allowed(req(norm)); again != allowed {
			t.Fatal("not deterministic")
		}
		path, _, _ := strings.Cut(norm, "?")
		if allowed != !(path == "/admin" || strings.HasPrefix(path, "/admin/")) {
			t.Fatalf("%q (normalized %q): allowed %v", p, norm, allowed)
		}
		if allowed {
			return
		}
		for _, v := range variants(path, seed) {
			n, _, err := pathnorm.Path(v, strict)
			if err != nil {
				t.Fatalf("variant %q of %q rejected: %v", v, path, err)
			}
			if ok, _ := deny.Allowed(req(n)); ok {
				t.Fatalf("BYPASS: %q is denied but its variant %q (normalized %q) is allowed", path, v, n)
			}
		}
	})
}

// variants re-encodes a normalized path in ways a client may use: each
// character percent-encoded or not (chosen by seed), slashes doubled,
// encoded or backslashed, dot segments inserted.
func variants(p string, seed uint16) []string {
	var enc, mixed strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' && i+2 < len(p) { // an escape stays one unit
			enc.WriteString(p[i : i+3])
			mixed.WriteString(p[i : i+3])
			i += 2
			continue
		}
		bit := seed>>(uint(i)%16)&1 == 1
		switch {
		case c == '/' && i > 0 && bit:
			mixed.WriteString("%2F")
		case c == '/' && i > 0:
			mixed.WriteString("\\")
		case c != '/' && c != '%' && bit:
			mixed.WriteString("%" + strings.ToUpper(string("0123456789abcdef"[c>>4])+string("0123456789abcdef"[c&15])))
		default:
			mixed.WriteByte(c)
		}
		if c != '/' && c != '%' {
			enc.WriteString("%" + string("0123456789ABCDEF"[c>>4]) + string("0123456789ABCDEF"[c&15]))
		} else {
			enc.WriteByte(c)
		}
	}
	return []string{
		enc.String(), mixed.String(),
		strings.ReplaceAll(p, "/", "//"),
		strings.ReplaceAll(p, "/", "/./"),
		"/x/.." + p,
		"/" + strings.ReplaceAll(p[1:], "/", "%2f"),
	}
}

func TestPeerIdentity(t *testing.T) {
	u, _ := url.Parse("spiffe://cluster.local/ns/a/sa/b")
	cert := &x509.Certificate{URIs: []*url.URL{u}}
	r, _ := http.NewRequest("GET", "https://h/p", nil)
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}, ServerName: "outbound_.9080_._.b.a.svc.cluster.local"}
	a := RequestAttributes(r, nil)
	if !a.Authenticated || a.Principal != u.String() || a.SNI != r.TLS.ServerName || a.Scheme != "https" {
		t.Errorf("mTLS request: %+v", a)
	}
	c := ConnAttributes(netip.MustParseAddrPort("10.0.0.1:5"), netip.MustParseAddrPort("10.0.0.2:3306"), "", r.TLS)
	if !c.Authenticated || c.Principal != u.String() || c.HTTP || c.Destination.Port() != 3306 {
		t.Errorf("mTLS connection: %+v", c)
	}
	r.TLS = &tls.ConnectionState{}
	if a := RequestAttributes(r, nil); a.Authenticated {
		t.Error("TLS without a client certificate is authenticated")
	}
}

func TestEmptySetsRejected(t *testing.T) {
	for name, p := range map[string]*rbacv3.Policy{
		"and_rules":   {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{}}}}, Principals: []*rbacv3.Principal{anyPrincipal()}},
		"or_ids":      {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}}, Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_OrIds{}}}},
		"principals":  {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}}},
		"nil rule":    {Permissions: []*rbacv3.Permission{{}}, Principals: []*rbacv3.Principal{anyPrincipal()}},
		"nil matcher": {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_UrlPath{}}}, Principals: []*rbacv3.Principal{anyPrincipal()}},
	} {
		if _, err := CompileEngine("rules", &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{"p": p}}); err == nil {
			t.Errorf("%s: compiled", name)
		}
	}
}
