package xdstest

import (
	"testing"

	"github.com/weftmesh/weft/internal/testport"
)

// freePort returns a TCP port free on 127.0.0.1 for a listener bound
// later (see internal/testport: never twice, never from the ephemeral
// range, so other packages' connections cannot take it first).
func freePort(t testing.TB) int { return testport.Free(t, "127.0.0.1") }
