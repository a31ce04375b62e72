package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Defaults shared by the services' configs, as in the originals.
const (
	// DefaultDetailsURL is where productpage finds the details service.
	DefaultDetailsURL = "http://details:9080"
	// DefaultReviewsURL is where productpage finds the reviews service.
	DefaultReviewsURL = "http://reviews:9080"
	// DefaultRatingsURL is where productpage and reviews find the ratings service.
	DefaultRatingsURL = "http://ratings:9080"
	// DefaultRatingsTimeout is how long reviews v2 waits for ratings.
	DefaultRatingsTimeout = 10 * time.Second
	// DefaultRatingsTimeoutV3 is how long reviews v3 waits for ratings: the
	// original v3 uses 2.5 s so that it answers within productpage's 3 s.
	DefaultRatingsTimeoutV3 = 2500 * time.Millisecond
)

// RatingsUnavailable is the rating error reviews v2 and v3 report for each
// review when the ratings service cannot be reached.
const RatingsUnavailable = "Ratings service is currently unavailable"

// ReviewsConfig configures the reviews service.
type ReviewsConfig struct {
	// Version is v1 (no ratings), v2 (calls ratings, black stars) or v3
	// (calls ratings, red stars).
	Version string
	// RatingsURL is the ratings service's base URL; empty means
	// DefaultRatingsURL.
	RatingsURL string
	// RatingsTimeout bounds each call to ratings; zero means the version's
	// default (DefaultRatingsTimeout for v2, DefaultRatingsTimeoutV3 for v3).
	RatingsTimeout time.Duration
	// Podname and Clustername are reported in every answer (the original
	// reports $HOSTNAME and $CLUSTER_NAME); empty reports "null" as it does
	// for unset variables.
	Podname, Clustername string
	// Proxy chooses the HTTP proxy for calls to ratings; nil means
	// http.ProxyFromEnvironment.
	Proxy ProxyFunc
}

// Review is one review in the reviews service's document.
type Review struct {
	Reviewer string  `json:"reviewer"`
	Text     string  `json:"text"`
	Rating   *Rating `json:"rating,omitempty"`
}

// Rating is a review's stars and their colour, or, when ratings could not be
// fetched, an error text instead.
type Rating struct {
	Stars int    `json:"stars,omitempty"`
	Color string `json:"color,omitempty"`
	Error string `json:"error,omitempty"`
}

// ProductReviews is the reviews service's document for a product.
type ProductReviews struct {
	ID          string   `json:"id"`
	Podname     string   `json:"podname"`
	Clustername string   `json:"clustername"`
	Reviews     []Review `json:"reviews"`
}

// reviewTexts are the two reviews every product has, by reviewer.
var reviewTexts = [...]struct{ reviewer, text string }{
	{"Reviewer1", "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"},
	{"Reviewer2", "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."},
}

// Reviews is the reviews service: GET /reviews/<id> answers the product's
// reviews, with ratings from the ratings service for v2 and v3; /health
// answers its health. Use NewReviews.
type Reviews struct {
	cfg     ReviewsConfig
	color   string    // star colour; empty for v1
	ratings *upstream // nil for v1
	mux     *http.ServeMux
}

// NewReviews returns the reviews service for cfg, or an error naming the bad
// field.
func NewReviews(cfg ReviewsConfig) (*Reviews, error) {
	s := &Reviews{cfg: cfg, mux: http.NewServeMux()}
	timeout := cfg.RatingsTimeout
	switch cfg.Version {
	case "v1":
	case "v2":
		s.color = "black"
		if timeout == 0 {
			timeout = DefaultRatingsTimeout
		}
	case "v3":
		s.color = "red"
		if timeout == 0 {
			timeout = DefaultRatingsTimeoutV3
		}
	default:
		return nil, fmt.Errorf("reviews: version %q: want v1, v2 or v3", cfg.Version)
	}
	if timeout < 0 {
		return nil, fmt.Errorf("reviews: ratings timeout %v: must not be negative", timeout)
	}
	if s.color != "" {
		raw := cfg.RatingsURL
		if raw == "" {
			raw = DefaultRatingsURL
		}
		base, err := parseBaseURL("reviews: ratings URL", raw)
		if err != nil {
			return nil, err
		}
		s.ratings = &upstream{name: "ratings", base: base, timeout: timeout,
			client: &http.Client{Transport: NewTransport(cfg.Proxy)}}
	}
	if s.cfg.Podname == "" {
		s.cfg.Podname = "null"
	}
	if s.cfg.Clustername == "" {
		s.cfg.Clustername = "null"
	}
	s.mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, statusBody{Status: "Reviews is healthy"})
	})
	s.mux.HandleFunc("GET /reviews/{id}", s.get)
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Reviews) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Reviews) get(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		// The original (JAX-RS, int path parameter) answers 404 here.
		writeJSON(w, http.StatusNotFound, errorBody{Error: "please provide numeric product id"})
		return
	}
	doc := ProductReviews{
		ID:          strconv.Itoa(id),
		Podname:     s.cfg.Podname,
		Clustername: s.cfg.Clustername,
	}
	var stars map[string]int
	if s.ratings != nil {
		stars = s.fetchStars(r, strconv.Itoa(id))
	}
	for _, rt := range reviewTexts {
		rev := Review{Reviewer: rt.reviewer, Text: rt.text}
		if s.ratings != nil {
			if n, ok := stars[rt.reviewer]; ok {
				rev.Rating = &Rating{Stars: n, Color: s.color}
			} else {
				rev.Rating = &Rating{Error: RatingsUnavailable}
			}
		}
		doc.Reviews = append(doc.Reviews, rev)
	}
	writeJSON(w, http.StatusOK, doc)
}

// fetchStars asks ratings for product id's stars by reviewer; it returns nil
// when ratings fails or answers something unexpected.
func (s *Reviews) fetchStars(r *http.Request, id string) map[string]int {
	res := s.ratings.get(r.Context(), id, forwardHeaders(r.Header))
	if !res.ok() {
		return nil
	}
	var doc struct {
		Ratings map[string]json.RawMessage `json:"ratings"`
	}
	if json.Unmarshal(res.body, &doc) != nil {
		return nil
	}
	stars := make(map[string]int)
	for who, raw := range doc.Ratings {
		var n int
		if json.Unmarshal(raw, &n) == nil {
			stars[who] = n
		}
	}
	return stars
}
