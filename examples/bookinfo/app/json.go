package app

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// writeJSON answers with status and v encoded as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	writeRawJSON(w, status, body)
}

// writeRawJSON answers with status and an already encoded JSON body.
func writeRawJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// errorBody is the {"error": "..."} document the services answer failures with.
type errorBody struct {
	Error string `json:"error"`
}

// statusBody is the {"status": "..."} document of the /health endpoints.
type statusBody struct {
	Status string `json:"status"`
}
