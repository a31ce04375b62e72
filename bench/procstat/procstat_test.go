package procstat

import (
	"os"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// A command name with spaces and a ')' must not shift the fields.
	line := "1234 (weft proxy) x) S 1 1234 1234 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0 12345 1000000 2000 18446744073709551615\n"
	got, err := ParseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if want := 3250 * time.Millisecond; got != want {
		t.Fatalf("cpu = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "1 (x S 1", "1 (x) S 1 2 3", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 ab 1"} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("ParseStat(%q): no error", bad)
		}
	}
}

func TestParseStatus(t *testing.T) {
	data := "Name:\tweft-proxy\nVmPeak:\t  800000 kB\nVmHWM:\t   21504 kB\nVmRSS:\t   20480 kB\nThreads:\t8\n"
	hwm, rss, err := ParseStatus([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if hwm != 21504<<10 || rss != 20480<<10 {
		t.Fatalf("hwm %d rss %d", hwm, rss)
	}
	if _, _, err := ParseStatus([]byte("Name:\tkthreadd\n")); err == nil {
		t.Error("missing fields: no error")
	}
	if _, _, err := ParseStatus([]byte("VmHWM:\t12 MB\nVmRSS:\t1 kB\n")); err == nil {
		t.Error("bad unit: no error")
	}
}

func TestReadSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc on this system")
	}
	before, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until the tick counter moves (10 ms granularity).
	deadline := time.Now().Add(5 * time.Second)
	x := 0
	for time.Now().Before(deadline) {
		for i := range 1_000_000 {
			x += i
		}
		after, err := Read(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if after.CPU > before.CPU {
			if after.HWM < after.RSS || after.RSS <= 0 {
				t.Fatalf("hwm %d < rss %d", after.HWM, after.RSS)
			}
			return
		}
	}
	t.Fatalf("CPU time did not advance (x=%d)", x)
}
