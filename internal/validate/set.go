package validate

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/weftmesh/weft/internal/model"
)

// Set checks what only a set of objects reveals, on objects that each pass
// [Object] (it does not repeat per-object checks):
//   - two objects with the same kind, namespace and name (warning: the
//     later replaces the earlier when both are applied);
//   - a route to a subset that no DestinationRule for its host defines
//     (warning), and gateways or delegates a VirtualService names that are
//     not in the set (warning);
//   - more than one Sidecar without a workloadSelector in a namespace
//     (error: Istio picks one arbitrarily);
//   - more than one namespace-wide PeerAuthentication, or DestinationRule
//     without selector for one host, in a namespace (warning).
func Set(cs []*model.Config) model.Diagnostics {
	s := newIndex(cs)
	var ds model.Diagnostics
	ds = append(ds, s.duplicates()...)
	ds = append(ds, s.subsetRefs()...)
	ds = append(ds, s.gatewayAndDelegateRefs()...)
	ds = append(ds, s.singletons()...)
	return ds
}

// index groups a set of objects for cross-object checks.
type index struct {
	all    []*model.Config
	byKind map[model.Kind][]*model.Config
	byKey  map[string]*model.Config // "Kind ns/name"
}

func newIndex(cs []*model.Config) *index {
	s := &index{byKind: map[model.Kind][]*model.Config{}, byKey: map[string]*model.Config{}}
	for _, c := range cs {
		if c == nil || c.Spec == nil {
			continue
		}
		s.all = append(s.all, c)
		s.byKind[c.Kind] = append(s.byKind[c.Kind], c)
		if _, dup := s.byKey[objKey(c.Kind, c.Namespace, c.Name)]; !dup {
			s.byKey[objKey(c.Kind, c.Namespace, c.Name)] = c
		}
	}
	return s
}

func objKey(k model.Kind, ns, name string) string { return string(k) + " " + ns + "/" + name }

func (s *index) duplicates() model.Diagnostics {
	var ds model.Diagnostics
	for _, c := range s.all {
		first := s.byKey[objKey(c.Kind, c.Namespace, c.Name)]
		if first != c {
			ds = append(ds, model.Warningf(&c.Meta, "metadata.name", "duplicate object: %s %s/%s is also defined at %s; applying both, the later replaces the earlier", c.Kind, c.Namespace, c.Name, first.Origin))
		}
	}
	return ds
}

// fqdn expands a short service name the way Istio does: "reviews" in
// namespace "prod" is "reviews.prod.svc.cluster.local".
func fqdn(host, ns string) string {
	if host == "" || strings.Contains(host, ".") || strings.Contains(host, "*") {
		return strings.ToLower(host)
	}
	return strings.ToLower(host) + "." + ns + ".svc.cluster.local"
}

// destinationRulesFor returns the DestinationRules that apply to host as
// seen from namespace ns: exact host matches, or else the most specific
// wildcard match.
func (s *index) destinationRulesFor(host, ns string) []*model.Config {
	h := fqdn(host, ns)
	var exact, wild []*model.Config
	for _, c := range s.byKind[model.KindDestinationRule] {
		dr := c.Spec.(*networking.DestinationRule)
		if dr.WorkloadSelector != nil {
			continue
		}
		drHost := fqdn(dr.Host, c.Namespace)
		switch {
		case drHost == h:
			exact = append(exact, c)
		case hostCovers(drHost, h):
			wild = append(wild, c)
		}
	}
	if len(exact) > 0 {
		return exact
	}
	return wild
}

// destRef is a destination named somewhere in a VirtualService.
type destRef struct {
	path string
	dest *networking.Destination
}

func virtualServiceDestinations(vs *networking.VirtualService) []destRef {
	var out []destRef
	for i, r := range vs.Http {
		p := idx("spec.http", i)
		for j, d := range r.GetRoute() {
			out = append(out, destRef{fld(idx(fld(p, "route"), j), "destination"), d.GetDestination()})
		}
		if r.GetMirror() != nil {
			out = append(out, destRef{fld(p, "mirror"), r.Mirror})
		}
		for j, m := range r.GetMirrors() {
			out = append(out, destRef{fld(idx(fld(p, "mirrors"), j), "destination"), m.GetDestination()})
		}
	}
	for i, r := range vs.Tcp {
		for j, d := range r.GetRoute() {
			out = append(out, destRef{fld(idx(fld(idx("spec.tcp", i), "route"), j), "destination"), d.GetDestination()})
		}
	}
	for i, r := range vs.Tls {
		for j, d := range r.GetRoute() {
			out = append(out, destRef{fld(idx(fld(idx("spec.tls", i), "route"), j), "destination"), d.GetDestination()})
		}
	}
	return out
}

func (s *index) subsetRefs() model.Diagnostics {
	var ds model.Diagnostics
	for _, c := range s.byKind[model.KindVirtualService] {
		vs := c.Spec.(*networking.VirtualService)
		for _, ref := range virtualServiceDestinations(vs) {
			d := ref.dest
			if d == nil || d.Subset == "" || d.Host == "" {
				continue
			}
			drs := s.destinationRulesFor(d.Host, c.Namespace)
			if len(drs) == 0 {
				ds = append(ds, model.Warningf(&c.Meta, fld(ref.path, "subset"),
					"subset %q of host %q: no DestinationRule in the validated set defines subsets for this host (requests would fail with 503 NR)", d.Subset, d.Host))
				continue
			}
			found := false
			var names []string
			for _, drc := range drs {
				names = append(names, drc.Namespace+"/"+drc.Name)
				for _, sub := range drc.Spec.(*networking.DestinationRule).Subsets {
					if sub.GetName() == d.Subset {
						found = true
					}
				}
			}
			if !found {
				ds = append(ds, model.Warningf(&c.Meta, fld(ref.path, "subset"),
					"subset %q is not defined by DestinationRule %s for host %q (requests would fail with 503 NR)", d.Subset, strings.Join(names, ", "), d.Host))
			}
		}
	}
	return ds
}

// gatewayKey resolves a VirtualService's gateway reference to "ns/name";
// "" for the mesh gateway.
func gatewayKey(ref, vsNamespace string) string {
	if ref == "mesh" {
		return ""
	}
	if ns, name, ok := strings.Cut(ref, "/"); ok {
		if ns == "." {
			ns = vsNamespace
		}
		return ns + "/" + name
	}
	if name, rest, ok := strings.Cut(ref, "."); ok {
		ns, _, _ := strings.Cut(rest, ".")
		return ns + "/" + name // legacy name.namespace.svc.cluster.local
	}
	return vsNamespace + "/" + ref
}

func (s *index) gatewayAndDelegateRefs() model.Diagnostics {
	var ds model.Diagnostics
	for _, c := range s.byKind[model.KindVirtualService] {
		vs := c.Spec.(*networking.VirtualService)
		check := func(path, ref string) {
			k := gatewayKey(ref, c.Namespace)
			ns, name, _ := strings.Cut(k, "/")
			if k == "" || !isLabel(ns) || !isLabel(name) {
				return // mesh, or an invalid reference Object reports
			}
			if s.byKey[objKey(model.KindGateway, ns, name)] == nil {
				ds = append(ds, model.Warningf(&c.Meta, path, "gateway %s is not among the validated objects", k))
			}
		}
		for i, g := range vs.Gateways {
			check(idx("spec.gateways", i), g)
		}
		for i, r := range vs.Http {
			for j, m := range r.GetMatch() {
				for l, g := range m.GetGateways() {
					check(idx(fld(idx(fld(idx("spec.http", i), "match"), j), "gateways"), l), g)
				}
			}
			if d := r.GetDelegate(); d != nil && d.Name != "" {
				ns := d.Namespace
				if ns == "" {
					ns = c.Namespace
				}
				p := fld(idx("spec.http", i), "delegate")
				target := s.byKey[objKey(model.KindVirtualService, ns, d.Name)]
				switch {
				case target == nil:
					ds = append(ds, model.Warningf(&c.Meta, p, "delegate VirtualService %s/%s is not among the validated objects", ns, d.Name))
				case len(target.Spec.(*networking.VirtualService).Hosts) > 0:
					ds = append(ds, model.Warningf(&c.Meta, p, "delegate VirtualService %s/%s has hosts; delegates must have none and it is ignored", ns, d.Name))
				}
			}
		}
	}
	return ds
}

// singletons checks resources of which a namespace should have only one.
func (s *index) singletons() model.Diagnostics {
	var ds model.Diagnostics
	first := map[string]*model.Config{}
	for _, c := range s.byKind[model.KindSidecar] {
		if c.Spec.(*networking.Sidecar).WorkloadSelector != nil {
			continue
		}
		if f, ok := first[c.Namespace]; ok {
			ds = append(ds, model.Errorf(&c.Meta, "spec.workloadSelector",
				"namespace %s already has a Sidecar without workloadSelector (%s at %s); only one may apply to the namespace", c.Namespace, f.Name, f.Origin))
			continue
		}
		first[c.Namespace] = c
	}
	first = map[string]*model.Config{}
	for _, c := range s.byKind[model.KindPeerAuthentication] {
		if len(c.Spec.(*security.PeerAuthentication).GetSelector().GetMatchLabels()) > 0 {
			continue
		}
		if f, ok := first[c.Namespace]; ok {
			ds = append(ds, model.Warningf(&c.Meta, "spec.selector",
				"namespace %s already has a namespace-wide PeerAuthentication (%s at %s); Istio uses only the oldest", c.Namespace, f.Name, f.Origin))
			continue
		}
		first[c.Namespace] = c
	}
	first = map[string]*model.Config{}
	for _, c := range s.byKind[model.KindDestinationRule] {
		dr := c.Spec.(*networking.DestinationRule)
		if dr.WorkloadSelector != nil {
			continue
		}
		k := c.Namespace + " " + fqdn(dr.Host, c.Namespace)
		if f, ok := first[k]; ok {
			ds = append(ds, model.Warningf(&c.Meta, "spec.host",
				"DestinationRule %s (at %s) already applies to host %q in namespace %s; Istio merges them and the first one wins on conflicts", f.Name, f.Origin, dr.Host, c.Namespace))
			continue
		}
		first[k] = c
	}
	return ds
}
