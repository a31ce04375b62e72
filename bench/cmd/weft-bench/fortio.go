package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/weftmesh/weft/bench/report"
)

// percentiles fortio reports (passed with -p).
var percentiles = []float64{50, 75, 90, 99, 99.9}

// load is one fortio run.
type load struct {
	URL      string // http://... or host:port for gRPC
	QPS      int    // 0 is as fast as possible
	Conns    int
	Duration time.Duration
	H2       bool
	GRPC     bool
}

// fortioResult is the part of fortio's JSON output the harness reads.
type fortioResult struct {
	ActualQPS         float64
	ActualDuration    int64 // ns
	RetCodes          map[string]int64
	DurationHistogram struct {
		Count       int64
		Max         float64
		Percentiles []struct {
			Percentile float64
			Value      float64 // seconds
		}
	}
}

// runFortio runs the load generator pinned to cpu and returns its result.
func runFortio(ctx context.Context, fortio string, niceness, cpu int, dir string, l load) (*fortioResult, error) {
	out := filepath.Join(dir, "fortio.json")
	os.Remove(out)
	ps := ""
	for i, p := range percentiles {
		if i > 0 {
			ps += ","
		}
		ps += strconv.FormatFloat(p, 'f', -1, 64)
	}
	args := []string{fortio, "load", "-qps", strconv.Itoa(l.QPS), "-c", strconv.Itoa(l.Conns),
		"-t", l.Duration.String(), "-r", "0.00001", "-p", ps, "-json", out, "-quiet", "-loglevel", "error"}
	if l.H2 {
		args = append(args, "-h2")
	}
	if l.GRPC {
		args = append(args, "-grpc")
	}
	args = append(args, l.URL)
	argv := command(niceness, cpu, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("fortio %s: %v: %s", l.URL, err, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	var r fortioResult
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("fortio JSON: %w", err)
	}
	return &r, nil
}

// ok is the number of successful requests (HTTP 200 or gRPC SERVING).
func (r *fortioResult) ok() int64 { return r.RetCodes["200"] + r.RetCodes["SERVING"] }

// rep converts the result into report figures (latencies in ms).
func (r *fortioResult) rep() report.Rep {
	rep := report.Rep{Metrics: map[string]float64{
		"rps": r.ActualQPS,
		"max": r.DurationHistogram.Max * 1000,
	}, Errors: r.DurationHistogram.Count - r.ok()}
	for _, p := range r.DurationHistogram.Percentiles {
		ms := p.Value * 1000
		rep.Curve = append(rep.Curve, report.Point{Percentile: p.Percentile, Value: ms})
		switch p.Percentile {
		case 50:
			rep.Metrics["p50"] = ms
		case 90:
			rep.Metrics["p90"] = ms
		case 99:
			rep.Metrics["p99"] = ms
		}
	}
	return rep
}
