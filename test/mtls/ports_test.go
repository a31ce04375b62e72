package mtls

import (
	"testing"

	"github.com/weftmesh/weft/internal/testport"
)

// freePort returns a TCP port free on 127.0.0.1 for a process the test
// starts to bind later (internal/testport: never twice, never from the
// ephemeral range).
func freePort(t testing.TB) int { return testport.Free(t, "127.0.0.1") }
