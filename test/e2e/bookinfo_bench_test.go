package e2e

import (
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkDemoStart measures `weft demo` from process start until the
// product page renders through the gateway (the summary is printed only
// then): weftd, 10 proxies and 8 applications. Stopping is not timed.
func BenchmarkDemoStart(b *testing.B) {
	bin := buildDemoBinaries(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := startDemo(b, bin)
		b.StopTimer()
		if err := syscall.Kill(-d.cmd.Process.Pid, syscall.SIGINT); err != nil {
			b.Fatal(err)
		}
		select {
		case <-d.exited:
		case <-time.After(30 * time.Second):
			b.Fatal("weft demo did not stop")
		}
		if d.exitErr != nil {
			b.Fatalf("weft demo: %v", d.exitErr)
		}
		b.StartTimer()
	}
}

// BenchmarkProductPage measures one product page view through the mesh:
// gateway -> productpage sidecar -> productpage, which calls details and
// reviews (and reviews v2/v3 call ratings) through their sidecars.
func BenchmarkProductPage(b *testing.B) {
	bin := buildDemoBinaries(b)
	d := startDemo(b, bin)
	client := &http.Client{Timeout: 10 * time.Second}
	url := "http://" + d.gateway + "/productpage"
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Book Reviews") {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
