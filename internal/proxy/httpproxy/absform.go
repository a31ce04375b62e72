package httpproxy

import "net/http"

// toOriginForm turns an absolute-form request target (a forward-proxy
// request, RFC 9112 3.2.2) into origin-form, as Envoy's HTTP/1 codec
// does: the authority is already r.Host, so routing, filters, the access
// log's path and the upstream request line all see only the path and
// query. It reports false for a target with no path (an opaque URL),
// which Envoy's codec rejects.
func toOriginForm(r *http.Request) bool {
	if r.URL.Scheme == "" && r.URL.Host == "" {
		return true
	}
	if r.URL.Opaque != "" {
		return false
	}
	r.URL.Scheme, r.URL.Host, r.URL.User = "", "", nil
	r.RequestURI = r.URL.RequestURI()
	return true
}
