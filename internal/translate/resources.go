// Package translate turns the mesh model into Envoy v3 resources for one
// proxy. Its generators are pure functions of (snapshot, proxy).
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
