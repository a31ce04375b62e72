package main

import (
	"context"

	"github.com/weftmesh/weft/bench/report"
)

// cpSize sizes scenario 6.
type cpSize struct {
	services  int
	proxies   int
	churnRate int
}

// controlPlane runs scenario 6.
func (e *env) controlPlane(ctx context.Context) report.Scenario {
	return report.Scenario{ID: "6", Title: "Control plane", Results: []report.Result{{Proxy: "weftd", Skipped: "not implemented yet"}}}
}
