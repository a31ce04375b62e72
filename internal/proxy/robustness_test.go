package proxy

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

// TestMalformedRequestsNeverReachUpstream sends malformed or ambiguous
// HTTP/1.1 requests over raw TCP: each must get a 4xx from the proxy and
// none may reach the upstream, which counts what it receives.
func TestMalformedRequestsNeverReachUpstream(t *testing.T) {
	up := newBackend(t, "up", nil)
	lis := xdstest.FreeAddr(t)
	res := xdstest.Resources{
		Clusters:  []*clusterT{xdstest.StaticCluster("outbound|80||up", up.addr())},
		Listeners: []*listenerv3.Listener{xdstest.HTTPListener("0.0.0.0_80", lis, xdstest.HCM("80", "80"))},
		Routes:    []*routeT{xdstest.RouteConfig("80", "outbound|80||up")},
	}
	h := newHarness(t, res)

	big := strings.Repeat("a", 70<<10)
	cases := []struct{ name, req string }{
		{"CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"TE and CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"},
		{"duplicate differing CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"},
		{"CL list differing", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!"},
		{"negative CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"},
		{"plus CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello"},
		{"hex CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello"},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n"},
		{"bare LF line ends", "GET / HTTP/1.1\nHost: a\n\n"},
		{"bare LF in one header", "GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n"},
		{"bare CR", "GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n"},
		{"invalid chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"},
		{"chunk size overflow", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n"},
		{"negative chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"},
		{"chunk without CRLF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"},
		{"unknown transfer coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"},
		{"chunked not last", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"},
		{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"oversized headers", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + big + "\r\n\r\n"},
		{"Host disagrees with absolute-form", "GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"userinfo in absolute-form", "GET http://u@a/ HTTP/1.1\r\nHost: u@a\r\n\r\n"},
		{"missing Host", "GET / HTTP/1.1\r\n\r\n"},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
		{"invalid Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"},
		{"space before colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n"},
		{"NUL in header value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n"},
		{"invalid header name", "GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n"},
		{"bad version", "GET / HTTP/1.2\r\nHost: a\r\n\r\n"},
		{"HTTP/0.9 style", "GET /\r\n\r\n"},
		{"extra spaces in request line", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"non-ASCII target", "GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"invalid method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := up.hits.Load()
			status := rawStatus(t, lis, c.req)
			if status < 400 || status > 499 && status != 501 {
				t.Errorf("status %d, want 4xx", status)
			}
			if got := up.hits.Load(); got != before {
				t.Errorf("request reached the upstream (%d hits)", got-before)
			}
		})
	}
	// The forward proxy port validates the same way.
	fwd := h.p.Addr("forward")
	for _, req := range []string{
		"GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"GET http://a/ HTTP/1.1\nHost: a\n\n",
	} {
		before := up.hits.Load()
		if s := rawStatus(t, fwd, req); s != 400 || up.hits.Load() != before {
			t.Errorf("forward proxy %q: status %d, upstream hits %d", req, s, up.hits.Load()-before)
		}
	}
	// Sanity: well-formed requests, chunked and pipelined, do go through.
	for _, good := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n",
	} {
		if s := rawStatus(t, lis, good); s != 200 {
			t.Errorf("%q: status %d, want 200", good, s)
		}
	}
}

// rawStatus writes req on a new connection and returns the status code,
// or 0 if the connection was closed without a response.
func rawStatus(t *testing.T, addr, req string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		return 0
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
