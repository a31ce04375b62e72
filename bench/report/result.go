// Package report holds the benchmark results: the JSON file written to
// bench/results, the aggregation of repetitions into a median with its
// spread, and the BENCHMARKS.md page with its SVG latency plots.
package report

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
)

// File is one benchmark run, as written to bench/results/<date>-<commit>.json.
type File struct {
	// Date is the UTC start time (RFC 3339) and Commit the checkout's
	// short commit (with "-dirty" when it had local changes).
	Date   string `json:"date"`
	Commit string `json:"commit"`
	// Quick is true for `make bench-quick`.
	Quick bool `json:"quick"`
	// Reps is the number of repetitions per scenario and proxy.
	Reps     int               `json:"reps"`
	Machine  Machine           `json:"machine"`
	Versions map[string]string `json:"versions"`
	// Scenarios are in the order they ran.
	Scenarios []Scenario `json:"scenarios"`
	// Profile names the CPU profile of weft-proxy kept beside the file.
	Profile string `json:"profile,omitempty"`
	// ProfileTop is `go tool pprof -top` of that profile, shown on the page.
	ProfileTop string `json:"profileTop,omitempty"`
	// Notes are free remarks (skipped peers, errors) shown on the page.
	Notes []string `json:"notes,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUModel  string `json:"cpuModel"`
	Cores     int    `json:"cores"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"goVersion"`
	// LoadStart and LoadEnd are the 1-minute load averages when the run
	// started and ended: other work on the machine skews the figures.
	LoadStart float64 `json:"loadStart"`
	LoadEnd   float64 `json:"loadEnd"`
	// Pinning says which CPUs ran what.
	Pinning string `json:"pinning"`
}

// Scenario is one benchmark scenario and its results per proxy.
type Scenario struct {
	ID          string   `json:"id"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	Columns     []string `json:"columns"` // keys of ColumnDefs to show
	// Baseline names the result the "added" latencies are relative to
	// ("direct"), if any.
	Baseline string   `json:"baseline,omitempty"`
	Results  []Result `json:"results"`
}

// Result is one proxy's figures in one scenario: each the median of the
// repetitions with their min and max.
type Result struct {
	Proxy string `json:"proxy"`
	// Peer is false for the baseline (direct) and for weft-proxy itself:
	// ratios compare against the best peer.
	Peer bool `json:"peer"`
	// Skipped, when set, says why there are no figures.
	Skipped string `json:"skipped,omitempty"`
	// Label qualifies the result (e.g. "plaintext").
	Label string `json:"label,omitempty"`
	Reps  int    `json:"reps"`
	// Metrics by key (see ColumnDefs).
	Metrics map[string]Stat `json:"metrics"`
	// Curve is the latency percentile curve (median over repetitions).
	Curve []Point `json:"curve,omitempty"`
	// Errors counts failed requests over all repetitions.
	Errors int64 `json:"errors"`
}

// Stat is a median with the spread of the repetitions.
type Stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// Point is one latency percentile (Value in milliseconds).
type Point struct {
	Percentile float64 `json:"p"`
	Value      float64 `json:"ms"`
}

// Summarize returns the median and the spread of vs. The median of an
// even count is the mean of the middle two. An empty vs gives NaN.
func Summarize(vs []float64) Stat {
	if len(vs) == 0 {
		return Stat{math.NaN(), math.NaN(), math.NaN()}
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return Stat{Median: med, Min: s[0], Max: s[n-1]}
}

// Rep is one repetition's raw figures, by metric key.
type Rep struct {
	Metrics map[string]float64
	Curve   []Point
	Errors  int64
}

// Aggregate builds a Result from repetitions: every metric present in
// any repetition is summarized, and the curve is the per-percentile
// median.
func Aggregate(proxy string, peer bool, reps []Rep) Result {
	r := Result{Proxy: proxy, Peer: peer, Reps: len(reps), Metrics: map[string]Stat{}}
	values := map[string][]float64{}
	curve := map[float64][]float64{}
	for _, rep := range reps {
		for k, v := range rep.Metrics {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				values[k] = append(values[k], v)
			}
		}
		for _, p := range rep.Curve {
			curve[p.Percentile] = append(curve[p.Percentile], p.Value)
		}
		r.Errors += rep.Errors
	}
	for k, vs := range values {
		r.Metrics[k] = Summarize(vs)
	}
	ps := make([]float64, 0, len(curve))
	for p := range curve {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	for _, p := range ps {
		r.Curve = append(r.Curve, Point{p, Summarize(curve[p]).Median})
	}
	return r
}

// AddOverBaseline sets the added-latency metrics ("added_p50" etc.) of
// every result from the medians of the baseline's p50/p90/p99: the added
// figure's spread is the result's spread minus the baseline median.
func (s *Scenario) AddOverBaseline() {
	var base *Result
	for i := range s.Results {
		if s.Results[i].Proxy == s.Baseline && s.Results[i].Skipped == "" {
			base = &s.Results[i]
		}
	}
	if base == nil {
		return
	}
	for i := range s.Results {
		r := &s.Results[i]
		if r == base || r.Skipped != "" {
			continue
		}
		for _, p := range []string{"p50", "p90", "p99"} {
			v, ok := r.Metrics[p]
			b, bok := base.Metrics[p]
			if !ok || !bok {
				continue
			}
			r.Metrics["added_"+p] = Stat{v.Median - b.Median, v.Min - b.Median, v.Max - b.Median}
		}
	}
}

// Write stores f as indented JSON.
func (f *File) Write(path string) error {
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// ReadFile loads a results file.
func ReadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f File
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &f, nil
}
