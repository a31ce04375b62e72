package httpproxy

import (
	"net/http"
	"strings"
)

// toOriginForm turns an absolute-form request target (a forward-proxy
// request, RFC 9112 3.2.2) into origin-form, as Envoy's HTTP/1 codec
// does: the authority is already r.Host, so routing, filters, the access
// log's path and the upstream request line all see only the path and
// query, byte for byte as sent. It reports false for a target with no
// authority or an opaque URL, which Envoy's codec rejects.
func toOriginForm(r *http.Request) bool {
	target := r.RequestURI
	if target == "" || target[0] == '/' || target == "*" {
		return true
	}
	_, rest, ok := strings.Cut(target, "://")
	if !ok || r.URL.Opaque != "" {
		return false
	}
	switch i := strings.IndexAny(rest, "/?#"); {
	case i < 0:
		target = "/"
	case rest[i] == '/':
		target = rest[i:]
	default:
		target = "/" + rest[i:]
	}
	r.URL.Scheme, r.URL.Host, r.URL.User = "", "", nil
	r.RequestURI = target
	return true
}
