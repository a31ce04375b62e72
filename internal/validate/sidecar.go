//lint:file-ignore SA1019 checking deprecated fields (and warning about them) is the validator's job

package validate

import (
	"net"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

func (k *checker) sidecar(sc *networking.Sidecar) {
	if ws := sc.WorkloadSelector; ws != nil {
		k.selectorLabels("spec.workloadSelector.labels", ws.Labels, "; the Sidecar applies to every workload there")
	}
	if len(sc.Egress) == 0 && len(sc.Ingress) == 0 && sc.OutboundTrafficPolicy == nil && sc.InboundConnectionPool == nil {
		k.errorf("spec", "empty Sidecar: set egress, ingress, outboundTrafficPolicy or inboundConnectionPool")
		return
	}
	ports := map[uint32]int{}
	for i, in := range sc.Ingress {
		p := idx("spec.ingress", i)
		if in == nil {
			k.errorf(p, "ingress listener may not be null")
			continue
		}
		if in.Port == nil {
			k.errorf(fld(p, "port"), "required for ingress listeners")
			continue
		}
		pp := fld(p, "port")
		if in.Port.TargetPort > 0 {
			k.errorf(fld(pp, "targetPort"), "targetPort has no effect on sidecars")
		}
		k.sidecarPort(pp, in.Port)
		if in.Bind != "" && !isIP(in.Bind) {
			k.errorf(fld(p, "bind"), "%q is not a valid IP address", in.Bind)
		}
		if j, dup := ports[in.Port.Number]; dup {
			k.errorf(fld(pp, "number"), "duplicate ingress port %d (also spec.ingress[%d])", in.Port.Number, j)
		}
		ports[in.Port.Number] = i
		if in.DefaultEndpoint != "" {
			k.defaultEndpoint(fld(p, "defaultEndpoint"), in.DefaultEndpoint)
		}
		if t := in.Tls; t != nil {
			tp := fld(p, "tls")
			if len(t.SubjectAltNames) > 0 {
				k.errorf(fld(tp, "subjectAltNames"), "not supported in sidecar ingress tls")
			}
			if t.HttpsRedirect {
				k.errorf(fld(tp, "httpsRedirect"), "not supported in sidecar ingress tls")
			}
			if t.CredentialName != "" || len(t.CredentialNames) > 0 {
				k.errorf(fld(tp, "credentialName"), "not supported in sidecar ingress tls")
			}
			if t.Mode == networking.ServerTLSSettings_ISTIO_MUTUAL || t.Mode == networking.ServerTLSSettings_AUTO_PASSTHROUGH {
				k.errorf(fld(tp, "mode"), "mode %s is not allowed in sidecar ingress tls", t.Mode)
			}
			if !isTLSProtocol(in.Port.Protocol) {
				k.errorf(tp, "tls settings are only allowed on HTTPS and TLS ports")
			}
			k.serverTLS(tp, t)
		}
		k.connectionPool(fld(p, "connectionPool"), in.ConnectionPool)
		if in.ConnectionPool.GetHttp() != nil && !isHTTPProtocol(in.Port.Protocol) {
			k.warnf(fld(p, "connectionPool.http"), "HTTP settings on port %d with protocol %q have no effect; only tcp settings apply", in.Port.Number, in.Port.Protocol)
		}
	}
	k.connectionPool("spec.inboundConnectionPool", sc.InboundConnectionPool)

	egressPorts := map[uint32]int{}
	sockets := map[string]bool{}
	catchAll := false
	for i, eg := range sc.Egress {
		p := idx("spec.egress", i)
		if eg == nil {
			k.errorf(p, "egress listener may not be null")
			continue
		}
		if eg.Port == nil {
			switch {
			case catchAll:
				k.errorf(p, "only one egress listener may omit the port")
			case i != len(sc.Egress)-1:
				k.errorf(p, "the egress listener without a port must be the last one")
			}
			catchAll = true
		} else {
			pp := fld(p, "port")
			if eg.Port.TargetPort > 0 {
				k.errorf(fld(pp, "targetPort"), "targetPort has no effect on sidecars")
			}
			if eg.Port.Number == 0 {
				if eg.Port.Protocol != "" && !knownProtocol(eg.Port.Protocol) {
					k.errorf(fld(pp, "protocol"), "unsupported protocol %q", eg.Port.Protocol)
				}
				if !strings.HasPrefix(eg.Bind, unixPrefix) {
					k.errorf(fld(p, "bind"), "a listener with port 0 needs a unix:// bind address")
				} else {
					k.err(fld(p, "bind"), checkUnixPath(strings.TrimPrefix(eg.Bind, unixPrefix)))
				}
				if eg.CaptureMode != networking.CaptureMode_DEFAULT && eg.CaptureMode != networking.CaptureMode_NONE {
					k.errorf(fld(p, "captureMode"), "must be DEFAULT or NONE for unix domain socket listeners")
				}
				if sockets[eg.Bind] {
					k.errorf(fld(p, "bind"), "duplicate unix domain socket %q", eg.Bind)
				}
				sockets[eg.Bind] = true
			} else {
				k.sidecarPort(pp, eg.Port)
				if eg.Bind != "" && !isIP(eg.Bind) {
					k.errorf(fld(p, "bind"), "%q is not a valid IP address", eg.Bind)
				}
				if j, dup := egressPorts[eg.Port.Number]; dup {
					k.errorf(fld(pp, "number"), "duplicate egress port %d (also spec.egress[%d])", eg.Port.Number, j)
				}
				egressPorts[eg.Port.Number] = i
			}
		}
		if len(eg.Hosts) == 0 {
			k.errorf(fld(p, "hosts"), "an egress listener needs at least one host")
		}
		seen := map[string]map[string]bool{}
		for j, h := range eg.Hosts {
			hp := idx(fld(p, "hosts"), j)
			if err := checkNamespacedHost(h, false); err != nil {
				k.err(hp, err)
				continue
			}
			ns, host, _ := strings.Cut(h, "/")
			if ns == "." {
				ns = k.meta.Namespace
			}
			if seen[ns] == nil {
				seen[ns] = map[string]bool{}
			}
			if seen[ns][host] || seen[ns]["*"] || (host == "*" && len(seen[ns]) > 0) {
				k.warnf(hp, "duplicated egress host %q", h)
			}
			seen[ns][host] = true
		}
		if seen["*"]["*"] && len(seen) > 1 {
			k.warnf(fld(p, "hosts"), "\"*/*\" selects everything; the other hosts add nothing")
		}
	}

	if tp := sc.OutboundTrafficPolicy; tp != nil && tp.EgressProxy != nil {
		p := "spec.outboundTrafficPolicy.egressProxy"
		if tp.Mode != networking.OutboundTrafficPolicy_ALLOW_ANY {
			k.errorf(p, "egressProxy needs outboundTrafficPolicy mode ALLOW_ANY")
		} else {
			k.err(fld(p, "host"), checkFQDN(tp.EgressProxy.Host))
			if tp.EgressProxy.Port == nil {
				k.errorf(fld(p, "port"), "required")
			} else {
				k.destination(p, tp.EgressProxy)
			}
		}
	}
}

func (k *checker) sidecarPort(p string, port *networking.SidecarPort) {
	if port.Name != "" && !isLabel(port.Name) {
		k.errorf(fld(p, "name"), "invalid port name %q (must be a DNS label)", port.Name)
	}
	if port.Protocol != "" && !knownProtocol(port.Protocol) {
		k.errorf(fld(p, "protocol"), "unsupported protocol %q", port.Protocol)
	}
	k.port(fld(p, "number"), port.Number)
}

// defaultEndpoint checks an ingress listener's target: 127.0.0.1:port,
// 0.0.0.0:port, [::1]:port, [::]:port, :port or unix:///path.
func (k *checker) defaultEndpoint(p, e string) {
	if strings.HasPrefix(e, unixPrefix) {
		k.err(p, checkUnixPath(strings.TrimPrefix(e, unixPrefix)))
		return
	}
	host, port, err := net.SplitHostPort(e)
	if err != nil {
		k.errorf(p, "invalid defaultEndpoint %q: want 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port> or unix://<path>", e)
		return
	}
	switch host {
	case "", "127.0.0.1", "0.0.0.0", "::1", "::":
	default:
		k.errorf(p, "defaultEndpoint host %q must be 127.0.0.1, 0.0.0.0, ::1 or :: (the workload itself)", host)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		k.errorf(p, "defaultEndpoint port %q is not a number", port)
		return
	}
	k.err(p, checkPort(int64(n)))
}
