package report

import (
	"bytes"
	"encoding/xml"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want Stat
	}{
		{[]float64{3}, Stat{3, 3, 3}},
		{[]float64{5, 1, 3}, Stat{3, 1, 5}},
		{[]float64{4, 1, 3, 2}, Stat{2.5, 1, 4}},
	} {
		if got := Summarize(tc.in); got != tc.want {
			t.Errorf("Summarize(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
	if got := Summarize(nil); !math.IsNaN(got.Median) {
		t.Errorf("Summarize(nil) = %+v, want NaN", got)
	}
	in := []float64{3, 1, 2}
	Summarize(in)
	if in[0] != 3 {
		t.Error("Summarize reordered its input")
	}
}

func TestAggregate(t *testing.T) {
	reps := []Rep{
		{Metrics: map[string]float64{"p50": 1.0, "rps": 1000}, Curve: []Point{{50, 1.0}, {99, 3.0}}, Errors: 1},
		{Metrics: map[string]float64{"p50": 1.2, "rps": 990, "bad": math.NaN()}, Curve: []Point{{50, 1.2}, {99, 2.0}}},
		{Metrics: map[string]float64{"p50": 0.9, "rps": 1010}, Curve: []Point{{50, 0.9}, {99, 9.0}}, Errors: 2},
	}
	r := Aggregate("weft-proxy", false, reps)
	if r.Reps != 3 || r.Errors != 3 {
		t.Fatalf("reps %d errors %d", r.Reps, r.Errors)
	}
	if got := r.Metrics["p50"]; got != (Stat{1.0, 0.9, 1.2}) {
		t.Errorf("p50 %+v", got)
	}
	if got := r.Metrics["rps"]; got != (Stat{1000, 990, 1010}) {
		t.Errorf("rps %+v", got)
	}
	if _, ok := r.Metrics["bad"]; ok {
		t.Error("a NaN-only metric was kept")
	}
	want := []Point{{50, 1.0}, {99, 3.0}}
	if len(r.Curve) != 2 || r.Curve[0] != want[0] || r.Curve[1] != want[1] {
		t.Errorf("curve %+v, want %+v", r.Curve, want)
	}
}

func TestAddOverBaseline(t *testing.T) {
	s := Scenario{Baseline: "direct", Results: []Result{
		{Proxy: "direct", Metrics: map[string]Stat{"p50": {0.2, 0.1, 0.3}, "p90": {0.4, 0.4, 0.4}}},
		{Proxy: "nginx", Peer: true, Metrics: map[string]Stat{"p50": {0.5, 0.4, 0.7}, "p90": {0.9, 0.8, 1.0}}},
		{Proxy: "caddy", Peer: true, Skipped: "not installed"},
	}}
	s.AddOverBaseline()
	got := s.Results[1].Metrics["added_p50"]
	if math.Abs(got.Median-0.3) > 1e-9 || math.Abs(got.Min-0.2) > 1e-9 || math.Abs(got.Max-0.5) > 1e-9 {
		t.Errorf("added_p50 %+v", got)
	}
	if _, ok := s.Results[0].Metrics["added_p50"]; ok {
		t.Error("the baseline got an added figure")
	}
	if _, ok := s.Results[1].Metrics["added_p99"]; ok {
		t.Error("added_p99 without p99")
	}
}

func fixture() *File {
	f := &File{
		Date: "2026-11-26T12:00:00Z", Commit: "abc1234", Reps: 3,
		Machine:    Machine{CPUModel: "AMD EPYC", Cores: 2, Kernel: "6.1.0", GoVersion: "go1.26.8", LoadStart: 1.5, LoadEnd: 2.25, Pinning: "proxy on CPU 0, fortio and backend on CPU 1"},
		Versions:   map[string]string{"nginx": "1.22.1", "fortio": "v1.68.2"},
		Profile:    "bench/results/x-weft-proxy.cpu.pprof",
		ProfileTop: "      flat  flat%   sum%        cum   cum%\n      90ms 45.00% 45.00%       90ms 45.00%  syscall.Syscall6\n",
		Notes:      []string{"machine was busy"},
	}
	s := Scenario{ID: "1", Title: "One hop HTTP/1.1", Description: "1000 rps over 4 connections.", Baseline: "direct",
		Columns: []string{"p50", "p99", "added_p99", "cpu_per_1k", "rps"}}
	s.Results = []Result{
		{Proxy: "direct", Reps: 3, Metrics: map[string]Stat{"p50": {0.1, 0.09, 0.12}, "p99": {0.3, 0.25, 0.4}, "rps": {1000, 999, 1000}},
			Curve: []Point{{50, 0.1}, {90, 0.2}, {99, 0.3}, {99.9, 0.5}}},
		{Proxy: "weft-proxy", Reps: 3, Metrics: map[string]Stat{"p50": {0.3, 0.28, 0.35}, "p99": {0.9, 0.8, 1.1}, "cpu_per_1k": {0.06, 0.05, 0.07}, "rps": {1000, 998, 1000}},
			Curve: []Point{{50, 0.3}, {90, 0.5}, {99, 0.9}, {99.9, 1.7}}, Errors: 2},
		{Proxy: "nginx", Peer: true, Reps: 3, Metrics: map[string]Stat{"p50": {0.25, 0.2, 0.3}, "p99": {0.6, 0.5, 0.7}, "cpu_per_1k": {0.03, 0.03, 0.04}, "rps": {1000, 1000, 1000}},
			Curve: []Point{{50, 0.25}, {90, 0.4}, {99, 0.6}, {99.9, 1.2}}},
		{Proxy: "caddy", Peer: true, Skipped: "caddy <b> not installed"},
	}
	s.AddOverBaseline()
	f.Scenarios = []Scenario{s}
	return f
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; run go test ./bench/report -update and review the diff\ngot:\n%s", name, got)
	}
}

func TestMarkdownGolden(t *testing.T) {
	var b bytes.Buffer
	if err := fixture().Markdown(&b, "bench/results/x.json", func(id string) string { return "bench/results/x-s" + id + ".svg" }); err != nil {
		t.Fatal(err)
	}
	golden(t, "benchmarks.md", b.Bytes())
	// nginx is the only peer: its ratios are 1.00×; weft-proxy's p99 is 1.5× nginx's.
	for _, want := range []string{"| nginx | 1.00× |", "| weft-proxy | 1.20× | 1.50× |", "caddy: skipped: caddy <b> not installed", "0.600 [0.500–0.800]"} {
		if !bytes.Contains(b.Bytes(), []byte(want)) {
			t.Errorf("markdown lacks %q", want)
		}
	}
}

func TestLatencySVGGolden(t *testing.T) {
	var b bytes.Buffer
	f := fixture()
	if err := f.Scenarios[0].LatencySVG(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "latency.svg", b.Bytes())
	// It must be well-formed XML with one polyline per curve.
	dec := xml.NewDecoder(bytes.NewReader(b.Bytes()))
	lines := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			lines++
		}
	}
	if lines != 3 {
		t.Errorf("%d polylines, want 3", lines)
	}
}

func TestWriteRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.json")
	f := fixture()
	if err := f.Write(path); err != nil {
		t.Fatal(err)
	}
	g, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if g.Scenarios[0].Results[1].Metrics["p99"] != f.Scenarios[0].Results[1].Metrics["p99"] {
		t.Error("round trip changed a metric")
	}
}
