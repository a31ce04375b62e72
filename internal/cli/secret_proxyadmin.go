package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Secrets live in the proxy (its agent role issues and rotates them), not
// in weftd, so `weft proxy-config secret PROXY --proxy-admin ADDR` reads
// them from the proxy's own admin /config_dump (Envoy's SecretsConfigDump,
// private keys redacted) instead of weftd's debug API.

const secretsDumpType = "type.googleapis.com/envoy.admin.v3.SecretsConfigDump"

// addProxyAdminFlag adds --proxy-admin to the secret subcommand.
func addProxyAdminFlag(c *cobra.Command) *string {
	return c.Flags().String("proxy-admin", "", "read the secrets from this weft-proxy admin address (host:port, e.g. 127.0.0.1:15000) instead of weftd")
}

// proxyAdminSecrets fetches the proxy's /config_dump and returns the
// secrets of its SecretsConfigDump as protojson resources.
func proxyAdminSecrets(addr string) ([]json.RawMessage, error) {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(strings.TrimSuffix(addr, "/") + "/config_dump")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s/config_dump: %s: %s", addr, resp.Status, strings.TrimSpace(string(body)))
	}
	var dump struct {
		Configs []json.RawMessage `json:"configs"`
	}
	if err := json.Unmarshal(body, &dump); err != nil {
		return nil, fmt.Errorf("%s/config_dump: %v", addr, err)
	}
	var out []json.RawMessage
	for _, raw := range dump.Configs {
		var sd struct {
			Type    string `json:"@type"`
			Secrets []struct {
				Secret json.RawMessage `json:"secret"`
			} `json:"dynamicActiveSecrets"`
		}
		if err := json.Unmarshal(raw, &sd); err != nil || sd.Type != secretsDumpType {
			continue
		}
		for _, s := range sd.Secrets {
			out = append(out, s.Secret)
		}
	}
	return out, nil
}

// writeResources prints resources as -o json|yaml or as the type's table.
func writeResources(w io.Writer, output, typ string, raw []json.RawMessage) error {
	switch output {
	case "json", "yaml":
		return writeStructured(w, output, raw)
	case "", "table":
		return writeConfigTable(w, typ, raw)
	}
	return &usageError{msg: fmt.Sprintf("unknown output format %q: want table, json or yaml", output)}
}
