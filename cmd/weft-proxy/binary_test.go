package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// built is the weft-proxy binary the process tests share: built once per
// test binary, removed by TestMain.
var built struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// proxyBinary builds weft-proxy from this package (once) and returns its
// path; it skips in -short mode or without a Go toolchain.
func proxyBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a binary")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go toolchain not in PATH; cannot build weft-proxy")
	}
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "weft-proxy-test-"); built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "weft-proxy")
		built.out, built.err = exec.Command(goBin, "build", "-o", built.path, ".").CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("build: %v\n%s", built.err, built.out)
	}
	return built.path
}
