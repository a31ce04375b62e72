package bootstrap

import (
	"fmt"
	"net/url"
)

// Tracing configures distributed tracing: spans exported over OTLP/HTTP
// (JSON) to a collector. Tracing is off while OTLPURL is empty.
type Tracing struct {
	// OTLPURL is the collector's traces endpoint
	// (http://otel-collector:4318/v1/traces).
	OTLPURL string `json:"otlpURL"`
	// Sampling is the percentage (0-100) of requests without an upstream
	// sampling decision that start a sampled trace (Istio's default 1).
	Sampling float64 `json:"sampling"`
}

func (t Tracing) validate() []error {
	var errs []error
	if t.OTLPURL != "" {
		u, err := url.Parse(t.OTLPURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("tracing.otlpURL: %q is not an http(s) URL", t.OTLPURL))
		}
	}
	if t.Sampling < 0 || t.Sampling > 100 || t.Sampling != t.Sampling {
		errs = append(errs, fmt.Errorf("tracing.sampling: %v is not a percentage in [0, 100]", t.Sampling))
	}
	return errs
}
