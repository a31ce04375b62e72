package main

import "testing"

func TestSelectedMeshRows(t *testing.T) {
	e := &env{}
	var mesh scenarioDef
	for _, sc := range scenarios(e) {
		if sc.id == "4" {
			mesh = sc
		}
	}
	want := []string{"direct", "weft-mesh-mtls", "weft-mesh"}
	if len(mesh.targets) != len(want) {
		t.Fatalf("scenario 4 targets %v, want %v (mTLS first, plain text second)", mesh.targets, want)
	}
	for i := range want {
		if mesh.targets[i] != want[i] {
			t.Fatalf("scenario 4 targets %v, want %v", mesh.targets, want)
		}
	}
	for _, tc := range []struct {
		proxies string
		target  string
		want    bool
	}{
		{"", "weft-mesh-mtls", true},
		{"weft-proxy", "weft-mesh-mtls", true},
		{"weft-proxy", "weft-mesh", true},
		{"weft-proxy", "direct", true},
		{"weft-mesh", "weft-mesh-mtls", true},
		{"weft-mesh-mtls", "weft-mesh", false},
		{"weft-mesh-mtls", "direct", true},
		{"nginx", "weft-mesh", false},
		{"nginx", "direct", false},
	} {
		c, err := parseFlags([]string{"-proxies", tc.proxies})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.selected(mesh, tc.target); got != tc.want {
			t.Errorf("-proxies %q: %s selected = %v, want %v", tc.proxies, tc.target, got, tc.want)
		}
	}
}
