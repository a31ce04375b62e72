package weftd

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/model"
)

// startServer runs a weftd server on free loopback ports without a config
// directory and returns its admin address.
func startServer(t *testing.T) (*Server, string) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ListenAddress, cfg.AdminPort, cfg.XDSPort, cfg.SecureXDSPort = "127.0.0.1", 0, 0, 0
	cfg.CA.Dir = t.TempDir()
	s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s, s.AdminAddr()
}

func post(t *testing.T, url, body string) (int, ApplyResult) {
	t.Helper()
	resp, err := http.Post(url, "application/yaml", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res ApplyResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatalf("decode answer: %v", err)
	}
	return resp.StatusCode, res
}

const twoObjects = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v1}}]}]
`

func waitSnapshot(t *testing.T, s *Server, cond func(*model.Snapshot) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond(s.Store().Snapshot()) {
		if time.Now().After(deadline) {
			t.Fatal("snapshot never reached the expected state")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAPIApplyAndDelete(t *testing.T) {
	s, admin := startServer(t)
	vsKey := model.Key{Source: APISourceName, Kind: model.KindVirtualService, Namespace: "default", Name: "reviews"}

	code, res := post(t, "http://"+admin+"/api/v1/apply?file=reviews.yaml", twoObjects)
	if code != 200 || len(res.Applied) != 2 {
		t.Fatalf("apply = %d %+v, want 200 with 2 objects", code, res)
	}
	waitSnapshot(t, s, func(snap *model.Snapshot) bool { return snap.Get(vsKey) != nil })

	// A broken object rejects the whole request: the good one in it is not applied either.
	broken := strings.Replace(twoObjects, "name: reviews}\nspec:\n  hosts", "name: ratings}\nspec:\n  hostz", 1)
	broken = strings.Replace(broken, "name: reviews, namespace: default}", "name: details, namespace: default}", 1)
	code, res = post(t, "http://"+admin+"/api/v1/apply?file=broken.yaml", broken)
	if code != http.StatusUnprocessableEntity || !res.Diagnostics.HasErrors() || res.Error == "" {
		t.Fatalf("broken apply = %d %+v, want 422 with errors", code, res)
	}
	msg := res.Diagnostics[0].String()
	if !strings.Contains(msg, "broken.yaml") || !strings.Contains(msg, "hostz") {
		t.Errorf("diagnostic %q does not name the file and field", msg)
	}
	time.Sleep(50 * time.Millisecond)
	if snap := s.Store().Snapshot(); snap.Get(model.Key{Source: APISourceName, Kind: model.KindDestinationRule, Namespace: "default", Name: "details"}) != nil {
		t.Error("the valid half of a rejected apply was applied")
	}

	code, res = post(t, "http://"+admin+"/api/v1/delete", twoObjects)
	if code != 200 || len(res.Applied) != 2 {
		t.Fatalf("delete = %d %+v", code, res)
	}
	waitSnapshot(t, s, func(snap *model.Snapshot) bool { return snap.Get(vsKey) == nil })

	code, res = post(t, "http://"+admin+"/api/v1/delete", "kind: Bogus\nmetadata: {name: x}\n")
	if code != http.StatusUnprocessableEntity || !strings.Contains(res.Diagnostics[0].Message, `unknown kind "Bogus"`) {
		t.Errorf("delete of an unknown kind = %d %+v", code, res)
	}
}
