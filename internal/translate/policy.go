package translate

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/model"
)

// boundRule is a DestinationRule with its host resolved against its
// namespace.
type boundRule struct {
	meta      *model.Meta
	namespace string
	host      string
	rule      *networking.DestinationRule
}

// ruleIndex finds the DestinationRule that applies to a destination host
// for one proxy.
type ruleIndex struct {
	proxyNamespace string
	rules          []boundRule
	// exact indexes rules by exact host; wild lists wildcard rules.
	exact map[string][]*boundRule
	wild  []*boundRule
}

// newRuleIndex indexes the DestinationRules of snap that proxy may use:
// exported to its namespace, and without a workloadSelector or with one
// that selects the proxy.
func newRuleIndex(snap *model.Snapshot, proxy *model.Proxy) *ruleIndex {
	ri := &ruleIndex{proxyNamespace: proxy.Namespace}
	for _, c := range snap.List(model.KindDestinationRule) {
		dr, ok := c.Spec.(*networking.DestinationRule)
		if !ok || !exportedTo(dr.ExportTo, c.Namespace, proxy.Namespace) {
			continue
		}
		if sel := dr.WorkloadSelector; sel != nil && (c.Namespace != proxy.Namespace || !model.SelectorMatches(sel.MatchLabels, proxy.Labels)) {
			continue
		}
		ri.rules = append(ri.rules, boundRule{meta: &c.Meta, namespace: c.Namespace, host: resolveHost(dr.Host, c.Namespace), rule: dr})
	}
	ri.exact = map[string][]*boundRule{}
	for i := range ri.rules {
		r := &ri.rules[i]
		if strings.HasPrefix(r.host, "*") {
			ri.wild = append(ri.wild, r)
		} else {
			ri.exact[r.host] = append(ri.exact[r.host], r)
		}
	}
	return ri
}

// lookup returns the rule for host, searching Istio's way: the proxy's
// namespace, then the service's namespace, then the root namespace; within
// a namespace the most specific host wins. It returns nil if none applies.
func (ri *ruleIndex) lookup(host, serviceNamespace string) *networking.DestinationRule {
	if r := ri.lookupBound(host, serviceNamespace); r != nil {
		return r.rule
	}
	return nil
}

// lookupBound is lookup returning the rule with its metadata.
func (ri *ruleIndex) lookupBound(host, serviceNamespace string) *boundRule {
	if ri == nil {
		return nil
	}
	for _, ns := range []string{ri.proxyNamespace, serviceNamespace, RootNamespace} {
		var best *boundRule
		for _, r := range ri.exact[host] {
			if r.namespace == ns {
				best = r
				break
			}
		}
		if best != nil {
			return best
		}
		for _, r := range ri.wild {
			if r.namespace != ns || !hostMatches(r.host, host) {
				continue
			}
			if best == nil || specificity(r.host) > specificity(best.host) {
				best = r
			}
		}
		if best != nil {
			return best
		}
	}
	return nil
}

// policy is the traffic policy in effect for one cluster, after merging
// the rule's top-level, port-level and subset-level settings.
type policy struct {
	lb      *networking.LoadBalancerSettings
	pool    *networking.ConnectionPoolSettings
	outlier *networking.OutlierDetection
	tls     *networking.ClientTLSSettings
	// retryBudget exists at the rule and subset levels only.
	retryBudget *networking.TrafficPolicy_RetryBudget
}

// effectivePolicy merges the settings of dr for port and subset ("" for
// the service-wide cluster): subset-level fields override top-level ones,
// and within each level a matching portLevelSettings entry overrides the
// level's own fields. A nil rule gives the zero policy.
func effectivePolicy(dr *networking.DestinationRule, port uint32, subset string) policy {
	var p policy
	if dr == nil {
		return p
	}
	p.apply(dr.TrafficPolicy, port)
	if subset != "" {
		if s := findSubset(dr, subset); s != nil {
			p.apply(s.TrafficPolicy, port)
		}
	}
	return p
}

func (p *policy) apply(tp *networking.TrafficPolicy, port uint32) {
	if tp == nil {
		return
	}
	p.set(tp.LoadBalancer, tp.ConnectionPool, tp.OutlierDetection, tp.Tls)
	if tp.RetryBudget != nil {
		p.retryBudget = tp.RetryBudget
	}
	for _, pl := range tp.PortLevelSettings {
		if pl.Port != nil && pl.Port.Number == port {
			p.set(pl.LoadBalancer, pl.ConnectionPool, pl.OutlierDetection, pl.Tls)
		}
	}
}

func (p *policy) set(lb *networking.LoadBalancerSettings, pool *networking.ConnectionPoolSettings, od *networking.OutlierDetection, tls *networking.ClientTLSSettings) {
	if lb != nil {
		p.lb = lb
	}
	if pool != nil {
		p.pool = pool
	}
	if od != nil {
		p.outlier = od
	}
	if tls != nil {
		p.tls = tls
	}
}

func findSubset(dr *networking.DestinationRule, name string) *networking.Subset {
	if dr == nil {
		return nil
	}
	for _, s := range dr.Subsets {
		if s.Name == name {
			return s
		}
	}
	return nil
}
