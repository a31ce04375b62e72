package xds

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/model"
)

// Node metadata keys Weft reads, with Istio's names.
const (
	MetaNamespace      = "NAMESPACE"
	MetaWorkloadName   = "WORKLOAD_NAME"
	MetaLabels         = "LABELS"
	MetaServiceAccount = "SERVICE_ACCOUNT"
	MetaInstanceIPs    = "INSTANCE_IPS"
	MetaGenerator      = "GENERATOR"
	MetaPodName        = "POD_NAME"
)

// ProxyFromNode builds the model of an xDS client from the node it sent.
// The node id is either Istio's "TYPE~IP~POD.NAMESPACE~DOMAIN" or any
// other non-empty string (a plain id); node metadata, when present, takes
// precedence over what the id says. Errors name the offending field.
func ProxyFromNode(n *core.Node) (*model.Proxy, error) {
	id := n.GetId()
	if id == "" {
		return nil, fmt.Errorf("node.id: empty; the proxy must identify itself")
	}
	p := &model.Proxy{ID: id, Type: model.ProxySidecar}
	var podName string
	if parts := strings.Split(id, "~"); len(parts) == 4 {
		switch model.ProxyType(parts[0]) {
		case model.ProxySidecar, model.ProxyRouter:
			p.Type = model.ProxyType(parts[0])
		default:
			return nil, fmt.Errorf("node.id %q: unknown proxy type %q (want sidecar or router)", id, parts[0])
		}
		if parts[1] != "" {
			if _, err := netip.ParseAddr(parts[1]); err != nil {
				return nil, fmt.Errorf("node.id %q: invalid IP address %q", id, parts[1])
			}
			p.IPs = []string{parts[1]}
		}
		pod, ns, ok := strings.Cut(parts[2], ".")
		if !ok || pod == "" || ns == "" {
			return nil, fmt.Errorf("node.id %q: third part %q must be POD.NAMESPACE", id, parts[2])
		}
		podName, p.Namespace = pod, ns
	} else if strings.Contains(id, "~") {
		return nil, fmt.Errorf("node.id %q: has %d '~'-separated parts; Istio ids have 4 (TYPE~IP~POD.NAMESPACE~DOMAIN)", id, len(parts))
	}

	fields := n.GetMetadata().GetFields()
	str := func(key string) (string, error) {
		v, ok := fields[key]
		if !ok {
			return "", nil
		}
		s, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok {
			return "", fmt.Errorf("node %q: metadata.%s: must be a string", id, key)
		}
		return s.StringValue, nil
	}
	var err error
	set := func(dst *string, key string) {
		if err != nil {
			return
		}
		var v string
		if v, err = str(key); err == nil && v != "" {
			*dst = v
		}
	}
	set(&p.Namespace, MetaNamespace)
	set(&p.Workload, MetaWorkloadName)
	set(&p.ServiceAccount, MetaServiceAccount)
	set(&p.Generator, MetaGenerator)
	set(&podName, MetaPodName)
	var ips string
	set(&ips, MetaInstanceIPs)
	if err != nil {
		return nil, err
	}
	if ips != "" {
		p.IPs = nil
		for _, ip := range strings.Split(ips, ",") {
			ip = strings.TrimSpace(ip)
			if _, perr := netip.ParseAddr(ip); perr != nil {
				return nil, fmt.Errorf("node %q: metadata.%s: invalid IP address %q", id, MetaInstanceIPs, ip)
			}
			p.IPs = append(p.IPs, ip)
		}
	}
	if v, ok := fields[MetaLabels]; ok {
		st := v.GetStructValue()
		if st == nil {
			return nil, fmt.Errorf("node %q: metadata.%s: must be a struct of strings", id, MetaLabels)
		}
		p.Labels = make(map[string]string, len(st.GetFields()))
		for k, lv := range st.GetFields() {
			s, ok := lv.GetKind().(*structpb.Value_StringValue)
			if !ok {
				return nil, fmt.Errorf("node %q: metadata.%s.%s: must be a string", id, MetaLabels, k)
			}
			p.Labels[k] = s.StringValue
		}
	}
	if p.Workload == "" {
		p.Workload = podName
	}
	if p.Namespace == "" {
		p.Namespace = "default"
	}
	if p.Generator != "" && p.Generator != model.GeneratorGRPC {
		return nil, fmt.Errorf("node %q: metadata.%s: unknown generator %q (want %q or none)", id, MetaGenerator, p.Generator, model.GeneratorGRPC)
	}
	// Keep the remaining metadata as sent: strings as they are, other
	// values in their JSON form.
	for k, v := range fields {
		switch k {
		case MetaNamespace, MetaWorkloadName, MetaLabels, MetaServiceAccount, MetaInstanceIPs, MetaGenerator:
			continue
		}
		if p.Metadata == nil {
			p.Metadata = map[string]string{}
		}
		if s, ok := v.GetKind().(*structpb.Value_StringValue); ok {
			p.Metadata[k] = s.StringValue
		} else if b, jerr := protojson.Marshal(v); jerr == nil {
			p.Metadata[k] = string(b)
		}
	}
	// The node's locality, for locality-aware load balancing, in the
	// "region/zone/subzone" form the translator reads (unless metadata
	// already sets it).
	if loc := n.GetLocality(); loc != nil && p.Metadata[MetaLocality] == "" {
		if s := strings.TrimRight(loc.GetRegion()+"/"+loc.GetZone()+"/"+loc.GetSubZone(), "/"); s != "" {
			if p.Metadata == nil {
				p.Metadata = map[string]string{}
			}
			p.Metadata[MetaLocality] = s
		}
	}
	return p, nil
}

// MetaLocality is the proxy metadata key of the proxy's locality
// ("region/zone/subzone"), filled from the node's locality.
const MetaLocality = "LOCALITY"

// isProxyless reports whether the node is a proxyless gRPC client, from
// its metadata alone (used to route requests to the right cache).
func isProxyless(n *core.Node) bool {
	return n.GetMetadata().GetFields()[MetaGenerator].GetStringValue() == model.GeneratorGRPC
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
