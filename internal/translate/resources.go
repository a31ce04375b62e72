// Package translate turns the mesh model into Envoy v3 resources for one
// proxy. Its generators are pure functions of (snapshot, proxy).
//
// [Generate] follows Istio's conventions, so that Envoy, weft-proxy and
// tools written for Istio see familiar configuration:
//
//   - clusters "outbound|PORT|SUBSET|HOST" per service port and
//     DestinationRule subset (EDS, STRICT_DNS or ORIGINAL_DST by the
//     service's resolution), "inbound|PORT||" to the local application,
//     PassthroughCluster, BlackHoleCluster, InboundPassthroughCluster;
//   - sidecar listeners "virtualOutbound" (15001, use_original_dst) and
//     "virtualInbound" (15006), and per port "0.0.0.0_PORT" (HTTP, RDS
//     route configuration "PORT") or "VIP_PORT" (TCP), not bound;
//   - gateway listeners "0.0.0.0_PORT" with route configurations
//     "http.PORT" and "https.PORT.PORTNAME.GATEWAY.NAMESPACE";
//   - for proxyless gRPC clients, api_listeners and route configurations
//     named "HOST:PORT".
//
// Configuration that cannot be translated into something Envoy accepts is
// left out and reported in [Resources.Diagnostics]. Package sim evaluates
// the output with Envoy's matching rules for tests.
package translate

import (
	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tls "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/weftmesh/weft/internal/model"
)

// Resources is the complete xDS configuration of one proxy, each list
// sorted by resource name.
type Resources struct {
	Clusters  []*cluster.Cluster
	Endpoints []*endpoint.ClusterLoadAssignment
	Listeners []*listener.Listener
	Routes    []*route.RouteConfiguration
	Secrets   []*tls.Secret
	// Diagnostics report configuration that could not be translated: the
	// offending route or policy is left out (or replaced by the default)
	// rather than emitted invalid, and each omission names the object,
	// file and field.
	Diagnostics model.Diagnostics
}
