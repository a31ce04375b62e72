package httpbin_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/examples/httpbin"
)

// FuzzStatusAndDelay feeds arbitrary path segments to /status and /delay: the
// answer is the requested status (one of the listed codes) or a 400, never a
// panic; a delay is only honoured within MaxDelay.
func FuzzStatusAndDelay(f *testing.F) {
	for _, s := range []string{"200", "503", "200:3,503:1", "418", "0.001", "1ms", "-1", "abc", "200:", ":1", "1e308", "NaN", "200:NaN"} {
		f.Add(s)
	}
	h, err := httpbin.New(httpbin.Config{MaxDelay: time.Millisecond})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, seg string) {
		for _, prefix := range []string{"/status/", "/delay/"} {
			req := httptest.NewRequest("GET", "/", nil)
			req.URL = &url.URL{Path: prefix + seg}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			code := rec.Code
			if code == http.StatusBadRequest || code == http.StatusNotFound {
				continue // rejected, or not a single path segment
			}
			if loc := rec.Header().Get("Location"); loc != "" && loc != "/redirect/1" {
				continue // ServeMux cleaning the path (".", "..", "//")
			}
			switch prefix {
			case "/status/":
				if !strings.Contains(seg, strconv.Itoa(code)) {
					t.Errorf("/status/%q answered %d", seg, code)
				}
			case "/delay/":
				if code != http.StatusOK {
					t.Errorf("/delay/%q answered %d", seg, code)
				}
			}
		}
	})
}
