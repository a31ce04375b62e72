package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/examples/bookinfo/app"
)

// noRedirect is a client that returns redirects instead of following them.
var noRedirect = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       30 * time.Second,
}

// do sends a request and returns the response with its body read.
func do(t *testing.T, method, url string, hdr http.Header, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// get is do with GET and no body.
func get(t *testing.T, url string, hdr http.Header) (*http.Response, string) {
	t.Helper()
	return do(t, http.MethodGet, url, hdr, nil)
}

// expect checks a response's status and that its body contains every want.
func expect(t *testing.T, what string, resp *http.Response, body string, status int, want ...string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("%s: status %d, want %d; body %q", what, resp.StatusCode, status, body)
	}
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("%s: body lacks %q:\n%s", what, w, body)
		}
	}
}

func TestDetails(t *testing.T) {
	_, base := serve(t, app.NewDetails())

	resp, body := get(t, base+"/details/0", nil)
	const want = `{"id":0,"author":"William Shakespeare","year":1595,"type":"paperback","pages":200,"publisher":"PublisherA","language":"English","ISBN-10":"1234567890","ISBN-13":"123-1234567890"}`
	expect(t, "details 0", resp, body, 200)
	if body != want {
		t.Errorf("details 0 = %s\nwant %s", body, want)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	resp, body = get(t, base+"/details/7", nil)
	expect(t, "details 7", resp, body, 200, `"id":7`)

	resp, body = get(t, base+"/details/abc", nil)
	expect(t, "details abc", resp, body, 400, `{"error":"please provide numeric product id"}`)

	resp, body = get(t, base+"/health", nil)
	expect(t, "health", resp, body, 200, `{"status":"Details is healthy"}`)
}

func TestRatings(t *testing.T) {
	_, base := serve(t, app.NewRatings())

	resp, body := get(t, base+"/ratings/0", nil)
	expect(t, "ratings 0", resp, body, 200)
	if want := `{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}`; body != want {
		t.Errorf("ratings 0 = %s, want %s", body, want)
	}
	resp, body = get(t, base+"/ratings/x", nil)
	expect(t, "ratings x", resp, body, 400, "please provide numeric product ID")
	resp, body = get(t, base+"/health", nil)
	expect(t, "health", resp, body, 200, `{"status":"Ratings is healthy"}`)

	// v1 keeps POSTed ratings in memory, per product.
	resp, body = do(t, http.MethodPost, base+"/ratings/3", nil, strings.NewReader(`{"Reviewer1": 1, "Reviewer2": 2}`))
	expect(t, "post 3", resp, body, 200, `{"id":3,"ratings":{"Reviewer1":1,"Reviewer2":2}}`)
	resp, body = get(t, base+"/ratings/3", nil)
	expect(t, "ratings 3 after post", resp, body, 200, `{"id":3,"ratings":{"Reviewer1":1,"Reviewer2":2}}`)
	resp, body = get(t, base+"/ratings/0", nil)
	expect(t, "ratings 0 after post", resp, body, 200, `"Reviewer1":5`)
	resp, body = do(t, http.MethodPost, base+"/ratings/3", nil, strings.NewReader(`[1,2`))
	expect(t, "post bad json", resp, body, 400, "please provide valid ratings JSON")
}

func TestReviewsVersions(t *testing.T) {
	for _, tc := range []struct {
		version string
		color   string // "" for no ratings
	}{
		{"v1", ""},
		{"v2", "black"},
		{"v3", "red"},
	} {
		t.Run(tc.version, func(t *testing.T) {
			ratings, ratingsURL := serve(t, app.NewRatings())
			reviews, err := app.NewReviews(app.ReviewsConfig{Version: tc.version, RatingsURL: ratingsURL, Podname: "reviews-pod-1"})
			if err != nil {
				t.Fatal(err)
			}
			_, base := serve(t, reviews)
			resp, body := get(t, base+"/reviews/0", http.Header{"X-Request-Id": {"req-1"}, "End-User": {"jason"}})
			expect(t, "reviews 0", resp, body, 200)
			var got app.ProductReviews
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("reviews answer %q: %v", body, err)
			}
			want := app.ProductReviews{ID: "0", Podname: "reviews-pod-1", Clustername: "null", Reviews: []app.Review{
				{Reviewer: "Reviewer1", Text: "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"},
				{Reviewer: "Reviewer2", Text: "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."},
			}}
			if tc.color != "" {
				want.Reviews[0].Rating = &app.Rating{Stars: 5, Color: tc.color}
				want.Reviews[1].Rating = &app.Rating{Stars: 4, Color: tc.color}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("reviews = %s\nwant %+v", body, want)
			}
			calls := ratings.requests()
			switch {
			case tc.color == "" && len(calls) != 0:
				t.Errorf("reviews v1 called ratings %d times", len(calls))
			case tc.color != "" && len(calls) != 1:
				t.Errorf("reviews %s called ratings %d times, want 1", tc.version, len(calls))
			case tc.color != "":
				r := calls[0]
				if r.URL.Path != "/ratings/0" || r.Header.Get("X-Request-Id") != "req-1" || r.Header.Get("End-User") != "jason" {
					t.Errorf("ratings call %s with x-request-id %q end-user %q", r.URL.Path, r.Header.Get("X-Request-Id"), r.Header.Get("End-User"))
				}
			}
			if resp, body := get(t, base+"/health", nil); resp.StatusCode != 200 || body != `{"status":"Reviews is healthy"}` {
				t.Errorf("health: %d %s", resp.StatusCode, body)
			}
			resp, body = get(t, base+"/reviews/zero", nil)
			expect(t, "reviews zero", resp, body, 404, "please provide numeric product id")
		})
	}
}

func TestReviewsRatingsUnavailable(t *testing.T) {
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	_, slowURL := serve(t, slow)
	_, failingURL := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"Service unavailable"}`, http.StatusServiceUnavailable)
	}))
	for name, ratingsURL := range map[string]string{
		"down":    closedURL(t),
		"slow":    slowURL,
		"failing": failingURL,
	} {
		t.Run(name, func(t *testing.T) {
			reviews, err := app.NewReviews(app.ReviewsConfig{Version: "v2", RatingsURL: ratingsURL, RatingsTimeout: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			_, base := serve(t, reviews)
			resp, body := get(t, base+"/reviews/0", nil)
			expect(t, "reviews", resp, body, 200)
			var got app.ProductReviews
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			for _, r := range got.Reviews {
				if r.Rating == nil || *r.Rating != (app.Rating{Error: app.RatingsUnavailable}) {
					t.Errorf("%s: rating %+v, want error %q", r.Reviewer, r.Rating, app.RatingsUnavailable)
				}
			}
		})
	}
}

func TestReviewsConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  app.ReviewsConfig
		want string
	}{
		{app.ReviewsConfig{Version: "v4"}, `version "v4"`},
		{app.ReviewsConfig{}, `version ""`},
		{app.ReviewsConfig{Version: "v2", RatingsURL: "https://ratings:9080"}, "scheme must be http"},
		{app.ReviewsConfig{Version: "v2", RatingsURL: "http://ratings:9080/ratings"}, "want only scheme, host and port"},
		{app.ReviewsConfig{Version: "v3", RatingsTimeout: -time.Second}, "must not be negative"},
	} {
		_, err := app.NewReviews(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewReviews(%+v) = %v, want error containing %q", tc.cfg, err, tc.want)
		}
	}
}
