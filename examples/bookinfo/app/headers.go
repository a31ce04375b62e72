package app

import "net/http"

// ForwardedHeaders lists the request headers a bookinfo service copies from its
// incoming request onto its calls to other services, as the original services
// do: tracing context (so the mesh can join spans into one trace), the user
// identity and the session. The list matches the originals' (productpage,
// details and reviews keep theirs in sync), with the single-header b3 format
// added, which productpage's OpenTelemetry B3 propagator also understands.
var ForwardedHeaders = []string{
	// Request id: used by Istio's access logs and sampling decisions.
	"x-request-id",
	// Lightstep.
	"x-ot-span-context",
	// Datadog.
	"x-datadog-trace-id",
	"x-datadog-parent-id",
	"x-datadog-sampling-priority",
	// W3C Trace Context.
	"traceparent",
	"tracestate",
	// Google Cloud Trace.
	"x-cloud-trace-context",
	// gRPC binary trace context.
	"grpc-trace-bin",
	// Zipkin B3, single and multi header forms.
	"b3",
	"x-b3-traceid",
	"x-b3-spanid",
	"x-b3-parentspanid",
	"x-b3-sampled",
	"x-b3-flags",
	// SkyWalking.
	"sw8",
	// Application headers.
	"end-user",
	"user-agent",
	// Context and session.
	"cookie",
	"authorization",
	"jwt",
}

// forwardHeaders returns the headers of in that a call made on its behalf must
// carry: every present header named in ForwardedHeaders, all values kept.
func forwardHeaders(in http.Header) http.Header {
	out := make(http.Header)
	for _, name := range ForwardedHeaders {
		key := http.CanonicalHeaderKey(name)
		if vs := in.Values(key); len(vs) > 0 {
			out[key] = append([]string(nil), vs...)
		}
	}
	return out
}
