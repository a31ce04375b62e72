package httpproxy

import (
	"net/http"
	"strconv"
	"strings"
)

// FlagDurationTimeout is Envoy's DT: the stream outlived the route's
// max_stream_duration (or the grpc-timeout it allows).
const FlagDurationTimeout = "DT"

// gRPC status codes of local replies.
const (
	grpcUnknown          = 2
	grpcDeadlineExceeded = 4
	grpcPermissionDenied = 7
	grpcUnimplemented    = 12
	grpcInternal         = 13
	grpcUnavailable      = 14
	grpcUnauthenticated  = 16
)

// isGRPC reports whether r is a gRPC request as Envoy decides it:
// content-type application/grpc or application/grpc+<codec> (gRPC-Web
// is not).
func isGRPC(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return ct == "application/grpc" || strings.HasPrefix(ct, "application/grpc+")
}

// grpcStatusForHTTP maps a local reply's HTTP status to a gRPC status, as
// Envoy's Grpc::Utility::httpToGrpcStatus (gRPC's HTTP mapping).
func grpcStatusForHTTP(status int) int {
	switch status {
	case http.StatusBadRequest:
		return grpcInternal
	case http.StatusUnauthorized:
		return grpcUnauthenticated
	case http.StatusForbidden:
		return grpcPermissionDenied
	case http.StatusNotFound:
		return grpcUnimplemented
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return grpcUnavailable
	}
	return grpcUnknown
}

// grpcLocalReply answers a gRPC request from the proxy as Envoy does: a
// trailers-only response, HTTP 200 with content-type application/grpc,
// grpc-status and the body as grpc-message.
func grpcLocalReply(w *responseWriter, info *Info, code int, flag, message string) {
	info.Flags = appendFlag(info.Flags, flag)
	hdr := w.Header()
	for k := range hdr {
		delete(hdr, k)
	}
	status := strconv.Itoa(code)
	info.GRPCStatus = status
	hdr["Content-Type"] = []string{"application/grpc"}
	hdr["Grpc-Status"] = []string{status}
	if message != "" {
		hdr["Grpc-Message"] = []string{grpcPercentEncode(message)}
	}
	w.WriteHeader(http.StatusOK)
}

// grpcPercentEncode encodes a grpc-message value (gRPC over HTTP/2:
// bytes outside printable ASCII, and '%', as %XX).
func grpcPercentEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
