package app_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/examples/bookinfo/app"
)

// countStars returns the full and empty stars on a product page.
func countStars(page string) (full, empty int) {
	return strings.Count(page, `class="glyphicon glyphicon-star"`), strings.Count(page, `class="glyphicon glyphicon-star-empty"`)
}

func TestProductpageRendersReviewsVersions(t *testing.T) {
	for _, tc := range []struct {
		version          string
		color            string
		full, emptyStars int
	}{
		{"v1", "", 0, 0},
		{"v2", "black", 9, 1},
		{"v3", "red", 9, 1},
	} {
		t.Run(tc.version, func(t *testing.T) {
			b := startBookinfo(t, tc.version)
			resp, page := get(t, b.productpageURL+"/productpage", nil)
			expect(t, "productpage", resp, page, 200,
				"<title>Simple Bookstore App</title>",
				"The Comedy of Errors", "<b>William Shakespeare's</b>",
				"Book Details", "PublisherA", "1234567890", "123-1234567890", "paperback", "English",
				"Book Reviews", "Reviewer1", "Reviewer2",
				"An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!",
				"Reviews served by:", "reviews-"+tc.version+"-pod",
				"Sign in", `action="login"`, `name="username"`)
			if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("content type %q", ct)
			}
			full, empty := countStars(page)
			if full != tc.full || empty != tc.emptyStars {
				t.Errorf("stars: %d full, %d empty; want %d and %d", full, empty, tc.full, tc.emptyStars)
			}
			for _, color := range []string{"black", "red"} {
				has := strings.Contains(page, `<font color="`+color+`">`)
				if has != (color == tc.color) {
					t.Errorf("page has %s stars: %v, want %v", color, has, color == tc.color)
				}
			}
			if strings.Contains(page, "Error fetching") || strings.Contains(page, app.RatingsUnavailable) {
				t.Errorf("page shows an error:\n%s", page)
			}
			// Every call went through the mesh proxy by Istio service name.
			wantHosts := []string{"details:9080", "reviews:9080"}
			if tc.version != "v1" {
				wantHosts = []string{"details:9080", "reviews:9080", "ratings:9080"}
			}
			if got := b.mesh.seenHosts(); strings.Join(got, " ") != strings.Join(wantHosts, " ") {
				t.Errorf("mesh saw hosts %q, want %q", got, wantHosts)
			}
		})
	}
}

func TestProductpageLoginSetsEndUser(t *testing.T) {
	b := startBookinfo(t, "v2")

	// Without sign-in, no end-user goes out, even if the client sends one.
	resp, page := get(t, b.productpageURL+"/productpage", http.Header{"End-User": {"mallory"}})
	expect(t, "anonymous page", resp, page, 200, "Sign in")
	for name, rec := range map[string]*recorder{"details": b.details, "reviews": b.reviews, "ratings": b.ratings} {
		if got := rec.last(t).Header.Values("End-User"); len(got) != 0 {
			t.Errorf("anonymous: %s got end-user %q", name, got)
		}
	}

	form := url.Values{"username": {"jason"}, "passwd": {"secret"}}
	resp, body := do(t, http.MethodPost, b.productpageURL+"/login",
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Referer": {b.productpageURL + "/productpage"}},
		strings.NewReader(form.Encode()))
	expect(t, "login", resp, body, http.StatusFound)
	if loc := resp.Header.Get("Location"); loc != b.productpageURL+"/productpage" {
		t.Errorf("login redirects to %q", loc)
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == app.UserCookie {
			cookie = c
		}
	}
	if cookie == nil || cookie.Value != "jason" {
		t.Fatalf("login set cookies %v, want user=jason", resp.Cookies())
	}

	hdr := http.Header{"Cookie": {cookie.Name + "=" + cookie.Value}, "End-User": {"mallory"}}
	resp, page = get(t, b.productpageURL+"/productpage", hdr)
	expect(t, "signed-in page", resp, page, 200, "jason", "sign out", `href="logout"`)
	if strings.Contains(page, "Sign in") {
		t.Error("signed-in page still offers to sign in")
	}
	for name, rec := range map[string]*recorder{"details": b.details, "reviews": b.reviews, "ratings": b.ratings} {
		r := rec.last(t)
		if got := r.Header.Values("End-User"); len(got) != 1 || got[0] != "jason" {
			t.Errorf("%s got end-user %q, want jason", name, got)
		}
		if got := r.Header.Get("Cookie"); got != "user=jason" {
			t.Errorf("%s got cookie %q, want the client's", name, got)
		}
	}

	// Without a Referer, login returns to the product page.
	resp, body = do(t, http.MethodPost, b.productpageURL+"/login",
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, strings.NewReader("username=tester"))
	expect(t, "login without referer", resp, body, http.StatusFound)
	if loc := resp.Header.Get("Location"); loc != "/productpage" {
		t.Errorf("login redirects to %q, want /productpage", loc)
	}

	resp, body = get(t, b.productpageURL+"/logout", hdr)
	expect(t, "logout", resp, body, http.StatusFound)
	cleared := false
	for _, c := range resp.Cookies() {
		cleared = cleared || (c.Name == app.UserCookie && c.MaxAge < 0)
	}
	if !cleared {
		t.Errorf("logout set cookies %v, want user cleared", resp.Cookies())
	}

	for _, name := range []string{"", "two words", `quo"te`, strings.Repeat("x", 200)} {
		resp, body = do(t, http.MethodPost, b.productpageURL+"/login",
			http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, strings.NewReader(url.Values{"username": {name}}.Encode()))
		expect(t, "login "+name, resp, body, http.StatusBadRequest, "login: username")
	}
	resp, body = get(t, b.productpageURL+"/login", nil)
	expect(t, "GET login", resp, body, http.StatusMethodNotAllowed)
}

func TestProductpagePropagatesTraceHeaders(t *testing.T) {
	b := startBookinfo(t, "v3")
	sent := http.Header{}
	for i, name := range app.ForwardedHeaders {
		if name == "end-user" || name == "cookie" {
			continue
		}
		sent.Set(name, "value-"+name+"-"+string(rune('a'+i)))
	}
	sent.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	sent.Set("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")
	sent.Set("Cookie", "user=jason; theme=dark")
	sent.Set("X-Not-Propagated", "secret")

	for _, path := range []string{"/productpage", "/api/v1/products/0", "/api/v1/products/0/reviews"} {
		resp, body := get(t, b.productpageURL+path, sent)
		expect(t, path, resp, body, 200)
		hops := map[string]*recorder{"details": b.details, "reviews": b.reviews, "ratings": b.ratings}
		if path == "/api/v1/products/0" {
			hops = map[string]*recorder{"details": b.details}
		}
		for name, rec := range hops {
			got := rec.last(t).Header
			for k := range sent {
				want := sent.Get(k)
				if k == "X-Not-Propagated" {
					want = ""
				}
				if got.Get(k) != want {
					t.Errorf("%s: %s got %s %q, want %q", path, name, k, got.Get(k), want)
				}
			}
			if got.Get("End-User") != "jason" {
				t.Errorf("%s: %s got end-user %q, want jason", path, name, got.Get("End-User"))
			}
		}
	}
}

// slowThenFast is a reviews stand-in whose first slowCalls answers take longer
// than any test timeout; the later ones come from the real reviews service.
type slowThenFast struct {
	slowCalls int32
	calls     atomic.Int32
	next      http.Handler
}

func (s *slowThenFast) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.calls.Add(1) <= s.slowCalls {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(10 * time.Second):
		}
	}
	s.next.ServeHTTP(w, r)
}

func TestProductpageReviewsTimeoutAndRetry(t *testing.T) {
	const timeout = 100 * time.Millisecond
	_, detailsURL := serve(t, app.NewDetails())
	reviewsV1, err := app.NewReviews(app.ReviewsConfig{Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		slowCalls int32
		status    int
		want      string
	}{
		{"both tries time out", 100, 500, app.ReviewsUnavailable},
		{"retry succeeds", 1, 200, "Reviewer1"},
		{"first try succeeds", 0, 200, "Reviewer1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reviews := &slowThenFast{slowCalls: tc.slowCalls, next: reviewsV1}
			_, reviewsURL := serve(t, reviews)
			pp, err := app.NewProductpage(app.ProductpageConfig{DetailsURL: detailsURL, ReviewsURL: reviewsURL, RatingsURL: closedURL(t), Timeout: timeout})
			if err != nil {
				t.Fatal(err)
			}
			_, base := serve(t, pp)

			start := time.Now()
			resp, body := get(t, base+"/api/v1/products/0/reviews", nil)
			elapsed := time.Since(start)
			expect(t, "reviews API", resp, body, tc.status, tc.want)
			wantCalls := min(tc.slowCalls+1, 2)
			if got := reviews.calls.Load(); got != wantCalls {
				t.Errorf("reviews called %d times, want %d", got, wantCalls)
			}
			// Each slow try waited for the full timeout before the next.
			if slow := min(tc.slowCalls, 2); elapsed < time.Duration(slow)*timeout {
				t.Errorf("answered after %v, before %d timeouts of %v", elapsed, slow, timeout)
			}

			reviews.calls.Store(0)
			resp, page := get(t, base+"/productpage", nil)
			expect(t, "productpage", resp, page, 200, "Book Details", tc.want)
			if hasErr := strings.Contains(page, app.ReviewsErrorTitle); hasErr != (tc.status != 200) {
				t.Errorf("page shows %q: %v, want %v", app.ReviewsErrorTitle, hasErr, tc.status != 200)
			}
		})
	}
}

func TestProductpageRetriesFailingReviewsOnce(t *testing.T) {
	var calls atomic.Int32
	_, reviewsURL := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "fault injected", http.StatusServiceUnavailable)
	}))
	pp, err := app.NewProductpage(app.ProductpageConfig{DetailsURL: closedURL(t), ReviewsURL: reviewsURL, RatingsURL: closedURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	_, base := serve(t, pp)
	resp, body := get(t, base+"/api/v1/products/0/reviews", nil)
	expect(t, "reviews API", resp, body, 503, `{"error":"`+app.ReviewsUnavailable+`"}`)
	if n := calls.Load(); n != 2 {
		t.Errorf("reviews called %d times, want 2", n)
	}
	resp, body = get(t, base+"/metrics", nil)
	expect(t, "metrics", resp, body, 200, `request_result_total{destination_app="reviews",response_code="503"} 2`)
}

func TestProductpageDetailsTimeoutIsNotRetried(t *testing.T) {
	slow := &slowThenFast{slowCalls: 100, next: app.NewDetails()}
	_, detailsURL := serve(t, slow)
	pp, err := app.NewProductpage(app.ProductpageConfig{DetailsURL: detailsURL, ReviewsURL: closedURL(t), RatingsURL: closedURL(t), Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, base := serve(t, pp)
	resp, body := get(t, base+"/api/v1/products/0", nil)
	expect(t, "details API", resp, body, 500, app.DetailsUnavailable)
	if n := slow.calls.Load(); n != 1 {
		t.Errorf("details called %d times, want 1", n)
	}
}

func TestProductpageUpstreamsDown(t *testing.T) {
	pp, err := app.NewProductpage(app.ProductpageConfig{DetailsURL: closedURL(t), ReviewsURL: closedURL(t), RatingsURL: closedURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	_, base := serve(t, pp)
	resp, page := get(t, base+"/productpage", nil)
	expect(t, "productpage", resp, page, 200,
		"The Comedy of Errors",
		app.DetailsErrorTitle, app.DetailsUnavailable,
		app.ReviewsErrorTitle, app.ReviewsUnavailable)
	for path, want := range map[string]string{
		"/api/v1/products/0":         app.DetailsUnavailable,
		"/api/v1/products/0/reviews": app.ReviewsUnavailable,
		"/api/v1/products/0/ratings": app.RatingsErrorText,
	} {
		resp, body := get(t, base+path, nil)
		expect(t, path, resp, body, 500, `{"error":"`+want+`"}`)
	}
}

func TestProductpageRatingsUnavailable(t *testing.T) {
	b := startBookinfo(t, "v2")
	b.mesh.route("ratings:9080", closedURL(t))
	resp, page := get(t, b.productpageURL+"/productpage", nil)
	expect(t, "productpage", resp, page, 200, "Book Reviews", "Reviewer1", app.RatingsUnavailable)
	if n := strings.Count(page, app.RatingsUnavailable); n != 2 {
		t.Errorf("page shows %q %d times, want once per review", app.RatingsUnavailable, n)
	}
	if full, _ := countStars(page); full != 0 {
		t.Errorf("page shows %d stars without ratings", full)
	}
	resp, body := get(t, b.productpageURL+"/api/v1/products/0/ratings", nil)
	expect(t, "ratings API", resp, body, 502, app.RatingsErrorText)
}

func TestProductpageOtherRoutes(t *testing.T) {
	b := startBookinfo(t, "v1")
	base := b.productpageURL
	for _, tc := range []struct {
		path   string
		status int
		want   []string
	}{
		{"/", 200, []string{"simple bookstore application", "http://details:9080", "http://reviews:9080", "http://ratings:9080", "/productpage?u=normal"}},
		{"/index.html", 200, []string{"simple bookstore application"}},
		{"/health", 200, []string{"Product page is healthy"}},
		{"/static/bookinfo.css", 200, []string{"glyphicon-star"}},
		{"/static/missing.css", 404, nil},
		{"/api/v1/products", 200, []string{`[{"id":0,"title":"The Comedy of Errors","descriptionHtml":"\u003ca href=`}},
		{"/api/v1/products/0", 200, []string{`"ISBN-13":"123-1234567890"`}},
		{"/api/v1/products/0/reviews", 200, []string{`"podname":"reviews-v1-pod"`}},
		{"/api/v1/products/0/ratings", 200, []string{`{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}`}},
		{"/api/v1/products/abc", 400, []string{app.DetailsUnavailable}},
		{"/nothing", 404, nil},
		{"/metrics", 200, []string{`request_result_total{destination_app="details",response_code="200"} 1`, `destination_app="details",response_code="400"} 1`}},
	} {
		resp, body := get(t, base+tc.path, nil)
		expect(t, tc.path, resp, body, tc.status, tc.want...)
	}
}

func TestProductpageConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  app.ProductpageConfig
		want string
	}{
		{app.ProductpageConfig{DetailsURL: "details:9080"}, "productpage: details URL"},
		{app.ProductpageConfig{ReviewsURL: "http://"}, "productpage: reviews URL"},
		{app.ProductpageConfig{RatingsURL: "http://ratings:9080/?x=1"}, "productpage: ratings URL"},
		{app.ProductpageConfig{Timeout: -1}, "must not be negative"},
	} {
		_, err := app.NewProductpage(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewProductpage(%+v) = %v, want error containing %q", tc.cfg, err, tc.want)
		}
	}
}
