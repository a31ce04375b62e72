package weftd

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// memoryLimitAuto is the MemoryLimit value that derives the limit from the
// process's cgroup, as istiod does (automemlimit): 90% of memory.max.
const memoryLimitAuto = "auto"

// cgroupMemoryMax is cgroup v2's memory limit of the process's cgroup.
const cgroupMemoryMax = "/sys/fs/cgroup/memory.max"

// parseMemoryLimit returns the soft memory limit in bytes that s asks for:
// 0 for none (empty or "none"), a size with an optional binary or decimal
// suffix (KiB, MiB, GiB, KB, MB, GB) or plain bytes, or for "auto" 90% of
// the cgroup limit read from readMax (0 when there is none).
func parseMemoryLimit(s string, readMax func() ([]byte, error)) (int64, error) {
	switch s = strings.TrimSpace(s); s {
	case "", "none":
		return 0, nil
	case memoryLimitAuto:
		b, err := readMax()
		if err != nil {
			return 0, nil // no cgroup v2 limit visible: leave Go's default
		}
		v := strings.TrimSpace(string(b))
		if v == "max" || v == "" {
			return 0, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("cannot read the cgroup memory limit %q", v)
		}
		return n / 10 * 9, nil
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}}
	mult, num := int64(1), s
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			mult, num = u.mult, strings.TrimSpace(strings.TrimSuffix(s, u.suffix))
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a size (e.g. 512MiB, 2GiB, auto or none)", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// applyMemoryLimit sets the Go runtime's soft memory limit for weftd from
// the configuration; it returns the limit set (0: none).
func applyMemoryLimit(s string) (int64, error) {
	n, err := parseMemoryLimit(s, func() ([]byte, error) { return os.ReadFile(cgroupMemoryMax) })
	if err != nil || n == 0 {
		return 0, err
	}
	debug.SetMemoryLimit(n)
	return n, nil
}
