package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// run executes weft in-process with args and stdin, returning the exit
// status and captured output.
func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(context.Background(), &Env{In: strings.NewReader(stdin), Out: &out, Err: &errOut}, args)
	return code, out.String(), errOut.String()
}

const root = "../.."

func TestValidateValidDirectory(t *testing.T) {
	code, out, errOut := run(t, "", "validate", "-f", filepath.Join(root, "testdata/valid"))
	if code != 0 {
		t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	// Alternative versions of the same VirtualService (as in Istio's
	// samples) are duplicate-object warnings, not errors.
	if !strings.Contains(out, "0 errors, ") || !strings.Contains(out, "(15 files)") || !strings.Contains(out, "duplicate object") {
		t.Errorf("summary: %s", out)
	}
}

func TestValidateInvalidFile(t *testing.T) {
	f := filepath.Join(root, "testdata/invalid/vs-unknown-retry-on.yaml")
	code, out, _ := run(t, "", "validate", "-f", f)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	want := f + `:10: error: VirtualService default/reviews: spec.http[0].retries.retryOn: "timeout" is not a valid retryOn condition`
	if !strings.HasPrefix(out, want) || !strings.HasSuffix(out, "1 error, 0 warnings in 1 object (1 file)\n") {
		t.Errorf("output:\n%s\nwant prefix:\n%s", out, want)
	}
}

func TestValidateWarningsOnlyExitZero(t *testing.T) {
	code, out, _ := run(t, "", "validate", "-f", filepath.Join(root, "testdata/invalid/vs-undefined-subset.yaml"))
	if code != 0 || !strings.Contains(out, ": warning: ") || !strings.Contains(out, "0 errors, 1 warning") {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
}

func TestValidateStdinAndPositionalArgs(t *testing.T) {
	in := "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec:\n  servers:\n  - port: {number: 70000, name: http, protocol: HTTP}\n    hosts: ['*']\n"
	code, out, _ := run(t, in, "validate", "-f", "-")
	if code != 1 || !strings.HasPrefix(out, "<stdin>:6: error: Gateway default/g: spec.servers[0].port.number: port number 70000") {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
	// Paths may also be given without -f.
	code, out, _ = run(t, "", "validate", filepath.Join(root, "testdata/valid/security.yaml"))
	if code != 0 || !strings.Contains(out, "in 7 objects (1 file)") {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
}

func TestValidateRecursesAndSorts(t *testing.T) {
	dir := t.TempDir()
	bad := func(name string) string {
		return "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: " + name + "}\nspec:\n  host: " + name + "\n  subsets: [{name: v1}, {name: v1}]\n"
	}
	write := func(rel, data string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("b/z.yml", bad("d1"))
	write("a.yaml", bad("d2"))
	write("notes.txt", "not: [yaml")
	code, out, _ := run(t, "", "validate", "-f", dir)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 1 || len(lines) != 3 {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
	if !strings.HasPrefix(lines[0], filepath.Join(dir, "a.yaml")+":6:") || !strings.HasPrefix(lines[1], filepath.Join(dir, "b/z.yml")+":6:") {
		t.Errorf("not sorted by file:\n%s", out)
	}
	if lines[2] != "2 errors, 0 warnings in 2 objects (2 files)" {
		t.Errorf("summary %q", lines[2])
	}
}

func TestValidateUsageAndMissingFiles(t *testing.T) {
	if code, _, errOut := run(t, "", "validate"); code != 2 || !strings.Contains(errOut, "no input") {
		t.Errorf("no args: exit %d, stderr %q", code, errOut)
	}
	if code, _, _ := run(t, "", "validate", "--bogus"); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
	if code, _, errOut := run(t, "", "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command: exit %d, stderr %q", code, errOut)
	}
	code, out, _ := run(t, "", "validate", "-f", "/nonexistent/x.yaml")
	if code != 1 || !strings.HasPrefix(out, "/nonexistent/x.yaml: error: cannot read: no such file or directory") {
		t.Errorf("missing file: exit %d, output:\n%s", code, out)
	}
}

func TestRootHelpListsValidate(t *testing.T) {
	code, out, _ := run(t, "", "--help")
	if code != 0 || !strings.Contains(out, "validate") {
		t.Errorf("exit %d, help:\n%s", code, out)
	}
}

// TestBinaryEndToEnd builds cmd/weft and runs it, checking the exit status
// and output the shell sees.
func TestBinaryEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary; skipped in -short mode")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found: cannot build cmd/weft")
	}
	bin := filepath.Join(t.TempDir(), "weft")
	build := exec.Command(gobin, "build", "-o", bin, "github.com/weftmesh/weft/cmd/weft")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "validate", "-f", "testdata/invalid/decode-error-in-second-document.yaml", "-f", "testdata/valid/security.yaml")
	cmd.Dir = root
	out, err := cmd.Output()
	exit, ok := err.(*exec.ExitError)
	if !ok || exit.ExitCode() != 1 {
		t.Fatalf("want exit status 1, got %v\n%s", err, out)
	}
	want := "testdata/invalid/decode-error-in-second-document.yaml:18: error: DestinationRule default/ratings: spec.trafficPolicy.connectionPool.tcp.maxConnections: expected integer, got string \"lots\"\n" +
		"1 error, 0 warnings in 9 objects (2 files)\n"
	if string(out) != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
}
