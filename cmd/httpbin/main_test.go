package main_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestBinaryServesAndLogs builds cmd/httpbin, runs it on loopback, and checks
// that it answers, logs one JSON line per request and stops on SIGTERM.
func TestBinaryServesAndLogs(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("skipping: needs the go tool to build cmd/httpbin:", err)
	}
	bin := filepath.Join(t.TempDir(), "httpbin")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--name", "httpbin-v2", "--hostname", "v2-host")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	lines := make(chan map[string]any, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				m = map[string]any{"unparsed": sc.Text()}
			}
			lines <- m
		}
	}()
	next := func() map[string]any {
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatal("httpbin exited")
			}
			return m
		case <-time.After(30 * time.Second):
			t.Fatal("httpbin logged nothing")
		}
		return nil
	}
	first := next()
	addr, _ := first["addr"].(string)
	if first["msg"] != "listening" || addr == "" {
		t.Fatalf("first line %v", first)
	}
	for _, path := range []string{"/status/503", "/hostname"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		l := next()
		if l["msg"] != "request" || l["service"] != "httpbin-v2" || l["path"] != path || l["status"] != float64(resp.StatusCode) {
			t.Errorf("log line for %s (status %d): %v", path, resp.StatusCode, l)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if l := next(); l["msg"] != "stopped" {
		t.Errorf("last line %v", l)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("httpbin exited with %v", err)
	}
}
