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

// defaultWeftdAddr is where commands find weftd's admin API.
const defaultWeftdAddr = "127.0.0.1:15014"

// adminClient talks to weftd's admin HTTP API.
type adminClient struct {
	addr string
	http *http.Client
}

// addWeftdFlag adds --weftd to cmd and returns the client it configures.
func addWeftdFlag(cmd *cobra.Command) *adminClient {
	c := &adminClient{http: &http.Client{Timeout: 30 * time.Second}}
	cmd.Flags().StringVar(&c.addr, "weftd", defaultWeftdAddr, "address of weftd's admin API (host:port)")
	return c
}

func (c *adminClient) url(path string) string {
	addr := c.addr
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return strings.TrimSuffix(addr, "/") + path
}

// getJSON fetches path and decodes its JSON body into v. A non-2xx answer
// becomes an error carrying weftd's message.
func (c *adminClient) getJSON(path string, v any) error {
	resp, err := c.http.Get(c.url(path))
	if err != nil {
		return fmt.Errorf("cannot reach weftd at %s (is it running? see --weftd): %w", c.addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("weftd: %s", e.Error)
		}
		return fmt.Errorf("weftd answered %s for %s", resp.Status, path)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decoding weftd's answer to %s: %w", path, err)
	}
	return nil
}
