package testport

import "testing"

// Free never returns a port twice, and never one from the ephemeral
// range when there is room below it.
func TestFreeUnique(t *testing.T) {
	seen := map[int]bool{}
	lo := EphemeralLow()
	for range 500 {
		p := Free(t, "127.0.0.1")
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		if lo-MinPort >= 1000 && (p < MinPort || p >= lo) {
			t.Fatalf("port %d outside [%d, %d)", p, MinPort, lo)
		}
	}
}
