package httpproxy

import "net/http"

// Tracer starts a span for each request a Handler serves (distributed
// tracing; see package tracing).
type Tracer interface {
	// Start joins the trace carried by r's headers or starts one, rewrites
	// r's trace headers so the upstream sees this proxy's span as its
	// parent, and sets x-request-id when absent. It returns nil when the
	// request is not sampled.
	Start(r *http.Request) Span
}

// Span is one request's span in this proxy; End reports the finished
// request. End must not retain info.
type Span interface {
	End(info *Info)
}
