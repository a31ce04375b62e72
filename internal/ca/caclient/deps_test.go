package caclient_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksNoControlPlaneCode keeps the package importable by weft-proxy:
// no Kubernetes client code and nothing of weftd's model.
func TestLinksNoControlPlaneCode(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found: cannot list dependencies")
	}
	out, err := exec.Command(goBin, "list", "-deps", "github.com/weftmesh/weft/internal/ca/caclient").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("only %d dependencies listed", len(deps))
	}
	forbidden := []string{"k8s.io/", "sigs.k8s.io/", "istio.io/client-go/",
		"github.com/weftmesh/weft/internal/model", "github.com/weftmesh/weft/internal/manifest",
		"github.com/weftmesh/weft/internal/ca/authn"}
	seenGRPC := false
	for _, d := range deps {
		seenGRPC = seenGRPC || d == "google.golang.org/grpc"
		for _, bad := range forbidden {
			if strings.HasPrefix(d, bad) {
				t.Errorf("caclient depends on %s (forbidden prefix %q)", d, bad)
			}
		}
		if d == "github.com/weftmesh/weft/internal/ca" {
			t.Errorf("caclient depends on the CA itself")
		}
	}
	if !seenGRPC {
		t.Error("grpc missing from the dependency list: the scan is not seeing the real graph")
	}
}
