package weftd

import (
	"strings"
	"testing"

	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/translate"
)

func TestPathNormalizationConfig(t *testing.T) {
	cfgs, diags := manifest.Decode("s.yaml", []byte(`
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: a, namespace: default}
spec:
  workloadSelector: {labels: {app: a}}
  ingress:
  - port: {number: 8080, protocol: HTTP, name: http}
    captureMode: NONE
    bind: 10.0.0.1
    defaultEndpoint: 127.0.0.1:8080
`), "file")
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	snap := model.NewStore().Update(&model.SourceState{Source: "file", Configs: cfgs, Synced: true})
	p := &model.Proxy{Type: model.ProxySidecar, Namespace: "default", Labels: map[string]string{"app": "a"}, IPs: []string{"10.0.0.1"},
		Metadata: map[string]string{translate.MetadataPathNormalization: "NONE"}}
	s := &Server{cfg: Config{PathNormalization: "DECODE_AND_MERGE_SLASHES"}}
	var h *hcm.HttpConnectionManager
	for _, l := range s.generate(snap, p).Listeners {
		if l.Name == "10.0.0.1_8080" {
			h = &hcm.HttpConnectionManager{}
			if err := l.FilterChains[len(l.FilterChains)-1].Filters[0].GetTypedConfig().UnmarshalTo(h); err != nil {
				t.Fatal(err)
			}
		}
	}
	if h == nil || !h.GetNormalizePath().GetValue() || !h.MergeSlashes || h.PathWithEscapedSlashesAction != hcm.HttpConnectionManager_UNESCAPE_AND_FORWARD {
		t.Errorf("weftd's pathNormalization not applied: %v", h)
	}
	if p.Metadata[translate.MetadataPathNormalization] != "NONE" {
		t.Error("the proxy's metadata was modified")
	}
	bad := DefaultConfig()
	bad.PathNormalization = "SOMETIMES"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "pathNormalization") {
		t.Errorf("invalid pathNormalization: %v", err)
	}
	if def := DefaultConfig(); def.PathNormalization != "BASE" || def.Validate() != nil {
		t.Errorf("default: %q %v", def.PathNormalization, def.Validate())
	}
}
