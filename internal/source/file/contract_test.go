package file

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/source"
	"github.com/weftmesh/weft/internal/source/sourcetest"
)

// harness feeds file sources: a unit is a file, replaced atomically by
// writing a hidden temporary file and renaming it.
type harness struct{}

type backend struct {
	dir string
	src *Source
}

func (harness) New(t *testing.T, name string) sourcetest.Backend {
	dir := t.TempDir()
	src, err := New(Options{Dir: dir, Name: name, Debounce: 20 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return &backend{dir: dir, src: src}
}

func (b *backend) Source() source.Source { return b.src }

func (b *backend) Write(t *testing.T, unit, docs string) {
	t.Helper()
	writeAtomic(t, filepath.Join(b.dir, unit+".yaml"), docs)
}

func (b *backend) Remove(t *testing.T, unit string) {
	t.Helper()
	if err := os.Remove(filepath.Join(b.dir, unit+".yaml")); err != nil {
		t.Fatal(err)
	}
}

// writeAtomic replaces path the way careful editors do: write a temporary
// file next to it, then rename it over path.
func writeAtomic(t testing.TB, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestContract(t *testing.T) { sourcetest.Run(t, harness{}) }
