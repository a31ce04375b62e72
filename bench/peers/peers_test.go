package peers

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func specs(t *testing.T) []Spec {
	var out []Spec
	for _, m := range []Mode{HTTP1, H2C, GRPC, TCP} {
		out = append(out, Spec{Mode: m, Listen: "127.0.0.1:18080", Upstream: "127.0.0.1:19090", Dir: t.TempDir()})
	}
	return out
}

func TestConfigsAreEquivalent(t *testing.T) {
	for _, s := range specs(t) {
		c, err := Nginx("nginx", s)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(filepath.Join(s.Dir, "nginx.conf"))
		conf := string(data)
		for _, want := range []string{"worker_processes 1;", "master_process off;", "127.0.0.1:19090"} {
			if !strings.Contains(conf, want) {
				t.Errorf("nginx %s: no %q", s.Mode, want)
			}
		}
		if s.Mode != TCP && (!strings.Contains(conf, "access_log off;") || !strings.Contains(conf, "keepalive 128;")) {
			t.Errorf("nginx %s: access log or upstream keepalive missing", s.Mode)
		}
		if got := strings.Contains(conf, "listen 127.0.0.1:18080 http2;"); got != (s.Mode == H2C || s.Mode == GRPC) {
			t.Errorf("nginx %s: http2 listen = %v", s.Mode, got)
		}
		if c.Args[len(c.Args)-1] != filepath.Join(s.Dir, "nginx.conf") {
			t.Errorf("nginx args %v", c.Args)
		}

		if _, err := HAProxy("haproxy", s); err != nil {
			t.Fatal(err)
		}
		data, _ = os.ReadFile(filepath.Join(s.Dir, "haproxy.cfg"))
		cfg := string(data)
		if !strings.Contains(cfg, "nbthread 1") || strings.Contains(cfg, "\n    log ") {
			t.Errorf("haproxy %s: want one thread and no log:\n%s", s.Mode, cfg)
		}
		if got := strings.Contains(cfg, "server s1 127.0.0.1:19090 proto h2"); got != (s.Mode == GRPC) {
			t.Errorf("haproxy %s: h2 upstream = %v", s.Mode, got)
		}

		_, err = Caddy("caddy", s)
		if (err != nil) != (s.Mode == TCP) {
			t.Errorf("caddy %s: err %v", s.Mode, err)
		}
	}
}

// TestPeersAcceptConfigs has each installed peer check the configurations.
func TestPeersAcceptConfigs(t *testing.T) {
	check := func(name string, args func(s Spec, c Command) []string, gen func(string, Spec) (Command, error)) {
		bin, err := exec.LookPath(name)
		if err != nil {
			t.Logf("%s not installed: not checked (bench/install-peers.sh installs it)", name)
			return
		}
		for _, s := range specs(t) {
			if s.Mode == TCP && name == "nginx" {
				if _, err := os.Stat(StreamModule); err != nil {
					continue
				}
			}
			c, err := gen(bin, s)
			if err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bin, args(s, c)...).CombinedOutput(); err != nil {
				t.Errorf("%s rejects its %s config: %v\n%s", name, s.Mode, err, out)
			}
		}
	}
	check("nginx", func(s Spec, c Command) []string { return append([]string{"-t", "-q"}, c.Args...) }, Nginx)
	check("haproxy", func(s Spec, c Command) []string {
		return []string{"-c", "-q", "-f", filepath.Join(s.Dir, "haproxy.cfg")}
	}, HAProxy)
	home, _ := os.UserHomeDir()
	caddy := filepath.Join(home, ".cache/weft-bench/bin/caddy-v2.11.9")
	if _, err := os.Stat(caddy); err == nil {
		for _, s := range specs(t) {
			if s.Mode == TCP {
				continue
			}
			if _, err := Caddy(caddy, s); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(caddy, "validate", "--config", filepath.Join(s.Dir, "caddy.json"))
			cmd.Env = append(os.Environ(), "HOME="+s.Dir, "XDG_DATA_HOME="+s.Dir, "XDG_CONFIG_HOME="+s.Dir)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("caddy rejects its %s config: %v\n%s", s.Mode, err, out)
			}
		}
	}
}
