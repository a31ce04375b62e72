// Package httpbin is a small HTTP request-and-response service in the manner of
// httpbin.org, answering like mccutchen/go-httpbin (the image Istio's
// samples/httpbin deploys): /get, /anything, /headers, /ip, /user-agent,
// /status/<code>, /delay/<duration>, /hostname and the /post family. Istio's
// traffic tasks use it as the server behind circuit breaking, mirroring and
// fault injection; its request log tells which copy received what.
package httpbin

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultMaxDelay is the longest /delay a Handler accepts unless configured
// otherwise, as in go-httpbin.
const DefaultMaxDelay = 10 * time.Second

// maxBody bounds the request bodies the service reads.
const maxBody = 1 << 20

// Config configures a Handler.
type Config struct {
	// MaxDelay is the longest /delay accepted; zero means DefaultMaxDelay.
	MaxDelay time.Duration
	// Hostname is what /hostname answers; it tells copies of the service
	// apart (e.g. httpbin v1 and v2 when mirroring).
	Hostname string
}

// Handler is the httpbin service. Use New.
type Handler struct {
	cfg Config
	mux *http.ServeMux
}

// New returns the service for cfg.
func New(cfg Config) (*Handler, error) {
	if cfg.MaxDelay < 0 {
		return nil, fmt.Errorf("httpbin: max delay %v: must not be negative", cfg.MaxDelay)
	}
	if cfg.MaxDelay == 0 {
		cfg.MaxDelay = DefaultMaxDelay
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /{$}", h.index)
	h.mux.HandleFunc("GET /get", h.get)
	h.mux.HandleFunc("HEAD /head", h.get)
	h.mux.HandleFunc("POST /post", h.withBody)
	h.mux.HandleFunc("PUT /put", h.withBody)
	h.mux.HandleFunc("PATCH /patch", h.withBody)
	h.mux.HandleFunc("DELETE /delete", h.withBody)
	h.mux.HandleFunc("/anything", h.anything)
	h.mux.HandleFunc("/anything/", h.anything)
	h.mux.HandleFunc("/headers", h.headers)
	h.mux.HandleFunc("/ip", h.ip)
	h.mux.HandleFunc("/user-agent", h.userAgent)
	h.mux.HandleFunc("/ua", h.userAgent)
	h.mux.HandleFunc("/hostname", h.hostname)
	h.mux.HandleFunc("/status/{code}", h.status)
	h.mux.HandleFunc("/delay/{duration}", h.delay)
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Documents, with go-httpbin's field names.
type (
	noBodyResponse struct {
		Args    url.Values  `json:"args"`
		Headers http.Header `json:"headers"`
		Method  string      `json:"method"`
		Origin  string      `json:"origin"`
		URL     string      `json:"url"`
	}
	bodyResponse struct {
		Args    url.Values  `json:"args"`
		Headers http.Header `json:"headers"`
		Method  string      `json:"method"`
		Origin  string      `json:"origin"`
		URL     string      `json:"url"`
		Data    string      `json:"data"`
		Files   url.Values  `json:"files"`
		Form    url.Values  `json:"form"`
		JSON    any         `json:"json"`
	}
	headersResponse struct {
		Headers http.Header `json:"headers"`
	}
	ipResponse struct {
		Origin string `json:"origin"`
	}
	userAgentResponse struct {
		UserAgent string `json:"user-agent"`
	}
	hostnameResponse struct {
		Hostname string `json:"hostname"`
	}
	errorResponse struct {
		StatusCode int    `json:"status_code"`
		Error      string `json:"error"`
		Detail     string `json:"detail,omitempty"`
	}
)

const index = `httpbin: HTTP request and response service (Weft example, after go-httpbin)

  /get                 the request's args, headers, origin and URL
  /post /put /patch /delete
  /anything[/...]      the request, any method, body included
  /headers             the request's headers
  /ip                  the client's address
  /user-agent, /ua     the User-Agent header
  /hostname            this server's name
  /status/<code>       answers that status (or codes like 200:3,503:1, chosen by weight)
  /delay/<duration>    answers like /anything after the delay (seconds or a Go duration, at most %v)
`

func (h *Handler) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, index, h.cfg.MaxDelay)
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, noBodyResponse{
		Args:    r.URL.Query(),
		Headers: requestHeaders(r),
		Method:  r.Method,
		Origin:  clientIP(r),
		URL:     requestURL(r),
	})
}

func (h *Handler) anything(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		h.get(w, r)
		return
	}
	h.withBody(w, r)
}

func (h *Handler) withBody(w http.ResponseWriter, r *http.Request) {
	resp := bodyResponse{
		Args:    r.URL.Query(),
		Headers: requestHeaders(r),
		Method:  r.Method,
		Origin:  clientIP(r),
		URL:     requestURL(r),
		Files:   url.Values{},
		Form:    url.Values{},
	}
	if err := parseBody(r, &resp); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("error parsing request body: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// parseBody fills resp's data, form, files and json from r's body, by content
// type, as go-httpbin does.
func parseBody(r *http.Request, resp *bodyResponse) error {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		return err
	}
	if len(body) == 0 {
		return nil
	}
	resp.Data = string(body)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "text/html", "text/plain":
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return err
		}
		resp.Form = form
	case "application/json":
		if err := json.Unmarshal(body, &resp.JSON); err != nil {
			return err
		}
	default:
		if ct == "" {
			ct = "application/octet-stream"
		}
		resp.Data = "data:" + ct + ";base64," + base64.StdEncoding.EncodeToString(body)
	}
	return nil
}

func (h *Handler) headers(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, headersResponse{Headers: requestHeaders(r)})
}

func (h *Handler) ip(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("format") == "text" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, clientIP(r)+"\n")
		return
	}
	writeJSON(w, http.StatusOK, ipResponse{Origin: clientIP(r)})
}

func (h *Handler) userAgent(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, userAgentResponse{UserAgent: r.UserAgent()})
}

func (h *Handler) hostname(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, hostnameResponse{Hostname: h.cfg.Hostname})
}

// statusSpecial are the statuses answered with more than a bare code, as
// go-httpbin does.
var statusSpecial = map[int]struct {
	headers map[string]string
	body    string
}{
	301: {headers: map[string]string{"Location": "/redirect/1"}},
	302: {headers: map[string]string{"Location": "/redirect/1"}},
	303: {headers: map[string]string{"Location": "/redirect/1"}},
	305: {headers: map[string]string{"Location": "/redirect/1"}},
	307: {headers: map[string]string{"Location": "/redirect/1"}},
	401: {headers: map[string]string{"WWW-Authenticate": `Basic realm="Fake Realm"`}},
	407: {headers: map[string]string{"Proxy-Authenticate": `Basic realm="Fake Realm"`}},
	418: {headers: map[string]string{"x-more-info": "http://tools.ietf.org/html/rfc2324"}, body: "I'm a teapot!"},
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request) {
	code, err := chooseStatus(r.PathValue("code"), rand.Float64)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	special, ok := statusSpecial[code]
	for k, v := range special.headers {
		w.Header().Set(k, v)
	}
	w.WriteHeader(code)
	if ok && special.body != "" {
		io.WriteString(w, special.body)
	}
}

// chooseStatus parses a status like "503", or weighted choices like
// "200:3,503:1" (weight 1 when left out), and picks one using rnd in [0,1).
func chooseStatus(spec string, rnd func() float64) (int, error) {
	type choice struct {
		code   int
		weight float64
	}
	var choices []choice
	var total float64
	for part := range strings.SplitSeq(spec, ",") {
		codeText, weightText, hasWeight := strings.Cut(part, ":")
		code, err := strconv.Atoi(codeText)
		if err != nil || code < 100 || code > 599 {
			return 0, fmt.Errorf("invalid status code %q: want 100 to 599", codeText)
		}
		weight := 1.0
		if hasWeight {
			weight, err = strconv.ParseFloat(weightText, 64)
			if err != nil || weight < 0 {
				return 0, fmt.Errorf("invalid weight %q for status %d", weightText, code)
			}
		}
		choices = append(choices, choice{code, weight})
		total += weight
	}
	if total <= 0 {
		return 0, fmt.Errorf("status choices %q: weights add up to zero", spec)
	}
	x := rnd() * total
	for _, c := range choices {
		if x < c.weight {
			return c.code, nil
		}
		x -= c.weight
	}
	return choices[len(choices)-1].code, nil
}

func (h *Handler) delay(w http.ResponseWriter, r *http.Request) {
	d, err := parseDelay(r.PathValue("duration"), h.cfg.MaxDelay)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("invalid duration: %w", err))
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.Context().Done():
		w.WriteHeader(499) // client closed request
		return
	case <-t.C:
	}
	w.Header().Set("Server-Timing", fmt.Sprintf(`initial_delay;dur=%.2f;desc="initial delay"`, float64(d.Microseconds())/1000))
	h.withBody(w, r)
}

// parseDelay parses a delay in seconds ("1.5") or as a Go duration ("1500ms"),
// between 0 and max.
func parseDelay(s string, limit time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		secs, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return 0, fmt.Errorf("%q: want seconds or a duration like 500ms", s)
		}
		d = time.Duration(secs * float64(time.Second))
	}
	switch {
	case d < 0:
		return 0, errors.New("duration " + d.String() + " is negative")
	case d > limit:
		return 0, fmt.Errorf("duration %s longer than %s", d, limit)
	}
	return d, nil
}

// requestHeaders returns r's headers with Host added, as httpbin shows them.
func requestHeaders(r *http.Request) http.Header {
	h := r.Header.Clone()
	h.Set("Host", r.Host)
	if len(r.TransferEncoding) > 0 {
		h.Set("Transfer-Encoding", strings.Join(r.TransferEncoding, ","))
	}
	return h
}

// clientIP returns the client's address: the first X-Forwarded-For entry if
// any (a proxy in front, such as a sidecar), else the connection's peer.
func clientIP(r *http.Request) string {
	if fwd := r.Header.Get("X-Forwarded-For"); fwd != "" {
		first, _, _ := strings.Cut(fwd, ",")
		return strings.TrimSpace(first)
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// requestURL returns the URL the client asked for.
func requestURL(r *http.Request) string {
	scheme := r.Header.Get("X-Forwarded-Proto")
	if scheme == "" {
		scheme = "http"
		if r.TLS != nil {
			scheme = "https"
		}
	}
	u := url.URL{Scheme: scheme, Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	return u.String()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, errorResponse{StatusCode: status, Error: http.StatusText(status), Detail: err.Error()})
}
