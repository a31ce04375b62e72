package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/weftd"
	"github.com/weftmesh/weft/internal/xds/loadtest"
)

// startMesh runs weftd in-process on the example configuration and
// connects two simulated proxies: productpage's sidecar, which accepts
// everything, and reviews-v1's, which rejects every route configuration.
// It returns weftd's admin address once both have their configuration.
func startMesh(t *testing.T) string {
	t.Helper()
	cfg := weftd.DefaultConfig()
	cfg.ConfigDir = root + "/examples"
	cfg.ListenAddress, cfg.AdminPort, cfg.XDSPort, cfg.SecureXDSPort = "127.0.0.1", 0, 0, 0
	cfg.CA.Dir = t.TempDir()
	s, err := weftd.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	conn, err := grpc.NewClient(s.XDSAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	node := func(app, version, ip string) *core.Node {
		return &core.Node{
			Id: "sidecar~" + ip + "~" + app + "-" + version + ".default~default.svc.cluster.local",
			Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
				"NAMESPACE":     structpb.NewStringValue("default"),
				"WORKLOAD_NAME": structpb.NewStringValue(app + "-" + version),
				"LABELS": structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
					"app": structpb.NewStringValue(app), "version": structpb.NewStringValue(version)}}),
			}},
		}
	}
	good := &loadtest.Client{Node: node("productpage", "v1", "127.0.0.10")}
	bad := &loadtest.Client{Node: node("reviews", "v1", "127.0.0.30"), Reject: func(typeURL string, _ []*anypb.Any) error {
		if strings.HasSuffix(typeURL, "RouteConfiguration") {
			return errors.New("route rejected by the test")
		}
		return nil
	}}
	for _, c := range []*loadtest.Client{good, bad} {
		go c.Run(ctx, conn)
	}
	t.Cleanup(func() { cancel(); conn.Close(); <-done })
	deadline := time.Now().Add(20 * time.Second)
	for good.Count("type.googleapis.com/envoy.config.route.v3.RouteConfiguration") == 0 || bad.Count("type.googleapis.com/envoy.config.route.v3.RouteConfiguration") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("simulated proxies never got route configurations")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s.AdminAddr()
}

func TestProxyStatusAndConfig(t *testing.T) {
	admin := startMesh(t)

	// The table: one line per proxy, the accepting one synced, the
	// rejecting one NACKED on RDS. Wait for exactly that (each row on its
	// own: a count of SYNCED over the whole table can be reached while
	// productpage still waits for an ACK); the bound only matters when it
	// never comes.
	rowsWant := func(out string) error {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") {
			return errors.New("want a header and two rows")
		}
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			if len(f) < 6 {
				return fmt.Errorf("row %q: too few columns", l)
			}
			switch f[0] {
			case "productpage-v1.default":
				if f[2] != "SYNCED" || f[3] != "SYNCED" || f[4] != "SYNCED" || f[5] != "SYNCED" {
					return fmt.Errorf("productpage row %q: want CDS LDS EDS RDS synced", l)
				}
			case "reviews-v1.default":
				if f[5] != "NACKED" {
					return fmt.Errorf("reviews row %q: want RDS NACKED", l)
				}
			default:
				return fmt.Errorf("unexpected row %q", l)
			}
		}
		return nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, out, _ := run(t, "", "proxy-status", "--weftd", admin)
		if code != 0 {
			t.Fatalf("proxy-status exit %d: %s", code, out)
		}
		err := rowsWant(out)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy-status after 30s: %v; table:\n%s", err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The detail of the rejecting proxy quotes its reason.
	code, out, _ := run(t, "", "proxy-status", "reviews-v1.default", "--weftd", admin)
	if code != 0 || !strings.Contains(out, "route rejected by the test") {
		t.Errorf("proxy-status detail (exit %d):\n%s", code, out)
	}

	// proxy-config tables name Istio's clusters, listeners, routes and endpoints.
	for _, tc := range []struct{ kind, want string }{
		{"clusters", "outbound|9080|v2|reviews.default.svc.cluster.local"},
		{"listeners", "Route: 9080"},
		{"routes", "reviews.default.svc.cluster.local:9080"},
		{"endpoints", "127.0.0.32:9080"},
	} {
		code, out, errOut := run(t, "", "proxy-config", tc.kind, "productpage", "--weftd", admin)
		if code != 0 || !strings.Contains(out, tc.want) {
			t.Errorf("proxy-config %s: exit %d, want %q in:\n%s%s", tc.kind, code, tc.want, out, errOut)
		}
	}
	// The cluster table parses Istio's names into columns.
	_, out, _ = run(t, "", "proxy-config", "clusters", "productpage", "--weftd", admin)
	if !hasRow(out, "reviews.default.svc.cluster.local", "9080", "v2", "OUTBOUND", "EDS") || !hasRow(out, "-", "9080", "-", "INBOUND", "STATIC") {
		t.Errorf("cluster table lacks parsed rows:\n%s", out)
	}
	code, out, _ = run(t, "", "proxy-config", "clusters", "productpage", "--weftd", admin, "-o", "json")
	var list []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) == 0 || list[0]["name"] == nil {
		t.Errorf("proxy-config -o json: exit %d, output not a JSON list of clusters:\n%.300s", code, out)
	}

	// Errors name what is wrong.
	if code, _, errOut := run(t, "", "proxy-config", "clusters", "nosuch", "--weftd", admin); code != 1 || !strings.Contains(errOut, `no connected proxy matches "nosuch"`) {
		t.Errorf("unknown proxy: exit %d, %s", code, errOut)
	}
	if code, _, errOut := run(t, "", "proxy-config", "clusters", "v1.default", "--weftd", admin); code != 1 || !strings.Contains(errOut, "matches 2 proxies") {
		t.Errorf("ambiguous proxy: exit %d, %s", code, errOut)
	}
	if code, _, errOut := run(t, "", "proxy-status", "--weftd", "127.0.0.1:1"); code != 1 || !strings.Contains(errOut, "cannot reach weftd") {
		t.Errorf("weftd down: exit %d, %s", code, errOut)
	}
}

// hasRow reports whether some line of a table starts with these fields.
func hasRow(table string, fields ...string) bool {
	for _, l := range strings.Split(table, "\n") {
		f := strings.Fields(l)
		if len(f) >= len(fields) && strings.Join(f[:len(fields)], " ") == strings.Join(fields, " ") {
			return true
		}
	}
	return false
}
