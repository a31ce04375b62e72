package model

import "strings"

// Protocol is the application protocol of a service port, chosen Istio's
// way: explicit appProtocol first, then the port name's prefix, otherwise
// unknown (and sniffed).
type Protocol string

// Protocols Weft distinguishes. Unknown ports are sniffed by the proxy.
const (
	ProtocolHTTP    Protocol = "HTTP"
	ProtocolHTTP2   Protocol = "HTTP2"
	ProtocolGRPC    Protocol = "GRPC"
	ProtocolGRPCWeb Protocol = "GRPC-Web"
	ProtocolHTTPS   Protocol = "HTTPS"
	ProtocolTLS     Protocol = "TLS"
	ProtocolTCP     Protocol = "TCP"
	ProtocolUDP     Protocol = "UDP"
	ProtocolMongo   Protocol = "Mongo"
	ProtocolRedis   Protocol = "Redis"
	ProtocolMySQL   Protocol = "MySQL"
	// ProtocolUnknown marks a port whose protocol must be sniffed.
	ProtocolUnknown Protocol = "UnsupportedProtocol"
)

// ParseProtocol maps a protocol name as written in Istio config
// ("http", "HTTP2", "grpc-web", ...) to a Protocol; unknown names give
// ProtocolUnknown.
func ParseProtocol(s string) Protocol {
	switch strings.ToLower(s) {
	case "http", "http/1.1", "http1":
		return ProtocolHTTP
	case "http2", "h2c", "kubernetes.io/h2c":
		return ProtocolHTTP2
	case "grpc":
		return ProtocolGRPC
	case "grpc-web":
		return ProtocolGRPCWeb
	case "https":
		return ProtocolHTTPS
	case "tls":
		return ProtocolTLS
	case "tcp":
		return ProtocolTCP
	case "udp":
		return ProtocolUDP
	case "mongo":
		return ProtocolMongo
	case "redis":
		return ProtocolRedis
	case "mysql":
		return ProtocolMySQL
	case "kubernetes.io/ws", "kubernetes.io/wss":
		return ProtocolHTTP
	}
	return ProtocolUnknown
}

// ProtocolForPort chooses a port's protocol Istio's way: a recognised
// appProtocol wins; then the port name, either exactly a protocol name or
// a protocol name followed by "-" (as in "http-web", "grpc-api");
// otherwise ProtocolUnknown, which the proxy sniffs.
func ProtocolForPort(name, appProtocol string) Protocol {
	if appProtocol != "" {
		if p := ParseProtocol(appProtocol); p != ProtocolUnknown {
			return p
		}
	}
	if p := ParseProtocol(name); p != ProtocolUnknown {
		return p
	}
	if i := strings.IndexByte(name, '-'); i > 0 {
		return ParseProtocol(name[:i])
	}
	return ProtocolUnknown
}

// IsHTTP reports whether traffic of this protocol is handled by the HTTP
// connection manager (HTTP/1.1, HTTP/2, gRPC).
func (p Protocol) IsHTTP() bool {
	switch p {
	case ProtocolHTTP, ProtocolHTTP2, ProtocolGRPC, ProtocolGRPCWeb:
		return true
	}
	return false
}

// IsHTTP2 reports whether the protocol requires HTTP/2 upstream.
func (p Protocol) IsHTTP2() bool { return p == ProtocolHTTP2 || p == ProtocolGRPC }

// IsTLS reports whether the protocol is TLS carrying opaque or HTTPS data.
func (p Protocol) IsTLS() bool { return p == ProtocolHTTPS || p == ProtocolTLS }

// Resolution says how a client finds a service's endpoints.
type Resolution int

const (
	// ResolutionClientSideLB: the proxy balances across known endpoints (EDS).
	ResolutionClientSideLB Resolution = iota
	// ResolutionDNS: endpoints are DNS names resolved by the proxy.
	ResolutionDNS
	// ResolutionPassthrough: traffic goes to the original destination.
	ResolutionPassthrough
)

// String returns the Istio-style name of the resolution.
func (r Resolution) String() string {
	switch r {
	case ResolutionDNS:
		return "DNS"
	case ResolutionPassthrough:
		return "NONE"
	}
	return "STATIC"
}

// MarshalText implements encoding.TextMarshaler.
func (r Resolution) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// Port is one port of a service.
type Port struct {
	Name     string   `json:"name"`
	Number   uint32   `json:"number"`
	Protocol Protocol `json:"protocol"`
	// TargetPort is the default workload port traffic to Number goes to;
	// 0 means the same as Number. Endpoints may override it by port name.
	TargetPort uint32 `json:"targetPort,omitempty"`
}

// Service is one service of the mesh, named by its fully qualified
// hostname ("reviews.default.svc.cluster.local") or, for external services,
// by the host users call ("api.example.com", "*.example.com").
type Service struct {
	Hostname  string `json:"hostname"`
	Namespace string `json:"namespace"`
	// Addresses are the service's virtual IPs or CIDRs; empty for none.
	Addresses []string `json:"addresses,omitempty"`
	Ports     []Port   `json:"ports"`
	// Resolution says how endpoints are found.
	Resolution Resolution `json:"resolution"`
	// MeshExternal is true for services outside the mesh (no sidecars, so
	// no automatic mTLS).
	MeshExternal bool `json:"meshExternal,omitempty"`
	// ExportTo lists the namespaces that may see the service ("*" for all,
	// "." for its own). Empty means all.
	ExportTo []string `json:"exportTo,omitempty"`
	// Labels are the service's labels (for Kubernetes services).
	Labels map[string]string `json:"labels,omitempty"`
	// Origin is the configuration object that declared the service, if any.
	Origin *Key `json:"origin,omitempty"`
}

// Port returns the service port with the given number.
func (s *Service) Port(number uint32) (Port, bool) {
	for _, p := range s.Ports {
		if p.Number == number {
			return p, true
		}
	}
	return Port{}, false
}

// Endpoint is one instance of a service: a workload address that accepts
// the service's traffic, with what the proxy needs to know about the
// workload behind it (for load balancing, mTLS and telemetry labels).
type Endpoint struct {
	// Service is the hostname of the service this endpoint belongs to.
	Service string `json:"service"`
	// Address is an IP address, a DNS name (DNS resolution) or a Unix
	// socket path ("unix:///path").
	Address string `json:"address"`
	// Ports maps a service port name to the workload port; a missing
	// entry means the service port's TargetPort or number.
	Ports map[string]uint32 `json:"ports,omitempty"`
	// Labels are the workload's labels ("app", "version", ...).
	Labels map[string]string `json:"labels,omitempty"`
	// Namespace and Workload name the workload (for telemetry).
	Namespace string `json:"namespace"`
	Workload  string `json:"workload,omitempty"`
	// ServiceAccount is the workload's identity.
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// Locality is "region/zone/subzone", any part possibly empty.
	Locality string `json:"locality,omitempty"`
	// Network is the network the workload is on ("" for the default).
	Network string `json:"network,omitempty"`
	// Weight is the load-balancing weight; 0 means 1.
	Weight uint32 `json:"weight,omitempty"`
	// TLSMode is "istio" when the workload has a sidecar that terminates
	// mesh mTLS, "disabled" otherwise.
	TLSMode string `json:"tlsMode,omitempty"`
	// Healthy is false for endpoints known not to accept traffic.
	Healthy bool `json:"healthy"`
	// Origin is the configuration object that declared the endpoint, if any.
	Origin *Key `json:"origin,omitempty"`
}

// TargetPort returns the workload port for service port p.
func (e *Endpoint) TargetPort(p Port) uint32 {
	if n, ok := e.Ports[p.Name]; ok && n != 0 {
		return n
	}
	if p.TargetPort != 0 {
		return p.TargetPort
	}
	return p.Number
}

// TLSModeIstio is the Endpoint.TLSMode of a workload with a sidecar.
const TLSModeIstio = "istio"

// TLSModeDisabled is the Endpoint.TLSMode of a workload without a sidecar.
const TLSModeDisabled = "disabled"
