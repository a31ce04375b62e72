package rbac

import (
	"fmt"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
)

// BenchmarkAllowed evaluates an ALLOW engine of 50 policies against a
// request matching only the last one.
func BenchmarkAllowed(b *testing.B) {
	pols := map[string]*rbacv3.Policy{}
	for i := 0; i < 50; i++ {
		pols[fmt.Sprintf("p%02d", i)] = &rbacv3.Policy{Permissions: []*rbacv3.Permission{prefixPath(fmt.Sprintf("/svc%02d/", i))}, Principals: []*rbacv3.Principal{anyPrincipal()}}
	}
	e, err := CompileEngine("rules", &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: pols})
	if err != nil {
		b.Fatal(err)
	}
	a := req("/svc49/items?x=1")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if ok, _ := e.Allowed(a); !ok {
			b.Fatal("denied")
		}
	}
}
