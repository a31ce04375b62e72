package cli

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/validate"
	"github.com/weftmesh/weft/internal/weftd"
)

// startWeftd runs a real weftd server in-process on free loopback ports,
// serving configDir (may be empty), and returns its admin address.
func startWeftd(t *testing.T, configDir string) string {
	t.Helper()
	cfg := weftd.DefaultConfig()
	cfg.ListenAddress, cfg.AdminPort, cfg.XDSPort, cfg.SecureXDSPort = "127.0.0.1", 0, 0, -1
	cfg.ConfigDir = configDir
	cfg.CA.Dir = t.TempDir()
	s, err := weftd.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("weftd Run: %v", err)
		}
	})
	// Wait until the configuration directory has been read.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var dump struct {
			Synced bool `json:"synced"`
		}
		resp, err := http.Get("http://" + s.AdminAddr() + "/debug/config")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&dump)
			resp.Body.Close()
		}
		if err == nil && dump.Synced {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("weftd not synced after 20s (%v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s.AdminAddr()
}

const reviewsV1 = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
`

const ratingsDR = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: ratings
  namespace: default
spec:
  host: ratings
  subsets:
  - name: v1
    labels: {version: v1}
`

func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestApplyGetDelete(t *testing.T) {
	confDir := t.TempDir()
	writeFile(t, confDir, "gw.yaml", "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: bookinfo-gateway}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 8080, name: http, protocol: HTTP}\n    hosts: ['*']\n")
	admin := startWeftd(t, confDir)
	dir := t.TempDir()
	vs := writeFile(t, dir, "vs.yaml", reviewsV1)
	dr := writeFile(t, dir, "dr.yaml", ratingsDR)

	code, out, errOut := run(t, "", "apply", "--weftd", admin, "-f", dir)
	if code != 0 || out != "DestinationRule default/ratings configured\nVirtualService default/reviews configured\n" {
		t.Fatalf("apply: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	code, out, _ = run(t, "", "get", "vs", "--weftd", admin)
	if code != 0 || !strings.Contains(out, "KIND") || !strings.Contains(out, "VirtualService   default     reviews   api      weft-apply:") {
		t.Fatalf("get vs: exit %d:\n%s", code, out)
	}
	code, out, _ = run(t, "", "get", "all", "--weftd", admin)
	if code != 0 || !strings.Contains(out, "Gateway") || !strings.Contains(out, "file") || !strings.Contains(out, "DestinationRule") {
		t.Fatalf("get all: exit %d:\n%s", code, out)
	}
	code, out, _ = run(t, "", "get", "dr", "ratings", "-o", "json", "--weftd", admin)
	var objs []servedObject
	if code != 0 || json.Unmarshal([]byte(out), &objs) != nil || len(objs) != 1 || objs[0].Kind != model.KindDestinationRule || objs[0].Source != "api" {
		t.Fatalf("get dr ratings -o json: exit %d:\n%s", code, out)
	}
	// -o yaml is Istio YAML again: it decodes and validates cleanly.
	code, out, _ = run(t, "", "get", "virtualservices", "reviews", "-o", "yaml", "--weftd", admin)
	cfgs, diags := manifest.Decode("get.yaml", []byte(out), "file")
	if code != 0 || diags.HasErrors() || len(cfgs) != 1 || cfgs[0].Name != "reviews" || cfgs[0].Namespace != "default" {
		t.Fatalf("get -o yaml: exit %d, %v:\n%s", code, diags, out)
	}
	if ds := validate.Object(cfgs[0]); len(ds) > 0 {
		t.Errorf("get -o yaml output does not validate: %v", ds)
	}

	code, out, errOut = run(t, "", "get", "vs", "nosuch", "--weftd", admin)
	if code != 1 || !strings.Contains(errOut, `"nosuch" not found`) {
		t.Errorf("get missing: exit %d, %s%s", code, out, errOut)
	}
	code, _, errOut = run(t, "", "get", "frobs", "--weftd", admin)
	if code != 2 || !strings.Contains(errOut, `unknown kind "frobs"`) {
		t.Errorf("get unknown kind: exit %d, %s", code, errOut)
	}

	// Applied alone, an object's origin is its file and line.
	if code, _, _ := run(t, "", "apply", "--weftd", admin, "-f", vs); code != 0 {
		t.Fatal("apply vs.yaml alone failed")
	}
	if code, out, _ = run(t, "", "get", "vs", "--weftd", admin); !strings.Contains(out, vs+":1 ") {
		t.Fatalf("get vs: exit %d:\n%s", code, out)
	}

	code, out, errOut = run(t, "", "delete", "--weftd", admin, "-f", dr)
	if code != 0 || out != "DestinationRule default/ratings deleted\n" {
		t.Fatalf("delete: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = run(t, "", "delete", "--weftd", admin, "-f", dr)
	if code != 0 || out != "nothing deleted\n" || !strings.Contains(errOut, "warning: DestinationRule default/ratings: not found") {
		t.Fatalf("delete again: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = run(t, "", "get", "dr", "--weftd", admin, "-o", "json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("get dr after delete: exit %d: %s", code, out)
	}
}

// Invalid input is rejected before anything is sent: the error names the
// file, line, object and field, and nothing is applied, not even the
// valid objects of the same invocation.
func TestApplyRejectsInvalidInputAtomically(t *testing.T) {
	admin := startWeftd(t, "")
	dir := t.TempDir()
	good := writeFile(t, dir, "a-good.yaml", ratingsDR)
	bad := writeFile(t, dir, "b-bad.yaml", strings.Replace(reviewsV1, "subset: v1}", "subset: v1}\n    timeout: 3x", 1))
	code, out, errOut := run(t, "", "apply", "--weftd", admin, "-f", good, "-f", bad)
	want := bad + `:10: error: VirtualService default/reviews: spec.http[0].timeout`
	if code != 1 || out != "" || !strings.HasPrefix(errOut, want) || !strings.Contains(errOut, "nothing was configured") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s\nwant prefix %s", code, out, errOut, want)
	}
	code, out, _ = run(t, "", "get", "all", "--weftd", admin, "-o", "json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("objects after a rejected apply: %s", out)
	}
}

func TestApplyUsageAndUnreachableWeftd(t *testing.T) {
	code, _, errOut := run(t, "", "apply")
	if code != 2 || !strings.Contains(errOut, "no input") {
		t.Errorf("no input: exit %d, %s", code, errOut)
	}
	f := writeFile(t, t.TempDir(), "vs.yaml", reviewsV1)
	code, _, errOut = run(t, "", "apply", "-f", f, "--weftd", "127.0.0.1:1")
	if code != 1 || !strings.Contains(errOut, "cannot reach weftd at 127.0.0.1:1") {
		t.Errorf("unreachable: exit %d, %s", code, errOut)
	}
	code, _, errOut = run(t, "", "apply", "-f", filepath.Join(t.TempDir(), "missing.yaml"))
	if code != 1 || !strings.Contains(errOut, "missing.yaml: error: cannot read: no such file or directory") {
		t.Errorf("missing file: exit %d, %s", code, errOut)
	}
}

// Standard input works, and a file without a trailing newline still joins
// correctly with the next.
func TestApplyStdinAndJoin(t *testing.T) {
	admin := startWeftd(t, "")
	f := writeFile(t, t.TempDir(), "dr.yaml", strings.TrimSuffix(ratingsDR, "\n"))
	code, out, errOut := run(t, reviewsV1, "apply", "--weftd", admin, "-f", f, "-f", "-")
	if code != 0 || out != "DestinationRule default/ratings configured\nVirtualService default/reviews configured\n" {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
}

func TestJoinedNamesLocate(t *testing.T) {
	body, names := joinInputs([]validate.Input{
		{Name: "a.yaml", Data: []byte("a: 1\nb: 2\n")},
		{Name: "b.yaml", Data: []byte("c: 3\nd: 4")},
		{Name: "c.yaml", Data: []byte("e: 5\n")},
	})
	lines := strings.Split(string(body), "\n")
	for _, tc := range []struct {
		line     int
		file     string
		fileLine int
		text     string
	}{
		{1, "a.yaml", 1, "a: 1"}, {2, "a.yaml", 2, "b: 2"}, {4, "b.yaml", 1, "c: 3"}, {5, "b.yaml", 2, "d: 4"}, {7, "c.yaml", 1, "e: 5"},
	} {
		got := names.locate(model.Origin{File: names.label(), Line: tc.line})
		if got.File != tc.file || got.Line != tc.fileLine || lines[tc.line-1] != tc.text {
			t.Errorf("line %d (%q): located at %v, want %s:%d (%q)", tc.line, lines[tc.line-1], got, tc.file, tc.fileLine, tc.text)
		}
	}
}
