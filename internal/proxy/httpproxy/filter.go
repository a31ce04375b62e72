package httpproxy

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/weftmesh/weft/internal/proxy/pathnorm"
)

// Filter is a decoder HTTP filter (jwt_authn, rbac) run after path
// normalization and before routing, in configuration order.
type Filter interface {
	// Decode inspects r and may change its headers or st. A non-nil reply
	// ends the request with it.
	Decode(r *http.Request, st *FilterState) *LocalReply
}

// FilterState is what the filters of one request share.
type FilterState struct {
	// Metadata is Envoy's dynamic metadata: values by key by filter name.
	// Values are strings, bools, float64, []any and map[string]any.
	Metadata map[string]map[string]any
	// ClientAddress is the trusted client address the connection manager
	// took from X-Forwarded-For by its use_remote_address and
	// xff_num_trusted_hops (Envoy's downstream remote address, which RBAC
	// remote_ip matches); invalid when it is the connection's peer.
	ClientAddress netip.Addr
}

// SetMetadata sets key in filter's namespace.
func (s *FilterState) SetMetadata(filter, key string, v any) {
	if s.Metadata == nil {
		s.Metadata = map[string]map[string]any{}
	}
	if s.Metadata[filter] == nil {
		s.Metadata[filter] = map[string]any{}
	}
	s.Metadata[filter][key] = v
}

// LocalReply is a response a filter sends instead of forwarding.
type LocalReply struct {
	Status int
	Body   string
	// Flag is the Envoy response flag for access logs, if any (RBAC and
	// jwt_authn set none; they set Details).
	Flag string
	// Details are Envoy's response code details.
	Details string
	// Header holds extra response headers (WWW-Authenticate, ...).
	Header http.Header
}

// stripPort removes the port of an authority ("h:80" → "h",
// "[::1]:80" → "[::1]").
func stripPort(authority string) string {
	host, _, err := net.SplitHostPort(authority)
	if err != nil {
		return authority
	}
	if strings.Contains(host, ":") {
		return "[" + host + "]"
	}
	return host
}

// decodeFilters normalizes the path and runs the filters. It reports
// whether the request goes on.
func (h *Handler) decodeFilters(w *responseWriter, r *http.Request, info *Info) bool {
	if h.StripAnyHostPort {
		r.Host = stripPort(r.Host)
	}
	if h.PathNormalization.Enabled() {
		target := r.RequestURI
		if !strings.HasPrefix(target, "/") {
			target = r.URL.EscapedPath()
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
		}
		norm, res, err := pathnorm.Path(target, h.PathNormalization)
		if err != nil {
			localReply(w, info, http.StatusBadRequest, "", "Bad Request")
			return false
		}
		np, q, _ := strings.Cut(norm, "?")
		if res == pathnorm.Redirect {
			loc := "http://"
			if r.TLS != nil {
				loc = "https://"
			}
			w.Header().Set("Location", loc+r.Host+norm)
			w.WriteHeader(http.StatusTemporaryRedirect)
			return false
		}
		dec, err := url.PathUnescape(np)
		if err != nil {
			localReply(w, info, http.StatusBadRequest, "", "Bad Request")
			return false
		}
		r.URL.Path, r.URL.RawPath, r.URL.RawQuery = dec, np, q
		if r.URL.EscapedPath() != np {
			// Not representable for the upstream: refuse rather than
			// forward something other than what was authorized.
			localReply(w, info, http.StatusBadRequest, "", "Bad Request")
			return false
		}
		r.RequestURI = norm
		info.Path = dec
	}
	if len(h.Filters) == 0 {
		return true
	}
	st := &FilterState{}
	if info.ClientAddress != "" {
		if ap, err := netip.ParseAddrPort(info.ClientAddress); err == nil {
			st.ClientAddress = ap.Addr()
		}
	}
	for _, f := range h.Filters {
		if lr := f.Decode(r, st); lr != nil {
			info.Flags = appendFlag(info.Flags, lr.Flag)
			info.Details = lr.Details
			hdr := w.Header()
			for k := range hdr {
				delete(hdr, k)
			}
			for k, vs := range lr.Header {
				hdr[k] = vs
			}
			hdr.Set("Content-Type", "text/plain")
			hdr.Set("Content-Length", strconv.Itoa(len(lr.Body)))
			w.WriteHeader(lr.Status)
			io.WriteString(w, lr.Body)
			return false
		}
	}
	return true
}
