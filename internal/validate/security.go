package validate

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"

	security "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
)

func (k *checker) peerAuthentication(pa *security.PeerAuthentication) {
	if len(pa.PortLevelMtls) > 0 && len(pa.Selector.GetMatchLabels()) == 0 {
		k.errorf("spec.portLevelMtls", "port-level mTLS needs a workload selector; mesh- and namespace-wide policies cannot have portLevelMtls")
	}
	for port, m := range pa.PortLevelMtls {
		p := key("spec.portLevelMtls", strconv.FormatUint(uint64(port), 10))
		k.err(p, checkPort(int64(port)))
		if m == nil {
			k.errorf(p, "mTLS setting may not be null")
		}
	}
	k.workloadSelector("spec.selector", pa.Selector)
}

// policyTarget checks selector, targetRef and targetRefs, which exclude one
// another.
func (k *checker) policyTarget(sel *typev1beta1.WorkloadSelector, ref *typev1beta1.PolicyTargetReference, refs []*typev1beta1.PolicyTargetReference) {
	set := 0
	if sel != nil {
		set++
	}
	if ref != nil {
		set++
	}
	if len(refs) > 0 {
		set++
	}
	if set > 1 {
		k.errorf("spec", "only one of selector, targetRef and targetRefs may be set")
	}
	k.workloadSelector("spec.selector", sel)
	k.targetRef("spec.targetRef", ref)
	for i, r := range refs {
		k.targetRef(idx("spec.targetRefs", i), r)
	}
}

// allowedTargets are the group/kind pairs a policy may attach to.
var allowedTargets = map[string]bool{
	"/Service": true, "core/Service": true,
	"networking.istio.io/ServiceEntry":       true,
	"gateway.networking.k8s.io/Gateway":      true,
	"gateway.networking.k8s.io/GatewayClass": true,
}

func (k *checker) targetRef(p string, r *typev1beta1.PolicyTargetReference) {
	if r == nil {
		return
	}
	if r.Name == "" {
		k.errorf(fld(p, "name"), "required")
	}
	if r.Namespace != "" {
		k.errorf(fld(p, "namespace"), "must not be set: cross-namespace references are not supported")
	}
	if !allowedTargets[r.Group+"/"+r.Kind] {
		k.errorf(fld(p, "kind"), "targetRef must be a Service, ServiceEntry, Gateway or GatewayClass, got group %q kind %q", r.Group, r.Kind)
	}
}

func (k *checker) requestAuthentication(ra *security.RequestAuthentication) {
	k.policyTarget(ra.Selector, ra.TargetRef, ra.TargetRefs)
	for i, r := range ra.JwtRules {
		p := idx("spec.jwtRules", i)
		if r == nil {
			k.errorf(p, "rule may not be null")
			continue
		}
		if r.Issuer == "" && r.JwksUri == "" {
			k.errorf(fld(p, "issuer"), "required (issuer or jwksUri must be set)")
		}
		for j, a := range r.Audiences {
			if a == "" {
				k.errorf(idx(fld(p, "audiences"), j), "audience must not be empty")
			}
		}
		if r.JwksUri != "" {
			u, err := url.Parse(r.JwksUri)
			switch {
			case err != nil:
				k.errorf(fld(p, "jwksUri"), "invalid URL %q: %v", r.JwksUri, err)
			case u.Scheme != "http" && u.Scheme != "https":
				k.errorf(fld(p, "jwksUri"), "URL scheme %q is not supported (want http or https)", u.Scheme)
			case u.Host == "":
				k.errorf(fld(p, "jwksUri"), "URL %q has no host", r.JwksUri)
			default:
				if port := u.Port(); port != "" {
					if n, err := strconv.Atoi(port); err != nil || checkPort(int64(n)) != nil {
						k.errorf(fld(p, "jwksUri"), "URL %q has an invalid port", r.JwksUri)
					}
				}
			}
		}
		if r.Jwks != "" {
			if r.JwksUri != "" {
				k.errorf(fld(p, "jwks"), "set only one of jwks and jwksUri")
			}
			var set struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.Unmarshal([]byte(r.Jwks), &set); err != nil {
				k.errorf(fld(p, "jwks"), "jwks is not a JSON Web Key Set: %v", err)
			} else if len(set.Keys) == 0 {
				k.errorf(fld(p, "jwks"), "jwks has no keys (want {\"keys\": [...]})")
			}
		}
		for j, h := range r.FromHeaders {
			if h.GetName() == "" {
				k.errorf(fld(idx(fld(p, "fromHeaders"), j), "name"), "required")
			}
		}
		for j, q := range r.FromParams {
			if q == "" {
				k.errorf(idx(fld(p, "fromParams"), j), "must not be empty")
			}
		}
		for j, c := range r.FromCookies {
			if c == "" {
				k.errorf(idx(fld(p, "fromCookies"), j), "must not be empty")
			}
		}
		for j, ch := range r.OutputClaimToHeaders {
			cp := idx(fld(p, "outputClaimToHeaders"), j)
			switch {
			case ch == nil:
				k.errorf(cp, "may not be null")
			case ch.Claim == "" || ch.Header == "":
				k.errorf(cp, "header and claim are both required")
			case !strictHdrRE.MatchString(ch.Header):
				k.errorf(fld(cp, "header"), "header name %q is not a valid header name (letters, digits and '-')", ch.Header)
			}
		}
		k.duration(fld(p, "timeout"), r.Timeout)
	}
}

func (k *checker) authorizationPolicy(ap *security.AuthorizationPolicy) {
	k.policyTarget(ap.Selector, ap.TargetRef, ap.TargetRefs)
	custom := ap.Action == security.AuthorizationPolicy_CUSTOM
	if custom {
		if len(ap.Rules) == 0 {
			k.errorf("spec.rules", "CUSTOM action without rules never triggers; add an empty rule {} to apply it to every request")
		} else if ap.GetProvider().GetName() == "" {
			k.errorf("spec.provider.name", "required for CUSTOM action")
		}
	} else if ap.GetProvider() != nil {
		k.errorf("spec.provider", "provider is only allowed with action CUSTOM, not %s", ap.Action)
	}
	if ap.Action == security.AuthorizationPolicy_DENY && len(ap.Rules) == 0 {
		k.errorf("spec.rules", "DENY action without rules never triggers; add an empty rule {} to apply it to every request")
	}
	for i, r := range ap.Rules {
		p := idx("spec.rules", i)
		if r == nil {
			k.errorf(p, "rule may not be null")
			continue
		}
		k.authzRule(p, r, ap.Action)
	}
}

func (k *checker) authzRule(p string, r *security.Rule, action security.AuthorizationPolicy_Action) {
	custom := action == security.AuthorizationPolicy_CUSTOM
	fromExists, toExists, tcpFrom, tcpTo := false, false, false, false
	for i, f := range r.From {
		fp := idx(fld(p, "from"), i)
		if f == nil || f.Source == nil {
			k.errorf(fld(fp, "source"), "required")
			continue
		}
		fromExists = true
		s := f.Source
		sp := fld(fp, "source")
		lists := []struct {
			name string
			v    []string
			tcp  bool
		}{
			{"principals", s.Principals, true}, {"notPrincipals", s.NotPrincipals, true},
			{"requestPrincipals", s.RequestPrincipals, false}, {"notRequestPrincipals", s.NotRequestPrincipals, false},
			{"namespaces", s.Namespaces, true}, {"notNamespaces", s.NotNamespaces, true},
			{"serviceAccounts", s.ServiceAccounts, true}, {"notServiceAccounts", s.NotServiceAccounts, true},
			{"ipBlocks", s.IpBlocks, true}, {"notIpBlocks", s.NotIpBlocks, true},
			{"remoteIpBlocks", s.RemoteIpBlocks, true}, {"notRemoteIpBlocks", s.NotRemoteIpBlocks, true},
			{"trustDomains", s.TrustDomains, true}, {"notTrustDomains", s.NotTrustDomains, true},
		}
		empty := true
		for _, l := range lists {
			if len(l.v) == 0 {
				continue
			}
			empty = false
			tcpFrom = tcpFrom || l.tcp
			lp := fld(sp, l.name)
			for j, v := range l.v {
				switch {
				case v == "":
					k.errorf(idx(lp, j), "empty value not allowed")
				case strings.Contains(strings.ToLower(l.name), "ipblocks"):
					k.err(idx(lp, j), checkIPOrCIDR(v))
				case strings.Contains(strings.ToLower(l.name), "serviceaccounts"):
					if ns, sa, ok := strings.Cut(v, "/"); !ok || ns == "" || sa == "" {
						k.errorf(idx(lp, j), "service account %q must be of the form namespace/name", v)
					}
				}
			}
			if custom {
				switch l.name {
				case "principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals",
					"namespaces", "notNamespaces", "serviceAccounts", "notServiceAccounts":
					k.errorf(lp, "%s is not supported with CUSTOM action", l.name)
				}
			}
		}
		if empty {
			k.errorf(sp, "source must not be empty")
		}
		if len(s.Principals)+len(s.NotPrincipals)+len(s.Namespaces)+len(s.NotNamespaces) > 0 &&
			len(s.ServiceAccounts)+len(s.NotServiceAccounts) > 0 {
			k.errorf(sp, "serviceAccounts cannot be combined with namespaces or principals")
		}
	}
	for i, t := range r.To {
		tp := idx(fld(p, "to"), i)
		if t == nil || t.Operation == nil {
			k.errorf(fld(tp, "operation"), "required")
			continue
		}
		toExists = true
		o := t.Operation
		op := fld(tp, "operation")
		lists := []struct {
			name string
			v    []string
		}{
			{"hosts", o.Hosts}, {"notHosts", o.NotHosts}, {"ports", o.Ports}, {"notPorts", o.NotPorts},
			{"methods", o.Methods}, {"notMethods", o.NotMethods}, {"paths", o.Paths}, {"notPaths", o.NotPaths},
		}
		empty := true
		for _, l := range lists {
			if len(l.v) > 0 {
				empty = false
			}
			for j, v := range l.v {
				vp := idx(fld(op, l.name), j)
				switch {
				case v == "":
					k.errorf(vp, "empty value not allowed")
				case l.name == "ports" || l.name == "notPorts":
					if n, err := strconv.ParseUint(v, 10, 32); err != nil || n > 65535 {
						k.errorf(vp, "invalid port %q (want a number in the range 0..65535)", v)
					}
				case l.name == "paths" || l.name == "notPaths":
					k.err(vp, checkPathTemplate(v))
				}
			}
		}
		if empty {
			k.errorf(op, "operation must not be empty")
		}
		tcpTo = tcpTo || len(o.Ports)+len(o.NotPorts) > 0
	}
	for i, c := range r.When {
		cp := idx(fld(p, "when"), i)
		if c == nil {
			k.errorf(cp, "condition may not be null")
			continue
		}
		if c.Key == "" {
			k.errorf(fld(cp, "key"), "required")
			continue
		}
		if len(c.Values) == 0 && len(c.NotValues) == 0 {
			k.errorf(cp, "at least one of values and notValues must be set for key %s", c.Key)
			continue
		}
		if err := checkConditionKey(c.Key); err != nil {
			k.err(fld(cp, "key"), err)
			continue
		}
		if custom && (c.Key == "source.namespace" || c.Key == "source.serviceAccount" || c.Key == "source.principal" || strings.HasPrefix(c.Key, "request.auth.")) {
			k.errorf(fld(cp, "key"), "%s is not supported with CUSTOM action", c.Key)
		}
		for _, vs := range []struct {
			name string
			v    []string
		}{{"values", c.Values}, {"notValues", c.NotValues}} {
			for j, v := range vs.v {
				k.err(idx(fld(cp, vs.name), j), checkConditionValue(c.Key, v))
			}
		}
	}
	if action == security.AuthorizationPolicy_DENY && ((fromExists && !toExists && !tcpFrom) || (toExists && !tcpTo)) {
		k.warnf(p, "this DENY rule uses only HTTP attributes, so it denies all traffic to TCP ports in its scope; name the ports explicitly")
	}
}

// Condition keys (Istio's authorization attributes).
var (
	exactKeys = map[string]bool{
		"source.ip": true, "remote.ip": true, "source.namespace": true, "source.principal": true,
		"source.serviceAccount": true, "request.auth.principal": true, "request.auth.audiences": true,
		"request.auth.presenter": true, "destination.ip": true, "destination.port": true, "connection.sni": true,
	}
	mapKeyPrefixes = []string{"request.headers[", "request.auth.claims[", "experimental.envoy.filters."}
	replacedKeys   = map[string]string{
		"destination.namespace": "metadata.namespace of the policy",
		"destination.user":      "the workload selector",
		"source.user":           "source.principal",
		"request.regex.headers": "request.headers",
	}
)

func checkConditionKey(key string) error {
	if exactKeys[key] {
		return nil
	}
	for _, prefix := range mapKeyPrefixes {
		if strings.HasPrefix(key, prefix) {
			open := strings.IndexByte(key, '[')
			if open < 0 || !strings.HasSuffix(key, "]") || open+1 >= len(key)-1 {
				return errorf("key %q must be of the form %s<name>]", key, strings.TrimSuffix(prefix, "["))
			}
			return nil
		}
	}
	if strings.HasPrefix(key, "destination.labels") {
		return errorf("key %q is replaced by the workload selector", key)
	}
	if r, ok := replacedKeys[key]; ok {
		return errorf("key %q is replaced by %s", key, r)
	}
	return errorf("unknown condition key %q (want source.ip, remote.ip, source.namespace, source.principal, request.headers[...], request.auth.principal, request.auth.audiences, request.auth.presenter, request.auth.claims[...], destination.ip, destination.port, connection.sni or experimental.envoy.filters.*)", key)
}

func checkConditionValue(key, v string) error {
	switch {
	case v == "":
		return errorf("empty value not allowed")
	case key == "source.ip" || key == "remote.ip" || key == "destination.ip":
		return checkIPOrCIDR(v)
	case key == "destination.port":
		if n, err := strconv.ParseUint(v, 10, 32); err != nil || n > 65535 {
			return errorf("invalid port %q", v)
		}
	case key == "source.serviceAccount":
		if ns, sa, ok := strings.Cut(v, "/"); !ok || ns == "" || sa == "" {
			return errorf("service account %q must be of the form namespace/name", v)
		}
	}
	return nil
}

// checkPathTemplate allows the {*} and {**} path templates and no other
// braces; {**} must be the last segment.
func checkPathTemplate(p string) error {
	if !strings.ContainsAny(p, "{}") {
		return nil
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if !strings.ContainsAny(s, "{}") {
			continue
		}
		switch s {
		case "{*}":
		case "{**}":
			if i != len(segs)-1 {
				return errorf("path %q: {**} must be the last segment", p)
			}
		default:
			return errorf("path %q: only whole segments {*} and {**} may use braces", p)
		}
	}
	return nil
}
