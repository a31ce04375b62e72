package app

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// DefaultUpstreamTimeout is how long productpage waits for each call to
// details, reviews or ratings, as the original does.
const DefaultUpstreamTimeout = 3 * time.Second

// reviewsAttempts is how many times productpage calls reviews before giving up:
// the original tries twice (3 s + 3 s), a bug kept on purpose for Istio's
// fault-injection task.
const reviewsAttempts = 2

// UserCookie is the cookie that holds the signed-in user's name.
const UserCookie = "user"

// Texts productpage shows or answers when a call fails, as the original does.
const (
	DetailsErrorTitle  = "Error fetching product details!"
	ReviewsErrorTitle  = "Error fetching product reviews!"
	DetailsUnavailable = "Sorry, product details are currently unavailable for this book."
	ReviewsUnavailable = "Sorry, product reviews are currently unavailable for this book."
	RatingsErrorText   = "Sorry, product ratings are currently unavailable for this book."
)

// ProductpageConfig configures the productpage service.
type ProductpageConfig struct {
	// DetailsURL, ReviewsURL and RatingsURL are the base URLs of the services
	// productpage calls; empty means the Istio defaults (http://details:9080 ...).
	DetailsURL, ReviewsURL, RatingsURL string
	// Timeout bounds each call; zero means DefaultUpstreamTimeout. Reviews is
	// tried twice, so a page waits up to twice this for it.
	Timeout time.Duration
	// Proxy chooses the HTTP proxy for the calls; nil means
	// http.ProxyFromEnvironment.
	Proxy ProxyFunc
}

// Product is a book productpage sells.
type Product struct {
	ID              int    `json:"id"`
	Title           string `json:"title"`
	DescriptionHTML string `json:"descriptionHtml"`
}

// products is the catalogue: the original's single book.
var products = []Product{{
	ID:              0,
	Title:           "The Comedy of Errors",
	DescriptionHTML: `<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>: The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. It is his shortest and one of his most farcical comedies, with a major part of the humour coming from slapstick and mistaken identity, in addition to puns and word play.`,
}}

//go:embed templates static
var assets embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"seq":     func(n int) []int { return make([]int, min(max(n, 0), 5)) },
	"unstars": func(n int) []int { return make([]int, max(5-n, 0)) },
	// safeHTML marks the catalogue's own description markup as trusted.
	"safeHTML": func(s string) template.HTML { return template.HTML(s) },
}).ParseFS(assets, "templates/*.html"))

// Productpage is the productpage service: the bookinfo HTML page, sign-in and
// the JSON API, built on calls to details, reviews and ratings. Use
// NewProductpage; it is safe for concurrent use.
type Productpage struct {
	details, reviews, ratings *upstream
	mux                       *http.ServeMux

	mu      sync.Mutex
	results map[resultKey]int // calls made, for /metrics
}

// resultKey labels one series of productpage's request_result counter.
type resultKey struct {
	app  string
	code int
}

// NewProductpage returns the productpage service for cfg, or an error naming
// the bad field.
func NewProductpage(cfg ProductpageConfig) (*Productpage, error) {
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultUpstreamTimeout
	}
	if timeout < 0 {
		return nil, fmt.Errorf("productpage: timeout %v: must not be negative", timeout)
	}
	client := &http.Client{
		Transport: NewTransport(cfg.Proxy),
		// Answers are passed on as they are, redirects included.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	p := &Productpage{mux: http.NewServeMux(), results: make(map[resultKey]int)}
	for _, u := range []struct {
		field, raw, def, name string
		dst                   **upstream
	}{
		{"details URL", cfg.DetailsURL, DefaultDetailsURL, "details", &p.details},
		{"reviews URL", cfg.ReviewsURL, DefaultReviewsURL, "reviews", &p.reviews},
		{"ratings URL", cfg.RatingsURL, DefaultRatingsURL, "ratings", &p.ratings},
	} {
		if u.raw == "" {
			u.raw = u.def
		}
		base, err := parseBaseURL("productpage: "+u.field, u.raw)
		if err != nil {
			return nil, err
		}
		*u.dst = &upstream{name: u.name, base: base, client: client, timeout: timeout}
	}
	static, _ := fs.Sub(assets, "static")
	p.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	p.mux.HandleFunc("GET /{$}", p.index)
	p.mux.HandleFunc("GET /index.html", p.index)
	p.mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte("Product page is healthy"))
	})
	p.mux.HandleFunc("POST /login", p.login)
	p.mux.HandleFunc("GET /logout", p.logout)
	p.mux.HandleFunc("GET /productpage", p.page)
	p.mux.HandleFunc("GET /api/v1/products", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, products)
	})
	p.mux.HandleFunc("GET /api/v1/products/{id}", p.apiCall(p.getDetails))
	p.mux.HandleFunc("GET /api/v1/products/{id}/reviews", p.apiCall(p.getReviews))
	p.mux.HandleFunc("GET /api/v1/products/{id}/ratings", p.apiCall(p.getRatings))
	p.mux.HandleFunc("GET /metrics", p.metrics)
	return p, nil
}

// ServeHTTP implements http.Handler.
func (p *Productpage) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.mux.ServeHTTP(w, r) }

// user returns the signed-in user's name, or "".
func user(r *http.Request) string {
	c, err := r.Cookie(UserCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

// outgoingHeaders returns the headers productpage's calls carry for r: the
// forwarded ones, with end-user set from the sign-in and never copied from the
// client (as the original, which takes it from its session).
func outgoingHeaders(r *http.Request) http.Header {
	h := forwardHeaders(r.Header)
	h.Del("End-User")
	if u := user(r); u != "" {
		h.Set("End-User", u)
	}
	return h
}

// call makes one call to u and counts its result.
func (p *Productpage) call(ctx context.Context, u *upstream, id string, hdr http.Header) result {
	res := u.get(ctx, id, hdr)
	p.mu.Lock()
	p.results[resultKey{u.name, res.status}]++
	p.mu.Unlock()
	return res
}

// getDetails calls details once; on failure the body is the original's error
// document.
func (p *Productpage) getDetails(ctx context.Context, id string, hdr http.Header) result {
	res := p.call(ctx, p.details, id, hdr)
	if !res.ok() {
		res.body, _ = json.Marshal(errorBody{Error: DetailsUnavailable})
	}
	return res
}

// getReviews calls reviews up to twice, as the original does: a failed or
// timed-out first try is repeated once.
func (p *Productpage) getReviews(ctx context.Context, id string, hdr http.Header) result {
	var res result
	for range reviewsAttempts {
		if res = p.call(ctx, p.reviews, id, hdr); res.ok() || ctx.Err() != nil {
			break
		}
	}
	if !res.ok() {
		res.body, _ = json.Marshal(errorBody{Error: ReviewsUnavailable})
	}
	return res
}

// getRatings calls ratings once.
func (p *Productpage) getRatings(ctx context.Context, id string, hdr http.Header) result {
	res := p.call(ctx, p.ratings, id, hdr)
	if !res.ok() {
		res.body, _ = json.Marshal(errorBody{Error: RatingsErrorText})
	}
	return res
}

// apiCall returns the handler of an /api/v1/products/<id>/... route: it answers
// the upstream's status and JSON document, or its error document.
func (p *Productpage) apiCall(get func(context.Context, string, http.Header) result) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		res := get(r.Context(), r.PathValue("id"), outgoingHeaders(r))
		writeRawJSON(w, res.status, res.body)
	}
}

// pageData is what the product page template shows.
type pageData struct {
	User          string
	Product       Product
	DetailsStatus int
	Details       BookDetails
	DetailsError  string
	ReviewsStatus int
	Reviews       ProductReviews
	ReviewsError  string
}

func (p *Productpage) page(w http.ResponseWriter, r *http.Request) {
	const productID = 0 // the original shows its only product
	hdr := outgoingHeaders(r)
	id := fmt.Sprint(productID)
	d := pageData{User: user(r), Product: products[productID]}

	det := p.getDetails(r.Context(), id, hdr)
	d.DetailsStatus = det.status
	if !det.ok() || json.Unmarshal(det.body, &d.Details) != nil {
		d.DetailsStatus, d.DetailsError = failedStatus(det.status), DetailsUnavailable
	}
	rev := p.getReviews(r.Context(), id, hdr)
	d.ReviewsStatus = rev.status
	if !rev.ok() || json.Unmarshal(rev.body, &d.Reviews) != nil {
		d.ReviewsStatus, d.ReviewsError = failedStatus(rev.status), ReviewsUnavailable
	}
	render(w, "productpage.html", d)
}

// failedStatus returns status, or 500 when status claims success for a call
// whose answer could not be used.
func failedStatus(status int) int {
	if status == http.StatusOK {
		return http.StatusInternalServerError
	}
	return status
}

// serviceNode is a row of the index page's table of services.
type serviceNode struct {
	Name, Endpoint string
	Children       []serviceNode
}

func (p *Productpage) index(w http.ResponseWriter, r *http.Request) {
	ratings := serviceNode{Name: p.ratings.base.String(), Endpoint: "ratings"}
	details := serviceNode{Name: p.details.base.String(), Endpoint: "details"}
	reviews := serviceNode{Name: p.reviews.base.String(), Endpoint: "reviews", Children: []serviceNode{ratings}}
	render(w, "index.html", serviceNode{Name: "productpage", Endpoint: "productpage", Children: []serviceNode{details, reviews}})
}

// validUser reports whether name can be a user name: it travels in a cookie and
// an end-user header, so printable ASCII without separators or quotes.
func validUser(name string) bool {
	if name == "" || len(name) > 128 {
		return false
	}
	for _, c := range name {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune(`";,\`, c) {
			return false
		}
	}
	return true
}

func (p *Productpage) login(w http.ResponseWriter, r *http.Request) {
	name := r.PostFormValue("username")
	if !validUser(name) {
		http.Error(w, fmt.Sprintf("login: username %q: want 1 to 128 printable ASCII characters without spaces, quotes, commas, semicolons or backslashes", name), http.StatusBadRequest)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: UserCookie, Value: name, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, back(r), http.StatusFound)
}

func (p *Productpage) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: UserCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, back(r), http.StatusFound)
}

// back returns where sign-in and sign-out return to: the referring page, as
// in the original, or /productpage when the request has no usable Referer.
func back(r *http.Request) string {
	if ref := r.Referer(); ref != "" && !strings.ContainsAny(ref, "\r\n") {
		return ref
	}
	return "/productpage"
}

// metrics answers productpage's own Prometheus metric, as the original's
// /metrics: the count of calls to each service by response code.
func (p *Productpage) metrics(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	keys := make([]resultKey, 0, len(p.results))
	for k := range p.results {
		keys = append(keys, k)
	}
	counts := make([]int, len(keys))
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].app != keys[j].app {
			return keys[i].app < keys[j].app
		}
		return keys[i].code < keys[j].code
	})
	for i, k := range keys {
		counts[i] = p.results[k]
	}
	p.mu.Unlock()
	var b strings.Builder
	b.WriteString("# HELP request_result_total Results of requests\n# TYPE request_result_total counter\n")
	for i, k := range keys {
		fmt.Fprintf(&b, "request_result_total{destination_app=%q,response_code=\"%d\"} %d\n", k.app, k.code, counts[i])
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write([]byte(b.String()))
}

// render executes the named template into w, answering 500 if it fails.
func render(w http.ResponseWriter, name string, data any) {
	var b strings.Builder
	if err := templates.ExecuteTemplate(&b, name, data); err != nil {
		http.Error(w, "rendering "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write([]byte(b.String()))
}
