package translate

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/model"
)

// testdataDir is the root of the translation test corpus.
const testdataDir = "../../testdata/translate"

// loadSnapshot decodes the YAML files into a snapshot, failing the test on
// any diagnostic.
func loadSnapshot(t testing.TB, files ...string) *model.Snapshot {
	t.Helper()
	var configs []*model.Config
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cs, diags := manifest.Decode(filepath.Base(f), data, "file")
		if len(diags) > 0 {
			t.Fatalf("%s: %v", f, diags)
		}
		configs = append(configs, cs...)
	}
	return model.NewStore().Update(&model.SourceState{Source: "file", Configs: configs, Synced: true})
}

// loadCase loads the bookinfo base plus every YAML file of one case
// directory.
func loadCase(t testing.TB, name string) *model.Snapshot {
	t.Helper()
	files := []string{filepath.Join(testdataDir, "base", "bookinfo.yaml")}
	if name != "base" {
		more, err := filepath.Glob(filepath.Join(testdataDir, name, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, more...)
	}
	return loadSnapshot(t, files...)
}

// sidecarProxy is a bookinfo sidecar: app and version labels, the
// workload's IP as its address.
func sidecarProxy(app, version, ip string) *model.Proxy {
	return &model.Proxy{
		ID:             "sidecar~" + ip + "~" + app + "-" + version + ".default~default.svc.cluster.local",
		Type:           model.ProxySidecar,
		Namespace:      "default",
		Workload:       app + "-" + version,
		Labels:         map[string]string{"app": app, "version": version},
		ServiceAccount: "bookinfo-" + app,
		IPs:            []string{ip},
	}
}

// gatewayProxy is the ingress gateway in istio-system.
func gatewayProxy() *model.Proxy {
	return &model.Proxy{
		ID:        "router~10.1.0.100~istio-ingressgateway.istio-system~istio-system.svc.cluster.local",
		Type:      model.ProxyRouter,
		Namespace: "istio-system",
		Workload:  "istio-ingressgateway",
		Labels:    map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"},
		IPs:       []string{"10.1.0.100"},
	}
}
