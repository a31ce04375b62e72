package weftd

import (
	"errors"
	"strings"
	"testing"
)

func TestParseMemoryLimit(t *testing.T) {
	cgroup := func(v string) func() ([]byte, error) { return func() ([]byte, error) { return []byte(v + "\n"), nil } }
	noCgroup := func() ([]byte, error) { return nil, errors.New("no such file") }
	for _, tc := range []struct {
		in      string
		readMax func() ([]byte, error)
		want    int64
		err     string
	}{
		{in: "", want: 0},
		{in: "none", want: 0},
		{in: "512MiB", want: 512 << 20},
		{in: "2GiB", want: 2 << 30},
		{in: "500MB", want: 500e6},
		{in: "1048576", want: 1 << 20},
		{in: "auto", readMax: cgroup("1000000000"), want: 900000000},
		{in: "auto", readMax: cgroup("max"), want: 0},
		{in: "auto", readMax: noCgroup, want: 0},
		{in: "auto", readMax: cgroup("lots"), err: "cgroup memory limit"},
		{in: "12XB", err: "not a size"},
		{in: "-5MiB", err: "not a size"},
		{in: "0", err: "not a size"},
	} {
		rm := tc.readMax
		if rm == nil {
			rm = noCgroup
		}
		got, err := parseMemoryLimit(tc.in, rm)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestConfigRejectsBadMemoryLimit(t *testing.T) {
	_, err := LoadConfig([]string{"--memory-limit", "lots", "--secure-xds-port", "-1"})
	if err == nil || !strings.Contains(err.Error(), "memoryLimit:") {
		t.Fatalf("LoadConfig: %v, want an error naming memoryLimit", err)
	}
}
