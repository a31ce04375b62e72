package upstream

import (
	"bufio"
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestWriteHeadMatchesRequestWrite checks that the lean writer sends what
// (*http.Request).Write sends for bodiless requests: the same request
// line and the same header lines (in any order).
func TestWriteHeadMatchesRequestWrite(t *testing.T) {
	mk := func(method, url string, edit func(*http.Request)) *http.Request {
		r, err := http.NewRequest(method, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(r)
		}
		return r
	}
	reqs := []*http.Request{
		mk("GET", "http://10.0.0.1:80/a/b?c=d&e=f", nil),
		mk("HEAD", "http://10.0.0.1:80/", func(r *http.Request) { r.Host = "reviews.default.svc.cluster.local:9080" }),
		mk("DELETE", "http://10.0.0.1:80/x", func(r *http.Request) { r.Close = true }),
		mk("POST", "http://10.0.0.1:80/empty", func(r *http.Request) {
			r.Header.Set("User-Agent", "  curl/8.0 ")
			r.Header["X-Multi"] = []string{"a", " b "}
			r.Header.Set("Connection", "close")
			r.Close = true
		}),
		mk("OPTIONS", "http://[fe80::1%25eth0]:8080/p%20q", func(r *http.Request) { r.Header["User-Agent"] = nil }),
		mk("GET", "http://10.0.0.1:80/", func(r *http.Request) {
			r.Host = "bücher.example:80"
			r.Header.Set("X-Request-Id", "abc")
			r.Header.Set("Host", "ignored")
			r.Header.Set("Trailer", "ignored")
		}),
		mk("GET", "http://10.0.0.1:80/", func(r *http.Request) { r.Host = "bad host\r\nX: y" }),
	}
	for _, r := range reqs {
		if !bodiless(r) {
			t.Fatalf("%s %s: not bodiless", r.Method, r.URL)
		}
		var want, got bytes.Buffer
		if err := r.Write(&want); err != nil {
			t.Fatal(err)
		}
		bw := bufio.NewWriter(&got)
		if err := writeHead(bw, r); err != nil {
			t.Fatal(err)
		}
		bw.Flush()
		if a, b := headLines(want.String()), headLines(got.String()); !slices.Equal(a, b) {
			t.Errorf("%s %s:\nRequest.Write: %q\nwriteHead:     %q", r.Method, r.URL, want.String(), got.String())
		}
	}
	ctl := mk("GET", "http://10.0.0.1:80/", func(r *http.Request) { r.URL.RawQuery = "a=\x01" })
	if err := writeHead(bufio.NewWriter(&bytes.Buffer{}), ctl); err == nil {
		t.Error("a control character in the URL was written")
	}
}

// headLines returns the request line followed by the sorted header
// lines, and checks the blank line that ends the head.
func headLines(s string) []string {
	head, rest, ok := strings.Cut(s, "\r\n\r\n")
	if !ok || rest != "" {
		return []string{"malformed: " + s}
	}
	lines := strings.Split(head, "\r\n")
	slices.Sort(lines[1:])
	return lines
}
