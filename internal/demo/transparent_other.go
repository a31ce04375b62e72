//go:build !linux

package demo

import (
	"context"
	"errors"
	"strings"
)

// startTransparent is only available on Linux (network namespaces).
func startTransparent(context.Context, *Demo, map[string]string) error {
	return errors.New("demo: --transparent needs Linux network namespaces and iptables")
}

func (d *Demo) transparentHints(*strings.Builder) {}
