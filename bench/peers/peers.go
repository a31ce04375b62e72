// Package peers writes equivalent configurations for the proxies weft-proxy
// is compared with (nginx, haproxy, Caddy): one worker process or thread,
// no access logs, keep-alive to the upstream, listening on one loopback
// port and forwarding everything to the benchmark backend.
package peers

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Mode is what the proxy carries.
type Mode int

// Modes.
const (
	// HTTP1 is HTTP/1.1 in and out.
	HTTP1 Mode = iota
	// H2C is HTTP/2 with prior knowledge from the client, HTTP/1.1 to the
	// upstream.
	H2C
	// GRPC is h2c in and out.
	GRPC
	// TCP is a plain TCP proxy.
	TCP
)

func (m Mode) String() string {
	return [...]string{"http1", "h2c", "grpc", "tcp"}[m]
}

// Spec is one proxy configuration to write.
type Spec struct {
	Mode     Mode
	Listen   string // host:port the proxy listens on
	Upstream string // host:port of the backend
	Dir      string // working directory for config, pid and error log
}

// Command is how to start a configured peer.
type Command struct {
	Path string
	Args []string
	Env  []string
}

// StreamModule is where Debian installs nginx's stream module.
const StreamModule = "/usr/lib/nginx/modules/ngx_stream_module.so"

// Nginx writes nginx.conf for s: one process (master_process off, so the
// process measured is the one doing the work), access_log off, an
// upstream keepalive pool, and long keep-alive on both sides.
func Nginx(bin string, s Spec) (Command, error) {
	d := s.Dir
	var b strings.Builder
	if s.Mode == TCP {
		fmt.Fprintf(&b, "load_module %s;\n", StreamModule)
	}
	fmt.Fprintf(&b, `daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
`, d)
	if s.Mode == TCP {
		fmt.Fprintf(&b, `stream {
    upstream backend { server %s; }
    server { listen %s; proxy_pass backend; }
}
`, s.Upstream, s.Listen)
	} else {
		listen := s.Listen
		if s.Mode != HTTP1 {
			listen += " http2"
		}
		pass := `proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection "";`
		if s.Mode == GRPC {
			pass = "grpc_pass grpc://backend;"
		}
		fmt.Fprintf(&b, `http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    http2_max_requests 10000000;
    upstream backend {
        server %[2]s;
        keepalive 128;
        keepalive_requests 10000000;
        keepalive_timeout 300s;
    }
    server {
        listen %[3]s;
        location / { %[4]s }
    }
}
`, d, s.Upstream, listen, pass)
	}
	conf := filepath.Join(d, "nginx.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return Command{}, err
	}
	return Command{Path: bin, Args: []string{"-p", d, "-c", conf}}, nil
}

// HAProxy writes haproxy.cfg for s: nbthread 1, no log directive (so no
// logs), http-reuse always to keep upstream connections, "proto h2" for
// h2c and gRPC.
func HAProxy(bin string, s Spec) (Command, error) {
	mode, bind, server := "http", s.Listen, s.Upstream
	switch s.Mode {
	case H2C:
		bind += " proto h2"
	case GRPC:
		bind += " proto h2"
		server += " proto h2"
	case TCP:
		mode = "tcp"
	}
	cfg := fmt.Sprintf(`global
    nbthread 1
    maxconn 4096
    pidfile %s/haproxy.pid
defaults
    mode %s
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
frontend fe
    bind %s
    default_backend be
backend be
`, s.Dir, mode, bind)
	if mode == "http" {
		cfg += "    http-reuse always\n"
	}
	cfg += fmt.Sprintf("    server s1 %s\n", server)
	path := filepath.Join(s.Dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return Command{}, err
	}
	return Command{Path: bin, Args: []string{"-db", "-f", path}}, nil
}

// Caddy writes caddy.json for s: admin endpoint and automatic HTTPS off,
// no access logs (Caddy's default), reverse_proxy with an idle pool of
// upstream connections. Caddy's standard build has no TCP proxy (that is
// the caddy-l4 plugin), so TCP is an error.
func Caddy(bin string, s Spec) (Command, error) {
	if s.Mode == TCP {
		return Command{}, fmt.Errorf("caddy's standard build has no TCP proxy (needs the caddy-l4 plugin)")
	}
	versions := []string{"1.1"}
	if s.Mode == GRPC {
		versions = []string{"h2c"}
	}
	cfg := map[string]any{
		"admin":   map[string]any{"disabled": true},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"bench": map[string]any{
			"listen":          []string{s.Listen},
			"protocols":       []string{"h1", "h2c"},
			"automatic_https": map[string]any{"disable": true},
			"routes": []any{map[string]any{"handle": []any{map[string]any{
				"handler":   "reverse_proxy",
				"upstreams": []any{map[string]any{"dial": s.Upstream}},
				"transport": map[string]any{
					"protocol":   "http",
					"versions":   versions,
					"keep_alive": map[string]any{"enabled": true, "max_idle_conns_per_host": 128, "idle_timeout": "300s"},
				},
			}}}},
		}}}},
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return Command{}, err
	}
	path := filepath.Join(s.Dir, "caddy.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return Command{}, err
	}
	return Command{Path: bin, Args: []string{"run", "--config", path}, Env: []string{"HOME=" + s.Dir, "XDG_DATA_HOME=" + s.Dir, "XDG_CONFIG_HOME=" + s.Dir}}, nil
}
