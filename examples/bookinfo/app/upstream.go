package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ProxyFunc chooses the HTTP proxy for an outgoing request, like
// http.Transport.Proxy; nil means no proxy.
type ProxyFunc func(*http.Request) (*url.URL, error)

// NewTransport returns the transport the services use for their calls. Its
// proxy is proxy, or http.ProxyFromEnvironment when proxy is nil, so that
// HTTP_PROXY sends the calls through a local mesh proxy. Go never proxies
// requests to loopback hosts, which is why the services call each other by
// service name.
func NewTransport(proxy ProxyFunc) *http.Transport {
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
	}
	return &http.Transport{
		Proxy:                 proxy,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       30 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// parseBaseURL checks a service base URL such as http://details:9080: an http
// URL with a host and no path, query or fragment.
func parseBaseURL(flag, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	switch {
	case u.Scheme != "http":
		return nil, fmt.Errorf("%s: %q: scheme must be http", flag, raw)
	case u.Host == "":
		return nil, fmt.Errorf("%s: %q: missing host", flag, raw)
	case strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return nil, fmt.Errorf("%s: %q: want only scheme, host and port, like http://details:9080", flag, raw)
	}
	u.Path = ""
	return u, nil
}

// upstream is another bookinfo service this one calls.
type upstream struct {
	name    string // service name, e.g. "details"
	base    *url.URL
	client  *http.Client
	timeout time.Duration
}

// result is what one call to an upstream gave: a status code (500 when no
// response arrived, as the originals report) and, when the status is 200, the
// JSON body.
type result struct {
	status int
	body   json.RawMessage
	err    error
}

func (r result) ok() bool { return r.status == http.StatusOK && r.err == nil }

// get calls GET <base>/<name>/<id> with the given headers and the upstream's
// timeout. A non-JSON 200 answer counts as a failure with status 500.
func (u *upstream) get(ctx context.Context, id string, hdr http.Header) result {
	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	target := u.base.JoinPath(u.name, url.PathEscape(id))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return result{status: http.StatusInternalServerError, err: err}
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", "application/json")
	resp, err := u.client.Do(req)
	if err != nil {
		return result{status: http.StatusInternalServerError, err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return result{status: http.StatusInternalServerError, err: fmt.Errorf("reading %s response: %w", u.name, err)}
	}
	if resp.StatusCode != http.StatusOK {
		return result{status: resp.StatusCode, err: fmt.Errorf("%s answered %s", u.name, resp.Status)}
	}
	if !json.Valid(body) {
		return result{status: http.StatusInternalServerError, err: errors.New(u.name + " answered 200 with a body that is not JSON")}
	}
	return result{status: http.StatusOK, body: body}
}
