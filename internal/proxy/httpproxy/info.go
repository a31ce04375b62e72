// Package httpproxy is weft-proxy's HTTP connection manager: it routes a
// downstream request with a compiled route table, applies faults, CORS,
// redirects and direct responses, and forwards it to an upstream cluster
// with retries, timeouts and mirroring, reporting Envoy's response codes
// and flags.
package httpproxy

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/weftmesh/weft/internal/proxy/router"
	"github.com/weftmesh/weft/internal/proxy/sds"
	"github.com/weftmesh/weft/internal/proxy/telemetry/peermeta"
	"github.com/weftmesh/weft/internal/proxy/upstream"
)

// ConnInfo describes the downstream connection a request arrived on.
type ConnInfo struct {
	Listener    string
	RemoteAddr  string
	LocalAddr   string
	OriginalDst string // ip:port before interception, if any
	TLS         bool
	// Peer is the verified client certificate of a TLS connection whose
	// client presented one (mesh mTLS), nil otherwise.
	Peer *sds.Peer
	// LocalPrincipal is this proxy's SPIFFE ID when Peer is set.
	LocalPrincipal string
	// ServerName is the SNI a TLS client asked for (access logs).
	ServerName string
	// DownstreamPeer and UpstreamPeer are the client's and the server's
	// metadata from Istio's TCP metadata exchange (tcp_proxy on mesh
	// mTLS), nil when none was exchanged.
	DownstreamPeer, UpstreamPeer *peermeta.Peer
	// TerminationDetails is why a network filter closed the connection
	// (Envoy's %CONNECTION_TERMINATION_DETAILS%, e.g. the network RBAC
	// filter's "rbac_access_denied_matched_policy[none]"), "" otherwise.
	TerminationDetails string
}

type connKey struct{}

// WithConnInfo attaches ci to a connection context.
func WithConnInfo(ctx context.Context, ci *ConnInfo) context.Context {
	return context.WithValue(ctx, connKey{}, ci)
}

// ConnInfoFrom returns the connection info of ctx, or nil.
func ConnInfoFrom(ctx context.Context) *ConnInfo {
	ci, _ := ctx.Value(connKey{}).(*ConnInfo)
	return ci
}

// Resolver gives the handler the current route tables and clusters. It is
// consulted once per request so config swaps take effect immediately.
type Resolver interface {
	RouteTable(name string) *router.Table
	Cluster(name string) *upstream.Cluster
}

// Response flags, as in Envoy's access logs.
const (
	FlagNoRoute          = "NR"
	FlagNoHealthy        = "UH"
	FlagConnectFailure   = "UF"
	FlagOverflow         = "UO"
	FlagTimeout          = "UT"
	FlagReset            = "UC"
	FlagRetryExhausted   = "URX"
	FlagNoCluster        = "NC"
	FlagFaultAbort       = "FI"
	FlagFaultDelay       = "DI"
	FlagDownstreamCancel = "DC"
	FlagStreamIdle       = "SI"
)

// Info is what the handler reports about one finished request.
type Info struct {
	Start     time.Time
	Duration  time.Duration
	Method    string
	Authority string
	Path      string
	Protocol  string
	Status    int
	Flags     string
	Route     string
	Cluster   string
	Upstream  *upstream.Host
	BytesIn   int64
	BytesOut  int64
	Attempts  int
	Conn      *ConnInfo
	// GRPC is set for application/grpc requests; GRPCStatus is the
	// grpc-status the upstream returned, if any.
	GRPC       bool
	GRPCStatus string
	// Details is Envoy's response code details for local replies of
	// filters ("rbac_access_denied_matched_policy[none]", ...).
	Details string
	// Request is the downstream request, valid only during Observe
	// (access logs read its headers).
	Request *http.Request
	// UpstreamServiceTime is how long the last upstream attempt took to
	// return response headers (x-envoy-upstream-service-time).
	UpstreamServiceTime time.Duration
	// UpstreamLocalAddress is the local address of the upstream
	// connection the last attempt was sent on, nil if none.
	UpstreamLocalAddress net.Addr
	// ClientAddress is the trusted client address ("ip:0") when the
	// connection manager took it from X-Forwarded-For (see Forwarding);
	// "" when it is the connection's remote address. Envoy logs it as
	// %DOWNSTREAM_REMOTE_ADDRESS%.
	ClientAddress string
	// UpstreamPrincipal is the SPIFFE ID of the upstream's verified
	// certificate on the last attempt's connection, "" in plain text
	// (Istio's client-side destination_principal).
	UpstreamPrincipal string
	// DownstreamPeer is the client workload's metadata from Istio's peer
	// metadata exchange (inbound), UpstreamPeer the server's (outbound);
	// nil when the peer sent none.
	DownstreamPeer, UpstreamPeer *peermeta.Peer
}

// Observer receives Info for every request (telemetry, access logs). It
// must not retain the pointer.
type Observer interface {
	Observe(*Info)
}
