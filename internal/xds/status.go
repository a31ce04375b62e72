package xds

import (
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/internal/model"
)

// Sync states of a proxy's resource type, as in istioctl proxy-status.
const (
	StateSynced  = "SYNCED"   // the proxy acknowledged the current version
	StateStale   = "STALE"    // a newer version is being sent or awaits acknowledgement
	StateNACKed  = "NACKED"   // the proxy rejected the last version sent
	StateNotSent = "NOT SENT" // the proxy subscribed but nothing was sent yet
)

// TypeStatus is the synchronization state of one resource type of one
// proxy.
type TypeStatus struct {
	// Type is the short name (cds, eds, lds, rds, sds); TypeURL the full one.
	Type    string `json:"type"`
	TypeURL string `json:"typeUrl"`
	// State is one of the State constants.
	State string `json:"state"`
	// Current is the version of the proxy's current configuration.
	Current string `json:"current,omitempty"`
	// Sent, SentNonce and SentAt describe the last response sent.
	Sent      string    `json:"sent,omitempty"`
	SentNonce string    `json:"sentNonce,omitempty"`
	SentAt    time.Time `json:"sentAt,omitzero"`
	// Acked, AckedNonce and AckedAt describe the last response the proxy
	// accepted.
	Acked      string    `json:"acked,omitempty"`
	AckedNonce string    `json:"ackedNonce,omitempty"`
	AckedAt    time.Time `json:"ackedAt,omitzero"`
	// LastNACK is the last rejection, if any.
	LastNACK *NACK `json:"lastNack,omitempty"`

	// byName is set for delta subscriptions to named resources, which
	// are sent only changes to those resources.
	byName bool
}

// NACK is a response a proxy rejected, with its reason.
type NACK struct {
	Version string    `json:"version"`
	Nonce   string    `json:"nonce"`
	Code    int32     `json:"code,omitempty"`
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
}

// ProxyStatus is the state of one connected proxy.
type ProxyStatus struct {
	Proxy       *model.Proxy `json:"proxy"`
	ConnectedAt time.Time    `json:"connectedAt"`
	// Streams is the number of open xDS streams of the proxy.
	Streams int `json:"streams"`
	// ModelVersion is the version of the model snapshot the proxy's
	// current configuration was generated from.
	ModelVersion uint64       `json:"modelVersion"`
	Types        []TypeStatus `json:"types"`
}

// Status returns the state of every connected proxy, sorted by id. The
// result is a copy.
func (s *Server) Status() []ProxyStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ProxyStatus, 0, len(s.proxies))
	for _, ps := range s.proxies {
		st := ProxyStatus{Proxy: ps.proxy, ConnectedAt: ps.connectedAt, Streams: ps.streams, ModelVersion: ps.targetModel}
		for _, u := range sortedTypeURLs(ps.types) {
			ts := *ps.types[u]
			if ts.LastNACK != nil {
				n := *ts.LastNACK
				ts.LastNACK = &n
			}
			ts.Current = ps.target[u]
			switch {
			case ts.Sent == "":
				ts.State = StateNotSent
			case ts.LastNACK != nil && ts.LastNACK.Nonce == ts.SentNonce:
				ts.State = StateNACKed
			case ts.AckedNonce == ts.SentNonce && ps.current(u, &ts):
				ts.State = StateSynced
			default:
				ts.State = StateStale
			}
			st.Types = append(st.Types, ts)
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Proxy.ID < out[j].Proxy.ID })
	return out
}

// sortedTypeURLs orders type URLs the ADS way, unknown ones last.
func sortedTypeURLs[V any](m map[string]V) []string {
	rank := func(u string) int {
		for i, t := range typeURLs {
			if t == u {
				return i
			}
		}
		return len(typeURLs)
	}
	keys := sortedKeys(m)
	sort.SliceStable(keys, func(i, j int) bool { return rank(keys[i]) < rank(keys[j]) })
	return keys
}

// DebugHandler returns the read-only debug API: /debug/syncz lists every
// connected proxy's sync status (JSON), /debug/config_dump?proxy=ID shows
// the resources last sent to a proxy (protojson, by type).
func (s *Server) DebugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/syncz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Status())
	})
	mux.HandleFunc("GET /debug/config_dump", s.serveConfigDump)
	return mux
}

// ConfigDump is the body of /debug/config_dump.
type ConfigDump struct {
	Proxy *model.Proxy `json:"proxy"`
	// Resources maps a type's short name to the resources of that type
	// last sent, each as protojson with its "@type".
	Resources map[string][]json.RawMessage `json:"resources"`
}

func (s *Server) serveConfigDump(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("proxy")
	if id == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "missing query parameter proxy (a node id; see /debug/syncz)"})
		return
	}
	s.mu.Lock()
	ps := s.proxies[id]
	var proxy *model.Proxy
	type typed struct {
		url       string
		resources []*anypb.Any
	}
	var all []typed
	if ps != nil {
		proxy = ps.proxy
		for _, u := range sortedTypeURLs(ps.dump) {
			all = append(all, typed{url: u, resources: ps.dump[u].resources()})
		}
	}
	s.mu.Unlock()
	if ps == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no connected proxy with id " + id})
		return
	}
	dump := ConfigDump{Proxy: proxy, Resources: map[string][]json.RawMessage{}}
	for _, t := range all {
		list := []json.RawMessage{}
		for _, a := range t.resources {
			b, err := protojson.Marshal(a)
			if err != nil { // type not linked into this binary
				b, _ = json.Marshal(map[string]any{"@type": a.GetTypeUrl(), "value": a.GetValue(), "error": err.Error()})
			}
			list = append(list, b)
		}
		dump.Resources[TypeName(t.url)] = list
	}
	writeJSON(w, http.StatusOK, dump)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
