package weftd

import (
	"log/slog"
	"time"

	"github.com/weftmesh/weft/internal/source"
	"github.com/weftmesh/weft/internal/source/file"
)

// newFileSource makes the source that serves cfg.ConfigDir.
func newFileSource(cfg Config, log *slog.Logger) (source.Source, error) {
	return file.New(file.Options{
		Dir:      cfg.ConfigDir,
		Debounce: time.Duration(cfg.FileDebounce),
		Logger:   log.With("source", file.DefaultName),
	})
}
