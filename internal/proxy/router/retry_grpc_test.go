package router

import (
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// TestRetryOnGRPCCodes maps each gRPC retry_on name to its status code.
func TestRetryOnGRPCCodes(t *testing.T) {
	names := map[string]int{"cancelled": 1, "deadline-exceeded": 4, "resource-exhausted": 8, "internal": 13, "unavailable": 14}
	for name, code := range names {
		p, err := compileRetry("r", &routev3.RetryPolicy{RetryOn: "5xx, " + name})
		if err != nil {
			t.Fatal(err)
		}
		for c := range 17 {
			if got := p.RetriesGRPC(c); got != (c == code) {
				t.Errorf("retry_on %q: RetriesGRPC(%d) = %v", name, c, got)
			}
		}
	}
	if p, _ := compileRetry("r", &routev3.RetryPolicy{RetryOn: "5xx"}); p.GRPCCodes != 0 || p.RetriesGRPC(14) {
		t.Errorf("5xx alone retries gRPC codes %b", p.GRPCCodes)
	}
}
