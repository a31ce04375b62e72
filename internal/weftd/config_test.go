package weftd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := LoadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.XDSPort != 15010 || cfg.AdminPort != 15014 {
		t.Errorf("ports = %d/%d, want Istio's 15010/15014", cfg.XDSPort, cfg.AdminPort)
	}
	if time.Duration(cfg.ShutdownTimeout) != 5*time.Second {
		t.Errorf("shutdown timeout = %s, want 5s", cfg.ShutdownTimeout)
	}
}

func TestLoadConfigFileThenFlags(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "weftd.yaml")
	if err := os.WriteFile(file, []byte("xdsPort: 16010\nadminPort: 16014\ndebounce: 250ms\nlog:\n  format: json\n  level: debug\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig([]string{"--config", file, "--admin-port", "17014", "--config-dir", dir})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.XDSPort != 16010 {
		t.Errorf("xdsPort = %d, want 16010 from the file", cfg.XDSPort)
	}
	if cfg.AdminPort != 17014 {
		t.Errorf("adminPort = %d, want 17014: flags override the file", cfg.AdminPort)
	}
	if time.Duration(cfg.Debounce) != 250*time.Millisecond || cfg.Log.Format != "json" || cfg.ConfigDir != dir {
		t.Errorf("config = %+v", cfg)
	}
}

func TestLoadConfigErrorsNameTheField(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "f")
	os.WriteFile(notDir, nil, 0o644)
	badFile := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badFile, []byte("xdsPrt: 1\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--xds-port", "70000"}, "xdsPort: 70000"},
		{[]string{"--admin-port", "15010"}, "adminPort: 15010 is also the xdsPort"},
		{[]string{"--config-dir", notDir}, "configDir: " + notDir + " is not a directory"},
		{[]string{"--config-dir", filepath.Join(dir, "missing")}, "configDir:"},
		{[]string{"--log-format", "xml"}, `log.format: "xml"`},
		{[]string{"--debounce", "2s", "--max-debounce", "1s"}, "maxDebounce: 1s is shorter than debounce 2s"},
		{[]string{"--config", badFile}, `unknown field "xdsPrt"`},
		{[]string{"stray"}, "unexpected arguments: stray"},
	} {
		_, err := LoadConfig(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadConfig(%q) error = %v, want it to contain %q", tc.args, err, tc.want)
		}
	}
}
