//go:build linux

package demo

import (
	"os"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/validate"
)

// Transparent mode's configuration is valid Istio configuration, gives
// every service a virtual address the hosts file resolves, puts the
// workloads on their pod IPs and has no capture-mode Sidecars.
func TestTransparentConfigFiles(t *testing.T) {
	files, err := TransparentConfigFiles(18080)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := files["sidecars.yaml"]; ok {
		t.Error("transparent mode must not have the captureMode NONE Sidecars")
	}
	var inputs []validate.Input
	for name, data := range files {
		inputs = append(inputs, validate.Input{Name: name, Data: data})
	}
	rep := validate.Check(inputs)
	for _, d := range rep.Diagnostics {
		t.Error(d.String())
	}
	// 5 ServiceEntries, 8 WorkloadEntries, 4 DestinationRules, the Gateway and its VirtualService.
	if rep.Objects != 19 {
		t.Errorf("objects: %d, want 19", rep.Objects)
	}
	services, hosts := string(files["services.yaml"]), transparentHosts()
	for i, s := range Services {
		vip := serviceVIP(i)
		if !strings.Contains(services, "  - "+vip+"\n") {
			t.Errorf("ServiceEntry %s: no address %s", s.Name, vip)
		}
		if !strings.Contains(hosts, vip+" "+s.Name+" ") {
			t.Errorf("hosts file does not map %s to %s:\n%s", s.Name, vip, hosts)
		}
	}
	seen := map[string]string{}
	for _, w := range TransparentWorkloads() {
		if !strings.HasPrefix(w.Address, transparentSubnet+".") || w.Address == transparentInfra {
			t.Errorf("%s: pod IP %s outside the bridge subnet or on the infra address", w.Name, w.Address)
		}
		if other, dup := seen[w.Address]; dup {
			t.Errorf("%s and %s share %s", w.Name, other, w.Address)
		}
		seen[w.Address] = w.Name
		if w.Port != 0 && !strings.Contains(services, "address: "+w.Address+"\n") {
			t.Errorf("no WorkloadEntry on %s for %s", w.Address, w.Name)
		}
		if w.Binary != "" && !strings.Contains(strings.Join(w.Args, " "), "--listen 0.0.0.0:") {
			t.Errorf("%s: app does not listen on all addresses: %v", w.Name, w.Args)
		}
	}
}

func TestStartTransparentNeedsRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root")
	}
	d := &Demo{opts: Options{Transparent: true}}
	if err := startTransparent(t.Context(), d, nil); err != errNotRoot {
		t.Fatalf("startTransparent as non-root: %v, want %v", err, errNotRoot)
	}
}
