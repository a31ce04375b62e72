package translate

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/model"
)

// FuzzGenerate feeds arbitrary configuration (decoded as the file source
// would) next to the bookinfo services, and checks that generation never
// panics and never emits a resource Envoy would reject. The seed corpus is
// every YAML file of testdata/translate.
func FuzzGenerate(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(testdataDir, "*", "*.yaml"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	baseData, err := os.ReadFile(filepath.Join(testdataDir, "base", "bookinfo.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	base, diags := manifest.Decode("bookinfo.yaml", baseData, "file")
	if len(diags) > 0 {
		f.Fatal(diags)
	}
	proxies := []*model.Proxy{
		sidecarProxy("productpage", "v1", "10.1.0.11"),
		gatewayProxy(),
		{Type: model.ProxySidecar, Namespace: "default", Generator: model.GeneratorGRPC},
	}
	proxies[0].Metadata = map[string]string{MetadataLocality: "us-east1/us-east1-b"}
	f.Fuzz(func(t *testing.T, data []byte) {
		// A hang is a failure too: the fuzzer only saves inputs that fail.
		watchdog := time.AfterFunc(20*time.Second, func() { panic(fmt.Sprintf("input took over 20s: %q", data)) })
		defer watchdog.Stop()
		extra, _ := manifest.Decode("fuzz.yaml", data, "fuzz")
		configs := append(append([]*model.Config(nil), base...), extra...)
		snap := model.NewStore().Update(&model.SourceState{Source: "file", Configs: configs, Synced: true})
		for _, p := range proxies {
			validateResources(t, Generate(snap, p))
		}
	})
}
