package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// defaultWeftdAddr is weftd's admin address (Istio's istiod monitoring
// port).
const defaultWeftdAddr = "127.0.0.1:15014"

// maxAdminAnswer bounds what commands read of one admin answer.
const maxAdminAnswer = 256 << 20

// adminClient talks to weftd's admin HTTP API. Every command that needs
// weftd gets one from addWeftdFlag.
type adminClient struct {
	addr    string
	timeout time.Duration
}

// addWeftdFlag adds --weftd and --timeout to cmd and returns the client
// they configure.
func addWeftdFlag(cmd *cobra.Command) *adminClient {
	c := &adminClient{}
	cmd.Flags().StringVar(&c.addr, "weftd", defaultWeftdAddr, "weftd admin address (host:port or http://host:port)")
	cmd.Flags().DurationVar(&c.timeout, "timeout", 10*time.Second, "how long to wait for weftd")
	return c
}

// url returns the address of path on weftd.
func (c *adminClient) url(path string) string {
	base := c.addr
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		base = "http://" + base
	}
	return strings.TrimSuffix(base, "/") + path
}

// do sends a request and returns the status and body of the answer.
func (c *adminClient) do(ctx context.Context, method, path, contentType string, body []byte) (int, []byte, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("--weftd %q: %v", c.addr, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := (&http.Client{Timeout: c.timeout}).Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("cannot reach weftd at %s (is it running? set --weftd): %v", c.addr, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminAnswer))
	if err != nil {
		return 0, nil, fmt.Errorf("reading weftd's answer to %s: %v", path, err)
	}
	return resp.StatusCode, data, nil
}

// getJSON fetches path and decodes its JSON body into v. A non-2xx answer
// becomes an error carrying weftd's message.
func (c *adminClient) getJSON(ctx context.Context, path string, v any) error {
	code, body, err := c.do(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return err
	}
	if code/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("weftd: %s", e.Error)
		}
		return fmt.Errorf("weftd at %s answered %d to %s", c.addr, code, path)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("weftd at %s: decoding its answer to %s: %v", c.addr, path, err)
	}
	return nil
}
