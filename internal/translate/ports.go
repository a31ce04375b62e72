package translate

import (
	"net/netip"
	"sort"

	"github.com/weftmesh/weft/internal/model"
)

// portServices groups the visible services declaring one port number by
// how the sidecar handles them.
type portServices struct {
	port uint32
	// http are services speaking HTTP, HTTP/2 or gRPC on the port.
	http []*model.Service
	// sniffed are services of unknown protocol: HTTP is detected per
	// connection, anything else is proxied as TCP.
	sniffed []*model.Service
	// tcp are services proxied as opaque TCP (TCP, TLS, HTTPS, Mongo, ...).
	tcp []*model.Service
}

// hasHTTP reports whether the port needs an HTTP route configuration.
func (p *portServices) hasHTTP() bool { return len(p.http) > 0 || len(p.sniffed) > 0 }

// proxyPorts are the ports the sidecar itself listens on (admin,
// outbound and inbound capture, HBONE, agent, readiness, Prometheus): a
// service port among them gets no outbound listener, as in Istio, since
// the listener would clash with the proxy's own.
var proxyPorts = map[uint32]bool{15000: true, 15001: true, 15004: true, 15006: true, 15008: true, 15020: true, 15021: true, 15090: true}

// groupByPort groups services by port number, sorted by port; within a
// port services keep their (hostname) order. UDP ports are skipped: Envoy
// does not proxy them; so are the proxy's own ports, and ports a Sidecar's
// egress listeners do not admit the service on.
func groupByPort(services []*model.Service, sc *scope) []*portServices {
	byPort := map[uint32]*portServices{}
	for _, svc := range services {
		for _, p := range svc.Ports {
			if proxyPorts[p.Number] || !sc.admitsPort(svc, p.Number) {
				continue
			}
			ps := byPort[p.Number]
			if ps == nil {
				ps = &portServices{port: p.Number}
				byPort[p.Number] = ps
			}
			switch {
			case p.Protocol == model.ProtocolUDP:
			case p.Protocol.IsHTTP():
				ps.http = append(ps.http, svc)
			case p.Protocol == model.ProtocolUnknown:
				ps.sniffed = append(ps.sniffed, svc)
			default:
				ps.tcp = append(ps.tcp, svc)
			}
		}
	}
	out := make([]*portServices, 0, len(byPort))
	for _, ps := range byPort {
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].port < out[j].port })
	return out
}

// vip returns the service's first virtual IP address (not a CIDR), or "".
func vip(svc *model.Service) string {
	for _, a := range svc.Addresses {
		if ip, err := netip.ParseAddr(a); err == nil && !ip.IsUnspecified() {
			return a
		}
	}
	return ""
}
