package httpproxy

import (
	"net/http"
	"strings"
)

// XFCCMode is Envoy's forward_client_cert_details: what a connection
// manager does with the x-forwarded-client-cert header.
type XFCCMode uint8

// XFCC modes, as Envoy's. The zero value is Envoy's default, SANITIZE.
const (
	XFCCSanitize XFCCMode = iota
	XFCCForwardOnly
	XFCCAppendForward
	XFCCSanitizeSet
	XFCCAlwaysForwardOnly
)

// ForwardClientCert configures x-forwarded-client-cert handling.
type ForwardClientCert struct {
	Mode XFCCMode
	// Subject, URI and DNS add those fields of the client certificate
	// (set_current_client_cert_details); By and Hash are always added.
	Subject, URI, DNS bool
}

const xfccHeader = "X-Forwarded-Client-Cert"

// Apply rewrites h's x-forwarded-client-cert for a request that arrived
// on ci. As in Envoy, the header is removed from requests that did not
// arrive over mTLS (except in ALWAYS_FORWARD_ONLY mode); on mTLS
// connections APPEND_FORWARD appends and SANITIZE_SET sets an element
// "By=<our SPIFFE ID>;Hash=<client cert SHA-256>;Subject=...;URI=...".
func (f ForwardClientCert) Apply(h http.Header, ci *ConnInfo) {
	mtls := ci != nil && ci.Peer != nil
	switch {
	case f.Mode == XFCCAlwaysForwardOnly:
		return
	case !mtls || f.Mode == XFCCSanitize:
		h.Del(xfccHeader)
		return
	case f.Mode == XFCCForwardOnly:
		return
	}
	var b strings.Builder
	if ci.LocalPrincipal != "" {
		b.WriteString("By=" + ci.LocalPrincipal + ";")
	}
	b.WriteString("Hash=" + ci.Peer.Hash)
	if f.Subject {
		b.WriteString(`;Subject="` + strings.ReplaceAll(ci.Peer.Subject, `"`, `\"`) + `"`)
	}
	if f.URI {
		for _, u := range ci.Peer.URIs {
			b.WriteString(";URI=" + u)
		}
	}
	if f.DNS {
		for _, d := range ci.Peer.DNS {
			b.WriteString(";DNS=" + d)
		}
	}
	elem := b.String()
	if prev := h.Values(xfccHeader); f.Mode == XFCCAppendForward && len(prev) > 0 {
		elem = strings.Join(prev, ",") + "," + elem
	}
	h.Set(xfccHeader, elem)
}
