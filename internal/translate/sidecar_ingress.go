package translate

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/model"
)

// MetadataInterceptionMode is the node metadata key saying how traffic
// reaches the proxy; "NONE" means no iptables redirection (local mode, VMs
// without root), so the virtual 15001/15006 listeners are not generated.
const MetadataInterceptionMode = "INTERCEPTION_MODE"

// interceptionNone reports whether the proxy runs without traffic capture.
func interceptionNone(proxy *model.Proxy) bool {
	return strings.EqualFold(proxy.Metadata[MetadataInterceptionMode], "NONE")
}

// sidecarIngressPorts turns a Sidecar's ingress listeners into the proxy's
// inbound ports, Istio's way: each port sends to its defaultEndpoint, and a
// port with captureMode NONE (or a bind address, or on a proxy without
// interception) gets a listener of its own bound to bind:port.
func sidecarIngressPorts(ingress []*networking.IstioIngressListener, proxy *model.Proxy, diags *diagnostics) []inboundPort {
	var out []inboundPort
	for i, in := range ingress {
		if in.GetPort() == nil || in.Port.Number == 0 {
			continue // rejected by validation
		}
		p := inboundPort{port: in.Port.Number, protocol: model.ParseProtocol(in.Port.Protocol)}
		if in.Port.Protocol == "" {
			p.protocol = model.ProtocolForPort(in.Port.Name, "")
		}
		if in.DefaultEndpoint != "" {
			addr, err := defaultEndpointAddress(in.DefaultEndpoint, proxy)
			if err != nil {
				diags.errorf(nil, fmt.Sprintf("spec.ingress[%d].defaultEndpoint", i), "%v", err)
				continue
			}
			p.endpoint = addr
		}
		if in.CaptureMode == networking.CaptureMode_NONE || in.Bind != "" || interceptionNone(proxy) {
			p.bind = in.Bind
			if p.bind == "" {
				p.bind = "0.0.0.0"
				if len(proxy.IPs) > 0 {
					p.bind = proxy.IPs[0]
				}
			}
		}
		out = append(out, p)
	}
	return out
}

// defaultEndpointAddress parses a Sidecar ingress defaultEndpoint:
// "127.0.0.1:PORT", "0.0.0.0:PORT" (the proxy's own address), "[::1]:PORT"
// or "unix:///path".
func defaultEndpointAddress(s string, proxy *model.Proxy) (*core.Address, error) {
	if strings.HasPrefix(s, "unix://") {
		return socketAddress(s, 0), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return nil, fmt.Errorf("invalid defaultEndpoint %q: want HOST:PORT or unix:///path", s)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return nil, fmt.Errorf("invalid defaultEndpoint %q: bad port", s)
	}
	if host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
		if len(proxy.IPs) > 0 {
			host = proxy.IPs[0]
		}
	}
	return socketAddress(host, uint32(n)), nil
}

// capturedPorts keeps the inbound ports served by the virtual inbound
// listener (those without an explicit bind).
func capturedPorts(ports []inboundPort) []inboundPort {
	var out []inboundPort
	for _, p := range ports {
		if p.bind == "" {
			out = append(out, p)
		}
	}
	return out
}

// boundInboundListeners builds a listener named "BIND_PORT" for each
// inbound port with an explicit bind, bound to that address, with the same
// filter chains the virtual inbound listener uses for the port (mesh mTLS
// by the port's PeerAuthentication mode included).
func boundInboundListeners(ports []inboundPort, pol mtlsPolicy) []*listener.Listener {
	var out []*listener.Listener
	for _, p := range ports {
		if p.bind == "" {
			continue
		}
		name := p.bind + "_" + portString(p.port)
		l := &listener.Listener{
			Name:             name,
			Address:          socketAddress(p.bind, p.port),
			TrafficDirection: core.TrafficDirection_INBOUND,
		}
		chains, sniff := inboundPortChains(p, pol.forPort(p.port), "inbound_"+name)
		l.FilterChains = chains
		if sniff {
			l.ListenerFilters = append(l.ListenerFilters, httpInspector())
		}
		if hasTLSChains(chains) {
			l.ListenerFilters = append(l.ListenerFilters, tlsInspector())
		}
		out = append(out, l)
	}
	return out
}

// withServices gives each Sidecar ingress port the services found at the
// same workload port by inboundPorts (from), for the inbound cluster's
// istio.services metadata.
func withServices(ports, from []inboundPort) []inboundPort {
	for i := range ports {
		for _, f := range from {
			if f.port == ports[i].port {
				ports[i].services = f.services
			}
		}
	}
	return ports
}
