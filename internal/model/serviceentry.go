package model

import (
	networking "istio.io/api/networking/v1alpha3"
)

// LabelTLSMode is the workload label that says whether the workload has a
// sidecar terminating mesh mTLS ("istio") or not ("disabled").
const LabelTLSMode = "security.istio.io/tlsMode"

// deriver turns ServiceEntry and WorkloadEntry objects into services and
// endpoints.
type deriver struct{}

// services derives the services and endpoints that ServiceEntries declare:
// one service per host, with endpoints from the entry's inline endpoints
// or, with a workloadSelector, from the WorkloadEntries of its namespace
// whose labels match.
func (deriver) services(entries, workloads []*Config) ([]*Service, []*Endpoint) {
	var svcs []*Service
	var eps []*Endpoint
	for _, c := range entries {
		se, ok := c.Spec.(*networking.ServiceEntry)
		if !ok {
			continue
		}
		key := c.Key()
		ports := make([]Port, 0, len(se.Ports))
		for _, p := range se.Ports {
			proto := ParseProtocol(p.Protocol)
			if p.Protocol == "" {
				proto = ProtocolForPort(p.Name, "")
			}
			ports = append(ports, Port{Name: p.Name, Number: p.Number, Protocol: proto, TargetPort: p.TargetPort})
		}
		res := ResolutionClientSideLB
		switch se.Resolution {
		case networking.ServiceEntry_NONE:
			res = ResolutionPassthrough
		case networking.ServiceEntry_DNS, networking.ServiceEntry_DNS_ROUND_ROBIN:
			res = ResolutionDNS
		}
		var members []*Endpoint
		for _, we := range se.Endpoints {
			members = append(members, endpointFromWorkloadEntry(we, c.Namespace, "", &key))
		}
		if sel := se.WorkloadSelector; sel != nil {
			for _, wc := range workloads {
				we, ok := wc.Spec.(*networking.WorkloadEntry)
				if !ok || wc.Namespace != c.Namespace || !SelectorMatches(sel.Labels, we.Labels) {
					continue
				}
				wkey := wc.Key()
				members = append(members, endpointFromWorkloadEntry(we, wc.Namespace, wc.Name, &wkey))
			}
		}
		for _, host := range se.Hosts {
			svcs = append(svcs, &Service{
				Hostname:     host,
				Namespace:    c.Namespace,
				Addresses:    se.Addresses,
				Ports:        ports,
				Resolution:   res,
				MeshExternal: se.Location == networking.ServiceEntry_MESH_EXTERNAL,
				ExportTo:     se.ExportTo,
				Labels:       c.Labels,
				Origin:       &key,
			})
			for _, m := range members {
				ep := *m
				ep.Service = host
				eps = append(eps, &ep)
			}
		}
	}
	return svcs, eps
}

func endpointFromWorkloadEntry(we *networking.WorkloadEntry, ns, name string, origin *Key) *Endpoint {
	workload := name
	if workload == "" {
		workload = we.Labels["app"]
	}
	tlsMode := TLSModeDisabled
	if we.Labels[LabelTLSMode] == TLSModeIstio {
		tlsMode = TLSModeIstio
	}
	return &Endpoint{
		Address:        we.Address,
		Ports:          we.Ports,
		Labels:         we.Labels,
		Namespace:      ns,
		Workload:       workload,
		ServiceAccount: we.ServiceAccount,
		Locality:       we.Locality,
		Network:        we.Network,
		Weight:         we.Weight,
		TLSMode:        tlsMode,
		Healthy:        true,
		Origin:         origin,
	}
}

// SelectorMatches reports whether labels has every key and value of
// selector. An empty selector matches everything.
func SelectorMatches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
