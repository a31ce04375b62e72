package app

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// Ratings is the ratings service (v1). GET /ratings/<id> answers
// {"id": <id>, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}, or the ratings
// last POSTed for that id (kept in memory, as the original v1 does); /health
// answers its health. A non-numeric id is a 400. Use NewRatings; a Ratings is
// safe for concurrent use.
type Ratings struct {
	mux *http.ServeMux

	mu    sync.Mutex
	added map[int]json.RawMessage // POSTed ratings by product id
}

// defaultRatings are the stars every product has until ratings are POSTed.
var defaultRatings = json.RawMessage(`{"Reviewer1":5,"Reviewer2":4}`)

// productRatings is the ratings service's document.
type productRatings struct {
	ID      int             `json:"id"`
	Ratings json.RawMessage `json:"ratings"`
}

// NewRatings returns a ratings service with the default ratings.
func NewRatings() *Ratings {
	s := &Ratings{mux: http.NewServeMux(), added: make(map[int]json.RawMessage)}
	s.mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, statusBody{Status: "Ratings is healthy"})
	})
	s.mux.HandleFunc("GET /ratings/{id...}", s.get)
	s.mux.HandleFunc("POST /ratings/{id...}", s.post)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Ratings) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Ratings) get(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "please provide numeric product ID"})
		return
	}
	writeJSON(w, http.StatusOK, productRatings{ID: id, Ratings: s.ratings(id)})
}

func (s *Ratings) post(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "please provide numeric product ID"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	var obj map[string]json.RawMessage
	if err != nil || json.Unmarshal(body, &obj) != nil || obj == nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "please provide valid ratings JSON"})
		return
	}
	var compact bytes.Buffer
	json.Compact(&compact, body)
	s.mu.Lock()
	s.added[id] = compact.Bytes()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, productRatings{ID: id, Ratings: s.ratings(id)})
}

// ratings returns the ratings of product id.
func (s *Ratings) ratings(id int) json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.added[id]; ok {
		return r
	}
	return defaultRatings
}
