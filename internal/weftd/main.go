package weftd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
)

// NewLogger returns the logger the configuration asks for, writing to w.
func NewLogger(c LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Main runs weftd with cfg until ctx ends, logging to logOut.
func Main(ctx context.Context, cfg Config, logOut io.Writer) error {
	log := NewLogger(cfg.Log, logOut)
	limit, err := applyMemoryLimit(cfg.MemoryLimit)
	if err != nil {
		return fmt.Errorf("memoryLimit: %w", err)
	}
	if limit > 0 {
		log.Info("memory limit set", "bytes", limit, "memoryLimit", cfg.MemoryLimit)
	}
	s, err := New(cfg, log)
	if err != nil {
		return err
	}
	if err := s.Listen(); err != nil {
		return err
	}
	return s.Run(ctx)
}
