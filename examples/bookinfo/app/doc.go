// Package app implements Istio's bookinfo sample in Go: the productpage, details,
// reviews (v1, v2, v3) and ratings services, behaving like the originals in
// istio/istio samples/bookinfo (same paths, JSON documents, page texts, timeouts
// and propagated headers).
//
// Each service is an http.Handler built from its config struct; Run serves one
// on a listener until its context ends. Services call each other by Istio
// service name (http://details:9080 and so on): inside a mesh the sidecar routes
// by Host, and in Weft's local mode the calls go through the HTTP proxy named by
// the standard HTTP_PROXY environment variable (see NewTransport).
package app
