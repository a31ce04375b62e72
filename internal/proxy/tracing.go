package proxy

import (
	"context"
	"strconv"

	"github.com/weftmesh/weft/internal/proxy/bootstrap"
	"github.com/weftmesh/weft/internal/proxy/httpproxy"
	"github.com/weftmesh/weft/internal/proxy/tracing"
)

// newTracer builds the tracer cfg asks for, nil when tracing is off.
func newTracer(cfg bootstrap.Config) (*tracing.Tracer, error) {
	if cfg.Tracing.OTLPURL == "" {
		return nil, nil
	}
	return tracing.New(tracing.Config{
		OTLPURL: cfg.Tracing.OTLPURL, SamplingPercent: cfg.Tracing.Sampling,
		Node: tracing.Node{ID: cfg.Node.ID, Namespace: cfg.Node.Namespace, Workload: cfg.Node.Workload,
			Cluster: cfg.Node.Cluster, MeshID: cfg.Node.Metadata["MESH_ID"], Labels: cfg.Node.Labels},
	})
}

// httpTracer is the tracer HTTP connection managers use (a nil interface
// when tracing is off).
func (p *Proxy) httpTracer() httpproxy.Tracer {
	if p.tracer == nil {
		return nil
	}
	return p.tracer
}

// TracingStats reports span export counts (zero when tracing is off).
func (p *Proxy) TracingStats() tracing.ExporterStats {
	if p.tracer == nil {
		return tracing.ExporterStats{}
	}
	return p.tracer.Stats()
}

// startTracing runs the span exporter; the returned stop flushes queued
// spans and waits for the exporter to finish.
func (p *Proxy) startTracing() (stop func()) {
	if p.tracer == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.tracer.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// tracingStatLines are the span export counters (Envoy's
// tracing.opentelemetry.* stats; dropped and failed are weft's), none
// when tracing is off.
func (p *Proxy) tracingStatLines() [][2]string {
	if p.tracer == nil {
		return nil
	}
	st := p.tracer.Stats()
	return [][2]string{
		{"tracing.opentelemetry.spans_sent", strconv.FormatInt(st.Exported, 10)},
		{"tracing.opentelemetry.spans_dropped", strconv.FormatInt(st.Dropped, 10)},
		{"tracing.opentelemetry.spans_failed", strconv.FormatInt(st.Failed, 10)},
	}
}
