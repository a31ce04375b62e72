package weftd

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestNotSyncedBeforeSourcesRead checks that a new server's snapshot is
// not synced before its sources have delivered their first state, so
// /healthz cannot report ready on an empty configuration.
func TestNotSyncedBeforeSourcesRead(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x.yaml"), []byte("apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: x}\nspec: {}\n"), 0o644)
	cfg := DefaultConfig()
	cfg.ConfigDir, cfg.SecureXDSPort = dir, -1
	s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if s.Store().Snapshot().Synced() {
		t.Fatal("snapshot synced before any source ran")
	}
}
