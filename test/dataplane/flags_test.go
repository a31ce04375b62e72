package dataplane

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

// TestResponseFlagNR: a VirtualService whose only route matches /only
// leaves other paths without a route: Envoy answers 404 with flag NR and
// nothing reaches the backend.
func TestResponseFlagNR(t *testing.T) {
	_, echo, client := echoMesh(t, `hosts: [%[1]s]
http:
- match: [{uri: {prefix: /only}}]
  route: [{destination: {host: %[1]s, subset: v1}}]
`)
	if r := client.Get(t, echo.URL("/only")); r.Status != http.StatusOK {
		t.Fatalf("/only: %d %q", r.Status, r.Body)
	}
	r := client.Get(t, echo.URL("/elsewhere"))
	if r.Status != http.StatusNotFound || r.Echo != nil {
		t.Errorf("/elsewhere: %d %q, want a 404 from the proxy", r.Status, r.Body)
	}
	if flags := client.WaitAccessLog(t, "/elsewhere").Str("response_flags"); flags != "NR" {
		t.Errorf("response_flags %q, want NR", flags)
	}
}

// TestResponseFlagDC: a client that gives up while the upstream is still
// working is logged with flag DC (downstream connection termination), and
// the upstream request is cancelled rather than left to finish.
func TestResponseFlagDC(t *testing.T) {
	_, echo, client := echoMesh(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", echo.URL("/hang-up"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(HeaderDelay, "3s")
	resp, err := client.HTTPClient().Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("the request finished (%d) although the client gave up", resp.StatusCode)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("client error %v, want its own deadline", err)
	}
	e := client.WaitAccessLog(t, "/hang-up")
	if flags := e.Str("response_flags"); flags != "DC" {
		t.Errorf("response_flags %q, want DC", flags)
	}
	if d, _ := e["duration"].(float64); d >= 3000 {
		t.Errorf("logged after %v ms: the proxy waited for the upstream instead of cancelling it", e["duration"])
	}
}
