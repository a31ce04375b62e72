package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/manifest"
)

// A trimmed fortio v1.68 JSON result (values in seconds).
const fortioJSON = `{"RunType":"HTTP","ActualQPS":999.5,"ActualDuration":3001000000,"NumThreads":4,
"DurationHistogram":{"Count":3000,"Min":0.00005,"Max":0.0123,"Avg":0.0002,
 "Percentiles":[{"Percentile":50,"Value":0.000212},{"Percentile":75,"Value":0.0003},{"Percentile":90,"Value":0.00041},{"Percentile":99,"Value":0.0021},{"Percentile":99.9,"Value":0.009}]},
"RetCodes":{"200":2990,"503":10}}`

func TestFortioResult(t *testing.T) {
	var r fortioResult
	if err := json.Unmarshal([]byte(fortioJSON), &r); err != nil {
		t.Fatal(err)
	}
	rep := r.rep()
	near := func(k string, want float64) {
		t.Helper()
		if got := rep.Metrics[k]; math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	near("p50", 0.212)
	near("p90", 0.41)
	near("p99", 2.1)
	near("max", 12.3)
	near("rps", 999.5)
	if rep.Errors != 10 {
		t.Errorf("errors %d, want 10", rep.Errors)
	}
	if len(rep.Curve) != 5 || rep.Curve[4].Percentile != 99.9 || math.Abs(rep.Curve[4].Value-9) > 1e-9 {
		t.Errorf("curve %+v", rep.Curve)
	}
	g := fortioResult{RetCodes: map[string]int64{"SERVING": 7}}
	if g.ok() != 7 {
		t.Errorf("gRPC SERVING not counted as success")
	}
}

func TestParseFlags(t *testing.T) {
	c, err := parseFlags([]string{"-quick"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.scenarios["1"] || len(c.scenarios) != 1 || c.reps != 2 || c.duration != 3*time.Second {
		t.Errorf("quick: %+v", c)
	}
	c, err = parseFlags([]string{"-quick", "-scenarios", "1,4", "-reps", "5", "-cp-proxies", "10,20", "-proxies", "nginx"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.scenarios["4"] || c.reps != 5 || len(c.cpSize.proxies) != 2 || !c.only["nginx"] {
		t.Errorf("explicit flags lost under -quick: %+v", c)
	}
	for _, bad := range [][]string{{"-scenarios", "7"}, {"-reps", "0"}, {"-cp-proxies", "10,x"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

// TestGeneratedMeshIsValidIstio decodes scenario 6's generated
// configuration with Weft's strict decoder.
func TestGeneratedMeshIsValidIstio(t *testing.T) {
	dir := t.TempDir()
	if err := writeMesh(dir, 250); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if len(files) != 3 {
		t.Fatalf("%d files, want 3", len(files))
	}
	total := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cfgs, diags := manifest.Decode(f, data, "file")
		if diags.HasErrors() {
			t.Fatalf("%s: %v", f, diags)
		}
		total += len(cfgs)
	}
	if total != 250 {
		t.Fatalf("%d objects, want 250", total)
	}
}

func TestOneLine(t *testing.T) {
	if got := oneLine("a\n  b\tc\n"); got != "a b c" {
		t.Errorf("oneLine = %q", got)
	}
	long := make([]byte, 400)
	for i := range long {
		long[i] = 'x'
	}
	if got := oneLine(string(long)); len([]rune(got)) != 301 {
		t.Errorf("oneLine did not truncate: %d", len(got))
	}
}

func TestCommandPrefix(t *testing.T) {
	got := command(-10, 0, "prog", "arg")
	want := []string{"nice", "-n", "-10", "taskset", "-c", "0", "prog", "arg"}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%v, want %v", got, want)
		}
	}
	if got := command(0, -1, "prog"); len(got) != 1 {
		t.Errorf("no pinning, no nice: %v", got)
	}
}
