package mtls

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWeftProxyBinaryFlags runs the server sidecar as a weft-proxy
// process configured by its command-line flags (--ca-address,
// --ca-root-url, --token-file, --cert-ttl) and checks that mesh traffic to
// it is mTLS with its identity, and that it renews its short-lived
// certificate.
func TestWeftProxyBinaryFlags(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found: cannot build weft-proxy")
	}
	bin := filepath.Join(t.TempDir(), "weft-proxy")
	if out, err := exec.Command(goBin, "build", "-o", bin, "github.com/weftmesh/weft/cmd/weft-proxy").CombinedOutput(); err != nil {
		t.Fatalf("go build weft-proxy: %v\n%s", err, out)
	}
	m := startMeshWithoutServer(t)

	resp, err := http.Post("http://"+m.admin+"/api/v1/tokens?namespace=default&serviceAccount=reviews", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	tokenFile := filepath.Join(m.dir, "reviews.token")
	os.WriteFile(tokenFile, []byte(tok.Token), 0o600)
	boot := filepath.Join(m.dir, "reviews-bootstrap.yaml")
	os.WriteFile(boot, []byte("node:\n  metadata: {INTERCEPTION_MODE: NONE}\n"), 0o644)
	adminPort := freePort(t)
	cmd := exec.Command(bin, "--bootstrap", boot,
		"--xds-address", m.weftd.XDSAddr(),
		"--node-id", "sidecar~"+m.serverIP+"~reviews-v1.default~default.svc.cluster.local",
		"--namespace", "default", "--workload", "reviews-v1", "--service-account", "reviews",
		"--labels", "app=reviews,version=v1", "--instance-ips", m.serverIP,
		"--admin-port", fmt.Sprint(adminPort), "--ready-port", "-1", "--stats-port", "-1",
		"--ca-address", m.weftd.SecureAddr(), "--ca-server-name", "localhost",
		"--ca-root-url", "http://"+m.admin+"/api/v1/ca/root", "--token-file", tokenFile, "--cert-ttl", "4s")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("weft-proxy logs:\n%s", logs.String())
		}
	})

	var body string
	m.eventually("the mesh reaches the weft-proxy process", func() error {
		body, err = m.get("/")
		return err
	})
	if !strings.Contains(body, "By="+serverID+";") || xfccURI(body) != clientID {
		t.Fatalf("backend got x-forwarded-client-cert %q", body)
	}
	// /config_dump of the process: identity, and a renewal of its 4 s
	// certificate (renewed at about half its life).
	serial := func() string {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/config_dump", adminPort))
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		var dump struct {
			Configs []struct {
				Type    string `json:"@type"`
				Secrets []struct {
					Name, VersionInfo string
				} `json:"dynamicActiveSecrets"`
			} `json:"configs"`
		}
		json.NewDecoder(resp.Body).Decode(&dump)
		for _, c := range dump.Configs {
			for _, s := range c.Secrets {
				if s.Name == "default" {
					return s.VersionInfo
				}
			}
		}
		return ""
	}
	first := serial()
	if first == "" {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/config_dump", adminPort))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Logf("config_dump: %.2000s", b)
		}
		t.Fatalf("weft-proxy's /config_dump has no \"default\" secret (%v)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for ctx.Err() == nil && serial() == first {
		time.Sleep(200 * time.Millisecond)
	}
	if serial() == first {
		t.Fatalf("certificate %s requested with --cert-ttl 4s was not renewed within 15 s", first)
	}
	if _, err := m.get("/"); err != nil {
		t.Errorf("mesh request after the renewal: %v", err)
	}
}
