// Package procstat reads a process's CPU time and memory from Linux's
// /proc: utime+stime from /proc/<pid>/stat and VmHWM/VmRSS from
// /proc/<pid>/status.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ClockTick is USER_HZ, the unit of utime and stime. It is 100 on every
// Linux architecture Go supports.
const ClockTick = 100

// Sample is one reading of a process.
type Sample struct {
	// CPU is user plus system time consumed so far.
	CPU time.Duration
	// HWM is the peak resident set size (VmHWM) in bytes.
	HWM int64
	// RSS is the current resident set size (VmRSS) in bytes.
	RSS int64
}

// Read samples process pid.
func Read(pid int) (Sample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Sample{}, err
	}
	cpu, err := ParseStat(stat)
	if err != nil {
		return Sample{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Sample{}, err
	}
	hwm, rss, err := ParseStatus(status)
	if err != nil {
		return Sample{}, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	return Sample{CPU: cpu, HWM: hwm, RSS: rss}, nil
}

// ParseStat returns utime+stime from the contents of /proc/<pid>/stat.
// The command name (field 2) may contain spaces and parentheses, so the
// fields are counted from the last ')'.
func ParseStat(data []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, errors.New("no ')' after the command name")
	}
	// After ")": field 3 (state) is rest[0]; utime is field 14, stime 15.
	rest := strings.Fields(string(data[i+1:]))
	if len(rest) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 13", len(rest))
	}
	var ticks uint64
	for _, f := range rest[11:13] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("utime/stime %q: %w", f, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / ClockTick, nil
}

// ParseStatus returns VmHWM and VmRSS in bytes from the contents of
// /proc/<pid>/status.
func ParseStatus(data []byte) (hwm, rss int64, err error) {
	found := 0
	for line := range strings.SplitSeq(string(data), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmHWM" && key != "VmRSS") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("%s: unexpected value %q", key, strings.TrimSpace(val))
		}
		kb, perr := strconv.ParseInt(f[0], 10, 64)
		if perr != nil {
			return 0, 0, fmt.Errorf("%s: %w", key, perr)
		}
		if key == "VmHWM" {
			hwm = kb << 10
		} else {
			rss = kb << 10
		}
		found++
	}
	if found != 2 {
		return 0, 0, errors.New("VmHWM or VmRSS missing (kernel thread or exited process?)")
	}
	return hwm, rss, nil
}

// Group sums samples of several processes (a proxy with workers, or two
// sidecars): CPU and RSS add up, and so do the peaks, which bounds the
// group's peak from above.
func Group(pids []int) (Sample, error) {
	var sum Sample
	for _, pid := range pids {
		s, err := Read(pid)
		if err != nil {
			return Sample{}, err
		}
		sum.CPU += s.CPU
		sum.HWM += s.HWM
		sum.RSS += s.RSS
	}
	return sum, nil
}
