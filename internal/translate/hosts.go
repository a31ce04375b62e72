package translate

import (
	"strings"
)

// DomainSuffix is the DNS suffix of in-mesh service hostnames.
const DomainSuffix = "svc.cluster.local"

// RootNamespace is the mesh's configuration root namespace: its Sidecar
// and DestinationRule objects apply to every namespace, as in Istio.
const RootNamespace = "istio-system"

// resolveHost resolves a host as written in Istio configuration against
// the namespace of the object that names it, Istio's way: a short name
// without dots ("reviews") becomes "reviews.NS.svc.cluster.local"; names
// with dots and wildcards stay as they are.
func resolveHost(host, ns string) string {
	if host == "" || host == "*" || strings.Contains(host, ".") {
		return host
	}
	if strings.HasPrefix(host, "*") {
		return host
	}
	return host + "." + ns + "." + DomainSuffix
}

// hostMatches reports whether host (possibly itself a wildcard) is matched
// by pattern, which may be "*", a wildcard "*.example.com" or exact.
func hostMatches(pattern, host string) bool {
	switch {
	case pattern == "*":
		return true
	case strings.HasPrefix(pattern, "*"):
		suffix := pattern[1:]
		if strings.HasPrefix(host, "*") {
			return strings.HasSuffix(host[1:], suffix)
		}
		return strings.HasSuffix(host, suffix)
	default:
		return pattern == host
	}
}

// hostsOverlap reports whether two host patterns can match a common name.
func hostsOverlap(a, b string) bool { return hostMatches(a, b) || hostMatches(b, a) }

// specificity ranks host patterns: exact names beat wildcards, longer
// wildcards beat shorter ones.
func specificity(pattern string) int {
	if !strings.HasPrefix(pattern, "*") {
		return 1 << 20
	}
	return len(pattern)
}

// exportedTo reports whether an object in namespace ns with the given
// exportTo list is visible from namespace to. An empty list means all.
func exportedTo(exportTo []string, ns, to string) bool {
	if len(exportTo) == 0 {
		return true
	}
	for _, e := range exportTo {
		switch e {
		case "*", to:
			return true
		case ".":
			if ns == to {
				return true
			}
		}
	}
	return false
}
