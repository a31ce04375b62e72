package httpproxy

import (
	"net/http"
	"net/netip"
	"strings"
)

// Forwarding is how an HTTP connection manager treats X-Forwarded-For and
// decides whether a request is internal, as Envoy's connection manager
// does (HttpConnectionManager use_remote_address, xff_num_trusted_hops,
// skip_xff_append, internal_address_config, or the XFF original IP
// detection extension). The zero value is Envoy's default: transparent
// to XFF, whose last address is the trusted client address.
type Forwarding struct {
	// UseRemoteAddress makes the downstream connection's address the
	// trusted client address (an edge proxy) and appends it to XFF.
	UseRemoteAddress bool
	// TrustedHops is the number of trusted proxies in front of this one
	// whose XFF entries are believed.
	TrustedHops int
	// SkipXFFAppend leaves XFF unchanged even with UseRemoteAddress.
	SkipXFFAppend bool
	// Internal are the address ranges of internal clients; nil means
	// Envoy's legacy default (RFC 1918, RFC 4193 and loopback).
	Internal []netip.Prefix
}

// defaultInternal is what Envoy treats as internal without an
// internal_address_config.
var defaultInternal = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("fd00::/8"),
	netip.MustParsePrefix("::1/128"),
}

func (f *Forwarding) isInternal(a netip.Addr) bool {
	a = a.Unmap()
	ranges := f.Internal
	if ranges == nil {
		ranges = defaultInternal
	}
	for _, p := range ranges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Request headers whose names Envoy sanitizes.
const (
	hdrXFF             = "X-Forwarded-For"
	hdrXFP             = "X-Forwarded-Proto"
	hdrEnvoyInternal   = "X-Envoy-Internal"
	hdrExternalAddress = "X-Envoy-External-Address"
)

// lastXFF is Envoy's getLastAddressFromXFF: the address skip entries
// from the right of XFF, and whether XFF held that single address only
// (which allows the internal-request check).
func lastXFF(h http.Header, skip int) (netip.Addr, bool) {
	vs := h[hdrXFF]
	if len(vs) == 0 {
		return netip.Addr{}, false
	}
	xff := vs[0]
	if len(vs) > 1 {
		xff = strings.Join(vs, ",")
	}
	for range skip {
		i := strings.LastIndexByte(xff, ',')
		if i < 0 {
			return netip.Addr{}, false
		}
		xff = xff[:i]
	}
	single := true
	if i := strings.LastIndexByte(xff, ','); i >= 0 {
		xff, single = xff[i+1:], false
	}
	a, err := netip.ParseAddr(strings.TrimSpace(xff))
	if err != nil {
		return netip.Addr{}, false
	}
	return a, single && skip == 0
}

// apply mutates r's headers as Envoy's connection manager does before
// its filters run (ConnectionManagerUtility::mutateRequestHeaders): it
// appends the downstream address to XFF, sets x-forwarded-proto,
// x-envoy-internal or x-envoy-external-address, and removes the x-envoy
// headers an external client must not set. It returns the trusted client
// address ("ip:0" when it came from XFF; "" when it is the connection's
// own remote address).
func (f *Forwarding) apply(r *http.Request, ci *ConnInfo) string {
	h := r.Header
	var final netip.Addr
	fromXFF := false
	allowInternal := false
	if f.UseRemoteAddress {
		remote, tls := downstream(r, ci)
		_, hasXFF := h[hdrXFF]
		allowInternal = !hasXFF
		if f.TrustedHops > 0 {
			if a, _ := lastXFF(h, f.TrustedHops-1); a.IsValid() {
				final, fromXFF = a, true
			}
		}
		if !final.IsValid() {
			final = remote
		}
		if !f.SkipXFFAppend && remote.IsValid() {
			app := remote
			if remote.IsLoopback() && ci != nil {
				// Envoy appends its own address for a loopback peer.
				if ap, err := netip.ParseAddrPort(ci.LocalAddr); err == nil {
					app = ap.Addr().Unmap()
				}
			}
			appendXFF(h, app.String())
		}
		if f.TrustedHops == 0 || len(h[hdrXFP]) == 0 {
			setProto(h, tls)
		}
	} else if _, ok := h[hdrXFF]; ok {
		if a, single := lastXFF(h, f.TrustedHops); a.IsValid() {
			final, fromXFF, allowInternal = a, true, single
		}
	}
	internal := allowInternal && final.IsValid() && f.isInternal(final)
	edge := !internal && f.UseRemoteAddress
	delete(h, hdrEnvoyInternal)
	if internal {
		h[hdrEnvoyInternal] = valueTrue
	} else {
		cleanInternalHeaders(h, edge)
	}
	if edge && final.IsValid() {
		h[hdrExternalAddress] = []string{final.String()}
	}
	if fromXFF {
		return netip.AddrPortFrom(final, 0).String()
	}
	return ""
}

var valueTrue = []string{"true"}

// downstream is the downstream connection's remote address and whether
// it is TLS.
func downstream(r *http.Request, ci *ConnInfo) (netip.Addr, bool) {
	addr, tls := r.RemoteAddr, r.TLS != nil
	if ci != nil {
		addr, tls = ci.RemoteAddr, tls || ci.TLS
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return netip.Addr{}, tls
	}
	return ap.Addr().Unmap(), tls
}

func appendXFF(h http.Header, addr string) {
	vs := h[hdrXFF]
	switch len(vs) {
	case 0:
		h[hdrXFF] = []string{addr}
	case 1:
		h[hdrXFF] = []string{vs[0] + "," + addr}
	default:
		h[hdrXFF] = []string{strings.Join(vs, ",") + "," + addr}
	}
}

func setProto(h http.Header, tls bool) {
	if tls {
		h[hdrXFP] = protoHTTPS
	} else {
		h[hdrXFP] = protoHTTP
	}
}

// edgeOnlyHeaders are removed from edge requests only; externalHeaders
// from every request that is not internal (Envoy's cleanInternalHeaders).
var (
	edgeOnlyHeaders = map[string]bool{
		"X-Envoy-Decorator-Operation":        true,
		"X-Envoy-Downstream-Service-Cluster": true,
		"X-Envoy-Downstream-Service-Node":    true,
	}
	externalHeaders = map[string]bool{
		"X-Envoy-Retriable-Status-Codes":           true,
		"X-Envoy-Retriable-Header-Names":           true,
		"X-Envoy-Retry-On":                         true,
		"X-Envoy-Retry-Grpc-On":                    true,
		"X-Envoy-Max-Retries":                      true,
		"X-Envoy-Upstream-Alt-Stat-Name":           true,
		"X-Envoy-Upstream-Rq-Timeout-Ms":           true,
		"X-Envoy-Upstream-Rq-Per-Try-Timeout-Ms":   true,
		"X-Envoy-Upstream-Rq-Timeout-Alt-Response": true,
		"X-Envoy-Expected-Rq-Timeout-Ms":           true,
		"X-Envoy-Force-Trace":                      true,
		"X-Envoy-Ip-Tags":                          true,
		"X-Envoy-Original-Url":                     true,
		"X-Envoy-Hedge-On-Per-Try-Timeout":         true,
	}
)

// cleanInternalHeaders removes the x-envoy request headers that only
// internal callers may set. One pass over the (few) header names keeps
// the common case, no x-envoy header at all, cheap.
func cleanInternalHeaders(h http.Header, edge bool) {
	for k := range h {
		if len(k) < 8 || k[:8] != "X-Envoy-" {
			continue
		}
		if externalHeaders[k] || edge && edgeOnlyHeaders[k] {
			delete(h, k)
		}
	}
}
