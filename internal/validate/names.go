package validate

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// Istio accepts upper-case letters in host and port names (DNS is
// case-insensitive); Kubernetes object names are checked by the decoder.
var (
	labelRE      = regexp.MustCompile(`^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`)
	headerNameRE = regexp.MustCompile("^[!#$%&'*+\\-.^_`|~A-Za-z0-9]+$")
	strictHdrRE  = regexp.MustCompile(`^[-A-Za-z0-9]+$`)
	// wildcardTailRE is what may follow '*' in a partial wildcard label.
	wildcardTailRE = regexp.MustCompile(`^[-a-zA-Z0-9]*[a-zA-Z0-9]$`)
)

// isLabel reports whether s is a DNS label (case-insensitive).
func isLabel(s string) bool { return len(s) <= 63 && labelRE.MatchString(s) }

// checkFQDN checks a DNS name without wildcards: dot-separated labels,
// at most 255 characters; short names ("reviews") are FQDNs here too.
func checkFQDN(h string) error {
	if err := dnsPreconditions(h); err != nil {
		return err
	}
	return checkLabels(h, h)
}

// checkWildcardDomain checks a host that may start with a wildcard label
// ("*", "*.example.com", "*example.com").
func checkWildcardDomain(h string) error {
	if err := dnsPreconditions(h); err != nil {
		return err
	}
	first, rest, _ := strings.Cut(h, ".")
	if strings.HasPrefix(first, "*") {
		tail := first[1:]
		if tail != "" && (len(tail) > 62 || !wildcardTailRE.MatchString(tail)) {
			return fmt.Errorf("domain name %q invalid (label %q invalid)", h, first)
		}
	} else if !isLabel(first) {
		return fmt.Errorf("domain name %q invalid (label %q invalid)", h, first)
	}
	if rest == "" {
		return nil
	}
	return checkLabels(h, rest)
}

func dnsPreconditions(h string) error {
	if h == "" {
		return fmt.Errorf("empty domain name not allowed")
	}
	if len(h) > 255 {
		return fmt.Errorf("domain name %q too long (max 255)", h)
	}
	return nil
}

func checkLabels(full, s string) error {
	parts := strings.Split(s, ".")
	for i, l := range parts {
		if l == "" && i == len(parts)-1 && i > 0 {
			return nil // trailing dot of a fully qualified name
		}
		if !isLabel(l) {
			return fmt.Errorf("domain name %q invalid (label %q invalid)", full, l)
		}
	}
	return nil
}

// isPartialWildcard reports hosts such as "*foo.com", which Istio accepts
// but Envoy treats as "*.foo.com" plus "foo.com" only in some places.
func isPartialWildcard(h string) bool {
	first, _, _ := strings.Cut(h, ".")
	return strings.HasPrefix(first, "*") && first != "*"
}

// checkNamespacedHost checks "namespace/host" (Sidecar egress, Gateway
// servers). A Gateway may omit the namespace.
func checkNamespacedHost(h string, gateway bool) error {
	ns, host, found := strings.Cut(h, "/")
	if !found {
		if gateway {
			return checkWildcardDomain(h)
		}
		return fmt.Errorf("host %q must be of the form namespace/dnsName (for example \"./reviews.default.svc.cluster.local\" or \"*/*\")", h)
	}
	if ns == "" || host == "" {
		return fmt.Errorf("host %q: namespace and dnsName cannot be empty", h)
	}
	switch ns {
	case "*", ".":
	case "~":
		if gateway {
			return fmt.Errorf("host %q: namespace \"~\" is not allowed in gateway hosts", h)
		}
	default:
		if !isLabel(ns) {
			return fmt.Errorf("host %q: invalid namespace %q", h, ns)
		}
	}
	if host == "*" {
		return nil
	}
	return checkWildcardDomain(host)
}

// hostCovers reports whether host pattern w matches host h: equal, "*",
// or a wildcard suffix ("*.foo.com" covers "a.foo.com" and "*.a.foo.com").
func hostCovers(w, h string) bool {
	w, h = strings.ToLower(w), strings.ToLower(h)
	switch {
	case w == h || w == "*":
		return true
	case strings.HasPrefix(w, "*"):
		return strings.HasSuffix(h, w[1:])
	}
	return false
}

// hostsOverlap reports whether either host matches the other.
func hostsOverlap(a, b string) bool { return hostCovers(a, b) || hostCovers(b, a) }

// isIP reports whether s is an IPv4 or IPv6 address.
func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// checkIPOrCIDR checks an address or CIDR block.
func checkIPOrCIDR(s string) error {
	if strings.Contains(s, "/") {
		if _, err := netip.ParsePrefix(s); err != nil {
			return fmt.Errorf("%q is not a valid CIDR block", s)
		}
		return nil
	}
	if !isIP(s) {
		return fmt.Errorf("%q is not a valid IP address or CIDR block", s)
	}
	return nil
}

// checkUnixPath checks a unix domain socket path: absolute, not a
// directory, or an abstract socket ("@name").
func checkUnixPath(p string) error {
	if p == "" {
		return fmt.Errorf("unix address must not be empty")
	}
	if strings.HasPrefix(p, "@") {
		return nil
	}
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
		return fmt.Errorf("%q is not an absolute path to a file", p)
	}
	return nil
}

// pseudoHeaders are the HTTP/2 pseudo headers routes may match.
var pseudoHeaders = map[string]bool{":method": true, ":scheme": true, ":authority": true, ":path": true, ":status": true}

// checkMatchHeaderName checks a header name in a route match: a token,
// a pseudo header, or a JWT claim ("@request.auth.claims.group").
func checkMatchHeaderName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("header name cannot be empty")
	case pseudoHeaders[name], isClaimRoute(name):
		return nil
	case !headerNameRE.MatchString(name):
		return fmt.Errorf("header name %q is not a valid header name", name)
	}
	return nil
}

func isClaimRoute(name string) bool {
	return strings.HasPrefix(name, "@request.auth.claims.") || strings.HasPrefix(name, "@request.auth.claims[")
}

// checkHeaderValue checks a header value Envoy will format: no control
// characters, and '%' either doubled or delimiting a %COMMAND%.
func checkHeaderValue(v string) error {
	for _, r := range v {
		if (r < 0x20 && r != '\t') || r == 0x7f {
			return fmt.Errorf("header value %q contains control characters", v)
		}
	}
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			continue
		}
		if i+1 < len(v) && v[i+1] == '%' {
			i++
			continue
		}
		end := strings.IndexByte(v[i+1:], '%')
		if end < 0 {
			return fmt.Errorf("header value %q: unescaped '%%' (write %%%% for a literal percent sign)", v)
		}
		cmd := v[i+1 : i+1+end]
		if cmd == "" || !(cmd[0] >= 'A' && cmd[0] <= 'Z') {
			return fmt.Errorf("header value %q: invalid %%COMMAND%% %q (write %%%% for a literal percent sign)", v, "%"+cmd+"%")
		}
		i += end + 1
	}
	return nil
}

// errorf is fmt.Errorf, named for brevity in rule tables.
func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
