package bootstrap

import (
	"strings"
	"testing"
)

func TestTracingConfig(t *testing.T) {
	cfg, err := Parse("b.yaml", []byte("node: {id: a}\ntracing: {otlpURL: 'http://otel:4318/v1/traces', sampling: 100}\n"), Default())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Tracing.OTLPURL != "http://otel:4318/v1/traces" || cfg.Tracing.Sampling != 100 {
		t.Fatalf("tracing = %+v", cfg.Tracing)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if d := Default(); d.Tracing.Sampling != 1 || d.Tracing.OTLPURL != "" {
		t.Fatalf("default tracing = %+v, want off with Istio's 1%%", d.Tracing)
	}
	cfg.Tracing = Tracing{OTLPURL: "otel:4318", Sampling: 250}
	err = cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "tracing.otlpURL") || !strings.Contains(err.Error(), "tracing.sampling") {
		t.Fatalf("Validate = %v, want both tracing fields named", err)
	}
}
