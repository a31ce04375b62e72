package translate

import (
	"cmp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/weftmesh/weft/internal/model"
)

// proxyKey identifies the proxies that get the same configuration from
// one snapshot: Generate reads nothing else of a proxy. Fields that only
// matter in some snapshots (labels, the bind address) are left empty in
// snapshots where nothing reads them, so that the sidecars of one
// namespace usually share a key.
//
// Every field of model.Proxy that the generator reads must be reflected
// here; TestKeyedGenerateEqualsGenerate compares keyed and plain output.
type proxyKey struct {
	typ       model.ProxyType
	namespace string
	generator string
	// Metadata the generator reads.
	locality, pathNormalization, interception string
	// labels are the proxy's labels, canonically ordered, when some
	// configuration in the snapshot selects workloads by label.
	labels string
	// inbound lists the proxy's inbound ports, derived from its IPs and
	// the endpoints at them.
	inbound string
	// bind is the proxy's first IP when some Sidecar declares ingress
	// listeners (they bind to it).
	bind string
}

// snapFacts are the properties of a snapshot that decide which proxy
// fields go into its keys.
type snapFacts struct {
	// sidecarLabels is true when some configuration other than a Gateway
	// consults workload labels; routerLabels also counts Gateways.
	sidecarLabels, routerLabels bool
	// sidecarIngress is true when some Sidecar declares ingress listeners.
	sidecarIngress bool
	// byAddress indexes the snapshot's endpoints by address, in the
	// order inboundPorts visits them, so that a proxy's key costs a
	// lookup per IP rather than a walk over every service.
	byAddress map[string][]endpointRef
}

// endpointRef is one endpoint of a service, by position: services[svc]
// and its endpoints[ep].
type endpointRef struct {
	svc, ep  int
	service  *model.Service
	endpoint *model.Endpoint
}

// selectorFields are the fields by which Istio configuration selects
// workloads (or, through targetRefs, gateways by their labels).
var selectorFields = map[protoreflect.Name]bool{
	"selector": true, "workload_selector": true, "source_labels": true,
	"target_ref": true, "target_refs": true,
}

// describesWorkloads are the kinds whose selectors pick endpoints for a
// service (ServiceEntry's workloadSelector over WorkloadEntries), never
// the proxy being configured.
var describesWorkloads = map[model.Kind]bool{model.KindServiceEntry: true, model.KindWorkloadEntry: true}

func newSnapFacts(snap *model.Snapshot) *snapFacts {
	f := &snapFacts{}
	for _, c := range snap.Configs() {
		if c.Spec == nil || describesWorkloads[c.Kind] {
			continue
		}
		if consultsLabels(c.Spec.ProtoReflect()) {
			f.routerLabels = true
			if c.Kind != model.KindGateway {
				f.sidecarLabels = true
			}
		}
		if c.Kind == model.KindSidecar && hasField(c.Spec.ProtoReflect(), "ingress") {
			f.sidecarIngress = true
		}
	}
	f.byAddress = map[string][]endpointRef{}
	for i, svc := range snap.Services() {
		for j, ep := range snap.Endpoints(svc.Hostname) {
			f.byAddress[ep.Address] = append(f.byAddress[ep.Address], endpointRef{svc: i, ep: j, service: svc, endpoint: ep})
		}
	}
	return f
}

// inboundKey is inboundPorts(snap.Services(), snap.Endpoints, ips)
// written as a key, from the address index.
func (f *snapFacts) inboundKey(ips []string) string {
	var refs []endpointRef
	for i, ip := range ips {
		if containsString(ips[:i], ip) {
			continue // inboundPorts visits an endpoint once
		}
		refs = append(refs, f.byAddress[ip]...)
	}
	if len(refs) == 0 {
		return ""
	}
	// inboundPorts walks services, then each one's endpoints, in order.
	slices.SortFunc(refs, func(a, b endpointRef) int {
		if a.svc != b.svc {
			return cmp.Compare(a.svc, b.svc)
		}
		return cmp.Compare(a.ep, b.ep)
	})
	seen := map[uint32]int{} // port -> index in ports
	var ports []inboundPort
	for _, r := range refs {
		for _, p := range r.service.Ports {
			tp := r.endpoint.TargetPort(p)
			i, ok := seen[tp]
			if !ok {
				i = len(ports)
				seen[tp] = i
				ports = append(ports, inboundPort{port: tp, protocol: p.Protocol})
			}
			ports[i].addService(r.service)
		}
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i].port < ports[j].port })
	var b strings.Builder
	for _, p := range ports {
		p.key(&b)
	}
	return b.String()
}

// consultsLabels reports whether m, or a message inside it, sets one of
// the selectorFields. Unknown kinds are covered without a list of them.
func consultsLabels(m protoreflect.Message) bool {
	found := false
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if selectorFields[fd.Name()] {
			found = true
			return false
		}
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && !found; i++ {
				found = consultsLabels(l.Get(i).Message())
			}
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					found = consultsLabels(mv.Message())
					return !found
				})
			}
		default:
			found = consultsLabels(v.Message())
		}
		return !found
	})
	return found
}

// hasField reports whether m sets its field name.
func hasField(m protoreflect.Message, name protoreflect.Name) bool {
	fd := m.Descriptor().Fields().ByName(name)
	return fd != nil && m.Has(fd)
}

// keyOf computes proxy's key in snap, whose facts are f.
func keyOf(snap *model.Snapshot, f *snapFacts, proxy *model.Proxy) proxyKey {
	k := proxyKey{
		typ:               proxy.Type,
		namespace:         proxy.Namespace,
		generator:         proxy.Generator,
		locality:          proxy.Metadata[MetadataLocality],
		pathNormalization: proxy.Metadata[MetadataPathNormalization],
		interception:      proxy.Metadata[MetadataInterceptionMode],
	}
	if f.sidecarLabels || (f.routerLabels && proxy.Type == model.ProxyRouter) {
		k.labels = canonicalLabels(proxy.Labels)
	}
	if f.sidecarIngress && len(proxy.IPs) > 0 {
		k.bind = proxy.IPs[0]
	}
	k.inbound = f.inboundKey(proxy.IPs)
	return k
}

func canonicalLabels(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(labels[k])
		b.WriteByte(0)
	}
	return b.String()
}

// key writes p for proxyKey: port, protocol and the services' hosts.
func (p inboundPort) key(b *strings.Builder) {
	b.WriteString(strconv.FormatUint(uint64(p.port), 10))
	b.WriteByte('/')
	b.WriteString(string(p.protocol))
	for i, s := range p.services {
		if i == 0 {
			b.WriteByte('=')
		} else {
			b.WriteByte('+')
		}
		b.WriteString(s.Hostname)
	}
	b.WriteByte(',')
}
