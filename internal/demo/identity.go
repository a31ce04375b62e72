package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// workloadIdentity gives a proxy its mesh identity, as the sidecar
// injector and pilot-agent do in Istio: a bootstrap token for the
// proxy's service account from weftd's admin API, written next to its
// bootstrap file (0600), and the bootstrap's "ca" section pointing at
// weftd's certificate service. With identities the demo's traffic between
// sidecars is mutual TLS (PeerAuthentication PERMISSIVE by default). It
// returns nil for a proxy without a service account.
func (d *Demo) workloadIdentity(bootDir string, n proxyNode) (map[string]any, error) {
	if n.sa == "" || n.namespace == "" {
		return nil, nil
	}
	u := fmt.Sprintf("http://%s/api/v1/tokens?namespace=%s&serviceAccount=%s", d.info.WeftdAdmin, url.QueryEscape(n.namespace), url.QueryEscape(n.sa))
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Post(u, "", nil)
	if err != nil {
		return nil, fmt.Errorf("%s: bootstrap token: %w", n.name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	var tok struct{ Identity, Token, Error string }
	if err := json.Unmarshal(body, &tok); err != nil || resp.StatusCode != http.StatusOK || tok.Token == "" {
		return nil, fmt.Errorf("%s: bootstrap token from weftd: %s %s", n.name, resp.Status, body)
	}
	file := filepath.Join(bootDir, n.name+".token")
	if err := os.WriteFile(file, []byte(tok.Token), 0o600); err != nil {
		return nil, err
	}
	return map[string]any{
		"address":    hostPort("127.0.0.1", uint32(d.opts.SecureXDSPort)),
		"serverName": "localhost",
		"rootURL":    "http://" + d.info.WeftdAdmin + "/api/v1/ca/root",
		"tokenFile":  file,
	}, nil
}
