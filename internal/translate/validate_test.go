package translate

import (
	"testing"

	"google.golang.org/protobuf/proto"
)

// validateResources fails the test for every resource whose ValidateAll
// reports an error, including messages packed in Any fields (which
// ValidateAll skips and Envoy checks), and for duplicate or unsorted names.
func validateResources(t testing.TB, r *Resources) {
	t.Helper()
	check := func(kind, name string, m proto.Message) {
		t.Helper()
		if err := validateDeep(m); err != nil {
			t.Errorf("%s %q: %v", kind, name, err)
		}
	}
	order := func(kind string, names []string) {
		t.Helper()
		for i := 1; i < len(names); i++ {
			if names[i-1] >= names[i] {
				t.Errorf("%s not sorted or duplicated: %q then %q", kind, names[i-1], names[i])
			}
		}
	}
	var names []string
	for _, c := range r.Clusters {
		check("cluster", c.Name, c)
		names = append(names, c.Name)
	}
	order("clusters", names)
	names = nil
	for _, e := range r.Endpoints {
		check("endpoints", e.ClusterName, e)
		names = append(names, e.ClusterName)
		for _, l := range e.Endpoints {
			if l.GetLoadBalancingWeight().GetValue() == 0 {
				t.Errorf("endpoints %q: locality %v without weight", e.ClusterName, l.Locality)
			}
		}
	}
	order("endpoints", names)
	names = nil
	for _, l := range r.Listeners {
		check("listener", l.Name, l)
		names = append(names, l.Name)
	}
	order("listeners", names)
	names = nil
	for _, rc := range r.Routes {
		check("route", rc.Name, rc)
		names = append(names, rc.Name)
	}
	order("routes", names)
	names = nil
	for _, s := range r.Secrets {
		check("secret", s.Name, s)
		names = append(names, s.Name)
	}
	order("secrets", names)
}
