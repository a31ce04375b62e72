package httpproxy

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/weftmesh/weft/internal/proxy/router"
)

// redirectLocation is the Location of a redirect route, built as Envoy's
// Http::Utility::newUri does:
//   - scheme: scheme_redirect (or https_redirect), else the request's;
//   - host: host_redirect replaces the whole authority, port included;
//     otherwise the request's authority, whose port is removed when
//     port_redirect is set or when the scheme changes and the port is the
//     default one of the request's scheme (http://h:80 -> https://h);
//   - port: ":port_redirect" when set, else none;
//   - path: path_redirect (its own query wins, and strip_query does not
//     apply to it; without one the request's query is kept), or
//     prefix_rewrite of the matched prefix, else the request's path;
//   - strip_query drops the request's query.
func redirectLocation(rd *router.Redirect, r *http.Request, route *router.Route) string {
	reqScheme := "http"
	if r.TLS != nil {
		reqScheme = "https"
	}
	scheme := reqScheme
	if rd.Scheme != "" {
		scheme = rd.Scheme
	}
	port := ""
	if rd.Port != 0 {
		port = ":" + strconv.FormatUint(uint64(rd.Port), 10)
	}
	host := rd.Host
	if host == "" {
		host = requestHostFor(r, reqScheme, scheme, port)
	}

	path, query := r.URL.EscapedPath(), r.URL.RawQuery
	hasQuery := query != "" || r.URL.ForceQuery
	pathQuery := false // the path_redirect carries its own query
	switch {
	case rd.Path != "":
		if p, q, ok := strings.Cut(rd.Path, "?"); ok {
			path, query, hasQuery, pathQuery = p, q, true, true
		} else {
			path = rd.Path
		}
	case rd.PrefixRewrite != "":
		path = rewritePrefix(path, route, rd.PrefixRewrite)
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	if rd.StripQuery && !pathQuery {
		hasQuery = false
	}
	var b strings.Builder
	b.Grow(len(scheme) + 3 + len(host) + len(port) + len(path) + 1 + len(query))
	b.WriteString(scheme)
	b.WriteString("://")
	b.WriteString(host)
	b.WriteString(port)
	b.WriteString(path)
	if hasQuery {
		b.WriteByte('?')
		b.WriteString(query)
	}
	return b.String()
}

// requestHostFor is the request's authority for a redirect to scheme
// with port (":n" or ""), as Envoy's processRequestHost: the port is
// removed when a new one is set, or when the scheme changes and the
// request's port is its protocol's default (x-forwarded-proto, else the
// connection's scheme).
func requestHostFor(r *http.Request, connScheme, scheme, port string) string {
	host := r.Host
	if host == "" {
		return host
	}
	var end int
	if host[0] == '[' {
		end = strings.LastIndex(host, "]:")
		if end >= 0 {
			end++
		}
	} else {
		end = strings.LastIndexByte(host, ':')
	}
	if end < 0 {
		return host
	}
	reqPort := host[end:]
	proto := r.Header.Get("X-Forwarded-Proto")
	if proto == "" {
		proto = connScheme
	}
	remove := port != ""
	if scheme != proto {
		remove = remove || proto == "https" && reqPort == ":443" || proto == "http" && reqPort == ":80"
	}
	if remove {
		return host[:end]
	}
	return host
}
