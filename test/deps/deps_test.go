// Package deps holds tests about the module's dependency graph.
package deps

import (
	"os/exec"
	"strings"
	"testing"
)

// forbiddenInProxy are import-path prefixes weft-proxy must never link:
// the data plane stays free of Kubernetes code (decision 3 in
// docs/adr/0003-proxy-stdlib-http-no-kubernetes.md).
var forbiddenInProxy = []string{"k8s.io/", "sigs.k8s.io/", "istio.io/client-go/"}

func TestProxyLinksNoKubernetes(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found: cannot list dependencies")
	}
	out, err := exec.Command(goBin, "list", "-deps", "github.com/weftmesh/weft/cmd/weft-proxy").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/weft-proxy: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list returned only %d packages; expected the proxy's full graph", len(deps))
	}
	for _, d := range deps {
		for _, bad := range forbiddenInProxy {
			if strings.HasPrefix(d, bad) {
				t.Errorf("weft-proxy depends on %s (forbidden prefix %q); find the import with: go list -deps -f '{{.ImportPath}}: {{.Imports}}' ./cmd/weft-proxy | grep %s", d, bad, d)
			}
		}
	}
}

// TestCheckerCatchesKubernetes shows the check above can fail: weftd does
// link Kubernetes-facing code (istio.io/client-go via the model's kube
// source, or at least apimachinery via sigs.k8s.io/yaml), so running the
// same scan on it must find something.
func TestCheckerCatchesKubernetes(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found: cannot list dependencies")
	}
	out, err := exec.Command(goBin, "list", "-deps", "github.com/weftmesh/weft/cmd/weftd").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/weftd: %v\n%s", err, out)
	}
	found := false
	for _, d := range strings.Fields(string(out)) {
		for _, bad := range forbiddenInProxy {
			if strings.HasPrefix(d, bad) {
				found = true
			}
		}
	}
	if !found {
		t.Fatal("weftd's graph has no k8s.io/ or sigs.k8s.io/ package: the scan would not notice one either")
	}
}
