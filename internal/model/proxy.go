package model

// ProxyType says what a proxy does.
type ProxyType string

const (
	// ProxySidecar is a sidecar next to one workload.
	ProxySidecar ProxyType = "sidecar"
	// ProxyRouter is a standalone gateway (ingress or egress).
	ProxyRouter ProxyType = "router"
)

// Proxy describes one xDS client as the control plane knows it, from the
// node id and metadata it sent. Istio's node id format is
// "TYPE~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local"; Weft accepts it and
// also reads the same facts from node metadata.
type Proxy struct {
	// ID is the node id the proxy sent.
	ID string `json:"id"`
	// Type is sidecar or router.
	Type ProxyType `json:"type"`
	// Namespace and Workload name the workload the proxy serves (for a
	// gateway, its own deployment).
	Namespace string `json:"namespace"`
	Workload  string `json:"workload,omitempty"`
	// Labels are the workload's labels; Gateways and policies select
	// proxies by them (a gateway typically has istio=ingressgateway).
	Labels map[string]string `json:"labels,omitempty"`
	// ServiceAccount is the workload's identity.
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// IPs are the workload's addresses; the first is used for inbound.
	IPs []string `json:"ips,omitempty"`
	// Generator is "grpc" for proxyless gRPC clients, empty for weft-proxy
	// and Envoy.
	Generator string `json:"generator,omitempty"`
	// Metadata holds the remaining node metadata, as sent.
	Metadata map[string]string `json:"metadata,omitempty"`
}

// GeneratorGRPC is the Proxy.Generator of proxyless gRPC clients.
const GeneratorGRPC = "grpc"
