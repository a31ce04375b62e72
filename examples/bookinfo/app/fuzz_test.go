package app_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/weftmesh/weft/examples/bookinfo/app"
)

// FuzzLogin signs in with arbitrary user names: each is refused with a 400 or
// accepted with a user cookie that reads back as exactly that name, never a
// panic or a mangled cookie.
func FuzzLogin(f *testing.F) {
	for _, s := range []string{"jason", "", "a b", `x"y`, "é", "a;b=c", "user=x", strings.Repeat("z", 129)} {
		f.Add(s)
	}
	pp, err := app.NewProductpage(app.ProductpageConfig{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name string) {
		req := httptest.NewRequest("POST", "/login", strings.NewReader(url.Values{"username": {name}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		pp.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusBadRequest:
		case http.StatusFound:
			cookies := rec.Result().Cookies()
			if len(cookies) != 1 || cookies[0].Name != app.UserCookie || cookies[0].Value != name {
				t.Fatalf("login %q set cookies %v", name, cookies)
			}
		default:
			t.Fatalf("login %q answered %d", name, rec.Code)
		}
	})
}
