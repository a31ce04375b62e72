package validate

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

func (k *checker) serviceEntry(se *networking.ServiceEntry) {
	if ws := se.WorkloadSelector; ws != nil {
		k.selectorLabels("spec.workloadSelector.labels", ws.Labels, "")
		if len(se.Endpoints) > 0 {
			k.errorf("spec.workloadSelector", "only one of workloadSelector and endpoints may be set")
		}
	}
	if len(se.Hosts) == 0 {
		k.errorf("spec.hosts", "a service entry needs at least one host")
	}
	for i, h := range se.Hosts {
		p := idx("spec.hosts", i)
		if h == "*" {
			k.errorf(p, "host * is not allowed in a service entry")
			continue
		}
		if err := checkWildcardDomain(h); err != nil {
			k.err(p, err)
			continue
		}
		if isPartialWildcard(h) {
			k.warnf(p, "partial wildcard %q is not supported; use a full label wildcard such as \"*.example.com\"", h)
		}
	}
	cidr := false
	for i, a := range se.Addresses {
		cidr = cidr || strings.Contains(a, "/")
		k.err(idx("spec.addresses", i), checkIPOrCIDR(a))
	}
	if cidr && se.Resolution != networking.ServiceEntry_NONE && se.Resolution != networking.ServiceEntry_STATIC {
		k.errorf("spec.addresses", "CIDR addresses are only allowed with NONE or STATIC resolution")
	}

	portNames := map[string]int{}
	portNumbers := map[uint32]int{}
	for i, port := range se.Ports {
		p := idx("spec.ports", i)
		if port == nil {
			k.errorf(p, "port may not be null")
			continue
		}
		if j, dup := portNames[port.Name]; dup {
			k.errorf(fld(p, "name"), "duplicate port name %q (also spec.ports[%d])", port.Name, j)
		} else {
			portNames[port.Name] = i
		}
		if j, dup := portNumbers[port.Number]; dup {
			k.errorf(fld(p, "number"), "duplicate port number %d (also spec.ports[%d])", port.Number, j)
		} else {
			portNumbers[port.Number] = i
		}
		k.servicePort(p, port.Name, port.Protocol, port.Number)
		if port.TargetPort != 0 {
			k.port(fld(p, "targetPort"), port.TargetPort)
		}
	}

	switch se.Resolution {
	case networking.ServiceEntry_NONE:
		if len(se.Endpoints) > 0 {
			k.errorf("spec.endpoints", "no endpoints may be given with resolution NONE")
		}
		if se.WorkloadSelector != nil {
			k.warnf("spec.workloadSelector", "workloadSelector has no effect with resolution NONE")
		}
	case networking.ServiceEntry_STATIC:
		if len(se.Endpoints) == 0 && se.WorkloadSelector == nil {
			k.warnf("spec.resolution", "STATIC resolution without endpoints or workloadSelector: the service has no endpoints unless WorkloadEntries are added")
		}
		for i, ep := range se.Endpoints {
			p := idx("spec.endpoints", i)
			if ep == nil {
				k.errorf(p, "endpoint may not be null")
				continue
			}
			k.endpoint(p, ep, portNames, false)
		}
	case networking.ServiceEntry_DNS, networking.ServiceEntry_DNS_ROUND_ROBIN:
		if len(se.Endpoints) == 0 {
			for i, h := range se.Hosts {
				if h != "*" && checkFQDN(h) != nil && checkWildcardDomain(h) == nil {
					k.errorf(idx("spec.hosts", i), "hosts must be fully qualified (no wildcards) when resolution is %s and no endpoints are given", se.Resolution)
				}
			}
		}
		if se.Resolution == networking.ServiceEntry_DNS_ROUND_ROBIN && len(se.Endpoints) > 1 {
			k.errorf("spec.endpoints", "resolution DNS_ROUND_ROBIN allows at most one endpoint")
		}
		for i, ep := range se.Endpoints {
			p := idx("spec.endpoints", i)
			if ep == nil {
				k.errorf(p, "endpoint may not be null")
				continue
			}
			k.endpoint(p, ep, portNames, true)
		}
		if len(se.Addresses) > 0 && len(se.Hosts) > 1 {
			for _, port := range se.Ports {
				if port != nil && !isHTTPProtocol(port.Protocol) && !isTLSProtocol(port.Protocol) {
					k.warnf("spec.hosts", "a service entry with addresses and a TCP port should have one host")
					break
				}
			}
		}
	default:
		k.errorf("spec.resolution", "unsupported resolution %s", se.Resolution)
	}

	if se.Resolution != networking.ServiceEntry_NONE && len(se.Hosts) > 1 {
		for i, port := range se.Ports {
			if port != nil && !isHTTPProtocol(port.Protocol) && !isTLSProtocol(port.Protocol) {
				k.errorf(idx("spec.ports", i), "multiple hosts need HTTP or TLS ports to tell them apart (resolution %s, protocol %q)", se.Resolution, port.Protocol)
				break
			}
		}
	}
	k.exportTo("spec.exportTo", se.ExportTo, true)
}

// servicePort checks a port's name, protocol and number.
func (k *checker) servicePort(p, name, protocol string, number uint32) {
	if !isLabel(name) {
		if name == "" {
			k.errorf(fld(p, "name"), "required")
		} else {
			k.errorf(fld(p, "name"), "invalid port name %q (must be a DNS label)", name)
		}
	}
	if protocol != "" && !knownProtocol(protocol) {
		k.errorf(fld(p, "protocol"), "unsupported protocol %q", protocol)
	}
	k.port(fld(p, "number"), number)
}

// endpoint checks a ServiceEntry endpoint (a WorkloadEntry).
// servicePorts are the port names the ServiceEntry defines; names says
// whether DNS names are acceptable addresses.
func (k *checker) endpoint(p string, we *networking.WorkloadEntry, servicePorts map[string]int, names bool) {
	addr := we.Address
	switch {
	case addr == "":
		if we.Network == "" {
			k.errorf(fld(p, "address"), "required (unless network is set)")
		}
	case strings.HasPrefix(addr, unixPrefix):
		k.err(fld(p, "address"), checkUnixPath(strings.TrimPrefix(addr, unixPrefix)))
		if len(we.Ports) > 0 {
			k.errorf(fld(p, "ports"), "a unix domain socket endpoint must not have ports")
		}
		if servicePorts != nil && len(servicePorts) != 1 {
			k.errorf(fld(p, "address"), "a unix domain socket endpoint needs exactly one service port")
		}
	case isIP(addr):
	case names:
		if checkFQDN(addr) != nil {
			k.errorf(fld(p, "address"), "endpoint address %q is not a valid FQDN or IP address", addr)
		}
	default:
		k.errorf(fld(p, "address"), "endpoint address %q is not a valid IP address (resolution STATIC)", addr)
	}
	for _, name := range sortedKeys(we.Ports) {
		pp := key(fld(p, "ports"), name)
		if servicePorts != nil {
			if _, ok := servicePorts[name]; !ok {
				k.errorf(pp, "port %q is not defined by the service entry", name)
			}
		}
		if !isLabel(name) {
			k.errorf(pp, "invalid port name %q", name)
		}
		k.port(pp, we.Ports[name])
	}
	k.labels(fld(p, "labels"), we.Labels)
}

func (k *checker) workloadEntry(we *networking.WorkloadEntry) {
	if we.Address == "" && we.Network != "" {
		k.warnf("spec.address", "address is unset with network %q", we.Network)
	}
	k.endpoint("spec", we, nil, true)
	if we.ServiceAccount != "" && !isLabel(we.ServiceAccount) && checkFQDN(we.ServiceAccount) != nil {
		k.errorf("spec.serviceAccount", "invalid service account name %q", we.ServiceAccount)
	}
}
