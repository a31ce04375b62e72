package tracing

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// The OTLP/HTTP JSON encoding of ExportTraceServiceRequest
// (opentelemetry-proto, protobuf JSON mapping; trace and span ids are
// hex, 64-bit integers are strings, enums are numbers).

// ExportRequest is ExportTraceServiceRequest.
type ExportRequest struct {
	ResourceSpans []ResourceSpans `json:"resourceSpans"`
}

// ResourceSpans is the spans of one resource (this proxy).
type ResourceSpans struct {
	Resource   Resource     `json:"resource"`
	ScopeSpans []ScopeSpans `json:"scopeSpans"`
}

// Resource describes the entity producing spans.
type Resource struct {
	Attributes []KeyValue `json:"attributes"`
}

// ScopeSpans is the spans of one instrumentation scope.
type ScopeSpans struct {
	Scope Scope  `json:"scope"`
	Spans []Span `json:"spans"`
}

// Scope names the instrumentation.
type Scope struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// Span kinds (opentelemetry.proto.trace.v1.Span.SpanKind).
const (
	KindServer = 2
	KindClient = 3
)

// Status codes (opentelemetry.proto.trace.v1.Status.StatusCode).
const (
	StatusUnset = 0
	StatusError = 2
)

// Span is one OTLP span.
type Span struct {
	TraceID           string     `json:"traceId"`
	SpanID            string     `json:"spanId"`
	ParentSpanID      string     `json:"parentSpanId,omitempty"`
	TraceState        string     `json:"traceState,omitempty"`
	Name              string     `json:"name"`
	Kind              int        `json:"kind"`
	StartTimeUnixNano string     `json:"startTimeUnixNano"`
	EndTimeUnixNano   string     `json:"endTimeUnixNano"`
	Attributes        []KeyValue `json:"attributes"`
	Status            Status     `json:"status"`
}

// Status is a span's status.
type Status struct {
	Code    int    `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// KeyValue is one attribute.
type KeyValue struct {
	Key   string   `json:"key"`
	Value AnyValue `json:"value"`
}

// AnyValue holds a string or an int attribute value.
type AnyValue struct {
	StringValue *string `json:"stringValue,omitempty"`
	IntValue    *string `json:"intValue,omitempty"`
}

// Str is a string attribute.
func Str(k, v string) KeyValue { return KeyValue{Key: k, Value: AnyValue{StringValue: &v}} }

// Int is an integer attribute.
func Int(k string, v int64) KeyValue {
	s := strconv.FormatInt(v, 10)
	return KeyValue{Key: k, Value: AnyValue{IntValue: &s}}
}

// Lookup returns the string form of attribute k (tests, debugging).
func Lookup(attrs []KeyValue, k string) (string, bool) {
	for _, a := range attrs {
		if a.Key != k {
			continue
		}
		switch {
		case a.Value.StringValue != nil:
			return *a.Value.StringValue, true
		case a.Value.IntValue != nil:
			return *a.Value.IntValue, true
		}
		return "", true
	}
	return "", false
}

// ExporterStats counts what the exporter did with spans.
type ExporterStats struct {
	Exported int64 // accepted by the collector
	Dropped  int64 // queue full
	Failed   int64 // the collector rejected or could not be reached
}

// exporter batches spans and posts them to an OTLP/HTTP collector. The
// queue is bounded; Enqueue never blocks. Run owns the batch.
type exporter struct {
	url      string
	client   *http.Client
	resource Resource
	queue    chan Span
	batch    int
	interval time.Duration

	exported, dropped, failed atomic.Int64
}

func (e *exporter) enqueue(s Span) {
	select {
	case e.queue <- s:
	default:
		e.dropped.Add(1)
	}
}

func (e *exporter) stats() ExporterStats {
	return ExporterStats{Exported: e.exported.Load(), Dropped: e.dropped.Load(), Failed: e.failed.Load()}
}

// run sends batches until ctx is done, then flushes what is queued.
func (e *exporter) run(ctx context.Context) {
	t := time.NewTicker(e.interval)
	defer t.Stop()
	buf := make([]Span, 0, e.batch)
	for {
		select {
		case s := <-e.queue:
			buf = append(buf, s)
			if len(buf) >= e.batch {
				e.send(ctx, buf)
				buf = buf[:0]
			}
		case <-t.C:
			if len(buf) > 0 {
				e.send(ctx, buf)
				buf = buf[:0]
			}
		case <-ctx.Done():
			for {
				select {
				case s := <-e.queue:
					buf = append(buf, s)
					continue
				default:
				}
				break
			}
			if len(buf) > 0 {
				fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				e.send(fctx, buf)
				cancel()
			}
			return
		}
	}
}

func (e *exporter) send(ctx context.Context, spans []Span) {
	body, err := json.Marshal(ExportRequest{ResourceSpans: []ResourceSpans{{
		Resource:   e.resource,
		ScopeSpans: []ScopeSpans{{Scope: Scope{Name: "weft-proxy"}, Spans: spans}},
	}}})
	if err == nil {
		err = e.post(ctx, body)
	}
	if err != nil {
		e.failed.Add(int64(len(spans)))
		return
	}
	e.exported.Add(int64(len(spans)))
}

func (e *exporter) post(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("otlp collector %s: %s", e.url, resp.Status)
	}
	return nil
}
