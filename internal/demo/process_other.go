//go:build !unix

package demo

import (
	"errors"
	"time"
)

type child struct {
	name    string
	logPath string
	done    chan struct{}
}

var errUnsupported = errors.New("weft demo needs a Unix system (process groups, loopback 127.0.0.0/8)")

func startChild(name, binary string, args, env []string, logDir string) (*child, error) {
	return nil, errUnsupported
}

func (c *child) exited() bool             { return true }
func (c *child) stop(grace time.Duration) {}
func (c *child) exitError() error         { return errUnsupported }

func findBinary(name, dir string) (string, error) { return "", errUnsupported }
