package dataplane

import (
	"testing"

	"github.com/weftmesh/weft/internal/testport"
)

// freePort returns a TCP port free on host for a process the harness
// starts to bind later (internal/testport: never twice in this test
// binary, never from the ephemeral range, where any process's outgoing
// connection could take it first).
func freePort(t *testing.T, host string) int { return testport.Free(t, host) }
