package app

import (
	"net/http"
	"strconv"
)

// BookDetails is the details service's document for a book, with the original's
// field names and order.
type BookDetails struct {
	ID        int    `json:"id"`
	Author    string `json:"author"`
	Year      int    `json:"year"`
	Type      string `json:"type"`
	Pages     int    `json:"pages"`
	Publisher string `json:"publisher"`
	Language  string `json:"language"`
	ISBN10    string `json:"ISBN-10"`
	ISBN13    string `json:"ISBN-13"`
}

// bookDetails returns the details of book id; like the original, every id is
// the same paperback.
func bookDetails(id int) BookDetails {
	return BookDetails{
		ID:        id,
		Author:    "William Shakespeare",
		Year:      1595,
		Type:      "paperback",
		Pages:     200,
		Publisher: "PublisherA",
		Language:  "English",
		ISBN10:    "1234567890",
		ISBN13:    "123-1234567890",
	}
}

// NewDetails returns the details service (v1): GET /details/<id> answers the
// book's details, /health its health. A non-numeric id is a 400 with
// {"error": "please provide numeric product id"}.
func NewDetails() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, statusBody{Status: "Details is healthy"})
	})
	mux.HandleFunc("GET /details/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: "please provide numeric product id"})
			return
		}
		writeJSON(w, http.StatusOK, bookDetails(id))
	})
	return mux
}
