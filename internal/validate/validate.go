// Package validate checks Istio configuration objects with Istio's semantic
// rules: [Object] checks one object, [Set] checks what only a set of
// objects reveals (a route to a subset no DestinationRule defines, two
// namespace-wide Sidecars), and [Check] decodes and validates whole files
// the way `weft validate` does.
//
// Every diagnostic names the object, the field path and a severity. Errors
// mark configuration Istio rejects; warnings mark configuration Istio
// accepts but that is probably not what was meant.
//
// The rules follow Istio's pkg/config/validation. Where Weft deliberately
// differs:
//   - route weights that do not sum to 100 are a warning (Istio treats
//     them as relative and accepts any non-negative sum but 0);
//   - an HTTP route timeout of 0s is accepted (it disables the timeout);
//   - STATIC ServiceEntries without endpoints or workloadSelector are a
//     warning (they have no endpoints unless WorkloadEntries appear);
//   - a JWT rule with both jwks and jwksUri is an error (Istio silently
//     prefers jwks);
//   - an empty StringMatch prefix, or an empty uri/scheme/method/authority
//     match, is a warning (it matches everything).
package validate

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/model"
)

// Object checks one configuration object with the rules of its kind. It
// never panics on any decoded spec, however malformed.
func Object(c *model.Config) model.Diagnostics {
	if c == nil || c.Spec == nil {
		return nil
	}
	k := &checker{meta: &c.Meta}
	k.annotations(c)
	switch spec := c.Spec.(type) {
	case *networking.VirtualService:
		k.virtualService(spec)
	case *networking.DestinationRule:
		k.destinationRule(spec)
	case *networking.Gateway:
		k.gateway(spec)
	case *networking.ServiceEntry:
		k.serviceEntry(spec)
	case *networking.WorkloadEntry:
		k.workloadEntry(spec)
	case *networking.Sidecar:
		k.sidecar(spec)
	case *security.PeerAuthentication:
		k.peerAuthentication(spec)
	case *security.RequestAuthentication:
		k.requestAuthentication(spec)
	case *security.AuthorizationPolicy:
		k.authorizationPolicy(spec)
	default:
		k.errorf("", "no validation rules for spec type %T", c.Spec)
	}
	return k.diags
}

// checker accumulates the diagnostics of one object.
type checker struct {
	meta  *model.Meta
	diags model.Diagnostics
}

func (k *checker) errorf(path, format string, args ...any) {
	k.diags = append(k.diags, model.Errorf(k.meta, path, format, args...))
}

func (k *checker) warnf(path, format string, args ...any) {
	k.diags = append(k.diags, model.Warningf(k.meta, path, format, args...))
}

// err records err (if any) as an error at path.
func (k *checker) err(path string, err error) {
	if err != nil {
		k.errorf(path, "%v", err)
	}
}

// Path helpers, shared with the decoder so that field paths look alike.
var (
	fld = manifest.JoinField
	idx = manifest.JoinIndex
	key = manifest.JoinKey
)

// annotations checks annotations with meaning to Istio.
func (k *checker) annotations(c *model.Config) {
	const dryRun = "istio.io/dry-run"
	v, ok := c.Annotations[dryRun]
	if !ok {
		return
	}
	p := key("metadata.annotations", dryRun)
	ap, isAuthz := c.Spec.(*security.AuthorizationPolicy)
	if !isAuthz {
		k.errorf(p, "annotation %s is only supported on AuthorizationPolicy", dryRun)
		return
	}
	switch ap.GetAction() {
	case security.AuthorizationPolicy_ALLOW, security.AuthorizationPolicy_DENY:
		if _, err := strconv.ParseBool(v); err != nil {
			k.errorf(p, "invalid value %q (want true or false)", v)
		}
	default:
		k.errorf(p, "annotation %s only supports action ALLOW or DENY, not %s", dryRun, ap.GetAction())
	}
}

// duration checks a duration Istio hands to Envoy: at least 1ms and whole
// milliseconds.
func (k *checker) duration(path string, d *durationpb.Duration) {
	if d == nil {
		return
	}
	if err := d.CheckValid(); err != nil {
		k.errorf(path, "invalid duration: %v", err)
		return
	}
	v := d.AsDuration()
	switch {
	case v < time.Millisecond:
		k.errorf(path, "duration must be at least 1ms, got %v", v)
	case v%time.Millisecond != 0:
		k.errorf(path, "only millisecond precision is supported, got %v", v)
	}
}

// durationOrZero is duration allowing 0 (which disables the timeout).
func (k *checker) durationOrZero(path string, d *durationpb.Duration) {
	if d == nil {
		return
	}
	if err := d.CheckValid(); err != nil {
		k.errorf(path, "invalid duration: %v", err)
		return
	}
	v := d.AsDuration()
	switch {
	case v < 0:
		k.errorf(path, "duration must not be negative, got %v", v)
	case v%time.Millisecond != 0:
		k.errorf(path, "only millisecond precision is supported, got %v", v)
	}
}

// port checks a port number is in 1..65535.
func (k *checker) port(path string, n uint32) {
	if err := checkPort(int64(n)); err != nil {
		k.err(path, err)
	}
}

func checkPort(n int64) error {
	if n < 1 || n > 65535 {
		return fmt.Errorf("port number %d must be in the range 1..65535", n)
	}
	return nil
}

// labels checks a label map as Kubernetes does.
func (k *checker) labels(path string, m map[string]string) {
	for _, name := range sortedKeys(m) {
		if err := manifest.CheckQualifiedName(name); err != nil {
			k.errorf(key(path, name), "invalid label key %q: %v", name, err)
		}
		if err := manifest.CheckLabelValue(m[name]); err != nil {
			k.errorf(key(path, name), "invalid label value %q: %v", m[name], err)
		}
	}
}

// selectorLabels checks workload selector labels: label rules, no empty
// keys, no wildcards; a selector without labels selects everything
// (warning).
func (k *checker) selectorLabels(path string, m map[string]string, what string) {
	if len(m) == 0 {
		k.warnf(path, "workload selector without labels selects every workload in the namespace%s", what)
		return
	}
	for _, name := range sortedKeys(m) {
		p := key(path, name)
		if name == "" {
			k.errorf(p, "empty label key is not supported in selector")
			continue
		}
		if containsStar(name) || containsStar(m[name]) {
			k.errorf(p, "wildcard is not supported in selector: %s=%s", name, m[name])
			continue
		}
	}
	k.labels(path, m)
}

func containsStar(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '*' {
			return true
		}
	}
	return false
}

// exportTo checks an exportTo list.
func (k *checker) exportTo(path string, list []string, allowNone bool) {
	seen := map[string]bool{}
	public, none := false, false
	for i, e := range list {
		p := idx(path, i)
		v := e
		if v == "." {
			v = k.meta.Namespace
		}
		if seen[v] {
			k.errorf(p, "duplicate exportTo entry %q", e)
			continue
		}
		seen[v] = true
		switch e {
		case "*":
			public = true
		case ".":
		case "~":
			if !allowNone {
				k.errorf(p, "exportTo \"~\" is only allowed on ServiceEntry")
			}
			none = true
		default:
			if err := manifest.CheckDNS1123Label(e); err != nil {
				k.errorf(p, "invalid namespace %q: %v", e, err)
			}
		}
	}
	if public && len(list) > 1 {
		k.errorf(path, "cannot combine public (*) with other exportTo values")
	}
	if none && len(list) > 1 {
		k.errorf(path, "cannot export to no one (~) and someone")
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
