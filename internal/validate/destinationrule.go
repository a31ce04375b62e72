//lint:file-ignore SA1019 checking deprecated fields (and warning about them) is the validator's job

package validate

import (
	"fmt"
	"math"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	typev1beta1 "istio.io/api/type/v1beta1"
)

func (k *checker) destinationRule(dr *networking.DestinationRule) {
	switch {
	case dr.Host == "":
		k.errorf("spec.host", "required")
	case dr.Host == "*":
		k.errorf("spec.host", "host * is not allowed; name a service or a wildcard domain such as *.example.com")
	default:
		k.err("spec.host", checkWildcardDomain(dr.Host))
	}
	k.trafficPolicy("spec.trafficPolicy", dr.TrafficPolicy)
	seen := map[string]int{}
	for i, s := range dr.Subsets {
		p := idx("spec.subsets", i)
		if s == nil {
			k.errorf(p, "subset may not be null")
			continue
		}
		switch {
		case s.Name == "":
			k.errorf(fld(p, "name"), "required")
		case !isLabel(s.Name):
			k.errorf(fld(p, "name"), "invalid subset name %q (must be a DNS label)", s.Name)
		}
		if j, dup := seen[s.Name]; dup && s.Name != "" {
			k.errorf(fld(p, "name"), "duplicate subset name %q (also spec.subsets[%d])", s.Name, j)
		} else {
			seen[s.Name] = i
		}
		k.labels(fld(p, "labels"), s.Labels)
		k.trafficPolicy(fld(p, "trafficPolicy"), s.TrafficPolicy)
	}
	k.exportTo("spec.exportTo", dr.ExportTo, false)
	if ws := dr.WorkloadSelector; ws != nil {
		k.workloadSelector("spec.workloadSelector", ws)
		for _, e := range dr.ExportTo {
			if e != "." && e != k.meta.Namespace {
				k.errorf("spec.exportTo", "a DestinationRule with a workloadSelector cannot be exported beyond its namespace")
				break
			}
		}
	}
}

// workloadSelector checks a type.v1beta1 selector (matchLabels).
func (k *checker) workloadSelector(p string, ws *typev1beta1.WorkloadSelector) {
	if ws == nil {
		return
	}
	k.selectorLabels(fld(p, "matchLabels"), ws.MatchLabels, "")
}

func (k *checker) trafficPolicy(p string, tp *networking.TrafficPolicy) {
	if tp == nil {
		return
	}
	if tp.LoadBalancer == nil && tp.ConnectionPool == nil && tp.OutlierDetection == nil && tp.Tls == nil &&
		len(tp.PortLevelSettings) == 0 && tp.Tunnel == nil && tp.ProxyProtocol == nil && tp.RetryBudget == nil {
		k.errorf(p, "traffic policy must have at least one field")
		return
	}
	if tp.Tunnel != nil && tp.ProxyProtocol != nil {
		k.errorf(p, "tunnel and proxyProtocol must not be set together")
	}
	k.outlier(fld(p, "outlierDetection"), tp.OutlierDetection)
	k.connectionPool(fld(p, "connectionPool"), tp.ConnectionPool)
	k.loadBalancer(fld(p, "loadBalancer"), tp.LoadBalancer, tp.OutlierDetection)
	k.clientTLS(fld(p, "tls"), tp.Tls)
	seen := map[uint32]int{}
	for i, pl := range tp.PortLevelSettings {
		pp := idx(fld(p, "portLevelSettings"), i)
		if pl == nil {
			k.errorf(pp, "port traffic policy may not be null")
			continue
		}
		if pl.Port == nil || pl.Port.Number == 0 {
			k.errorf(fld(pp, "port.number"), "required")
		} else {
			k.port(fld(pp, "port.number"), pl.Port.Number)
			if j, dup := seen[pl.Port.Number]; dup {
				k.errorf(fld(pp, "port.number"), "duplicate port %d (also portLevelSettings[%d])", pl.Port.Number, j)
			}
			seen[pl.Port.Number] = i
		}
		if pl.LoadBalancer == nil && pl.ConnectionPool == nil && pl.OutlierDetection == nil && pl.Tls == nil {
			k.errorf(pp, "port traffic policy must have at least one of loadBalancer, connectionPool, outlierDetection, tls")
			continue
		}
		k.outlier(fld(pp, "outlierDetection"), pl.OutlierDetection)
		k.connectionPool(fld(pp, "connectionPool"), pl.ConnectionPool)
		k.loadBalancer(fld(pp, "loadBalancer"), pl.LoadBalancer, pl.OutlierDetection)
		k.clientTLS(fld(pp, "tls"), pl.Tls)
	}
	if t := tp.Tunnel; t != nil {
		tp := fld(p, "tunnel")
		if t.Protocol != "" && t.Protocol != "CONNECT" && t.Protocol != "POST" {
			k.errorf(fld(tp, "protocol"), "tunnel protocol must be \"CONNECT\" or \"POST\", got %q", t.Protocol)
		}
		if checkFQDN(t.TargetHost) != nil && !isIP(t.TargetHost) {
			k.errorf(fld(tp, "targetHost"), "tunnel target host %q must be a valid FQDN or IP address", t.TargetHost)
		}
		k.port(fld(tp, "targetPort"), t.TargetPort)
	}
}

func (k *checker) outlier(p string, o *networking.OutlierDetection) {
	if o == nil {
		return
	}
	k.duration(fld(p, "baseEjectionTime"), o.BaseEjectionTime)
	k.duration(fld(p, "interval"), o.Interval)
	if o.ConsecutiveErrors != 0 {
		k.warnf(fld(p, "consecutiveErrors"), "deprecated: use consecutiveGatewayErrors or consecutive5xxErrors")
	}
	if !o.SplitExternalLocalOriginErrors && o.ConsecutiveLocalOriginFailures.GetValue() > 0 {
		k.errorf(fld(p, "consecutiveLocalOriginFailures"), "requires splitExternalLocalOriginErrors: true")
	}
	if o.MaxEjectionPercent < 0 || o.MaxEjectionPercent > 100 {
		k.errorf(fld(p, "maxEjectionPercent"), "percentage %d is not in the range 0..100", o.MaxEjectionPercent)
	}
	if o.MinHealthPercent < 0 || o.MinHealthPercent > 100 {
		k.errorf(fld(p, "minHealthPercent"), "percentage %d is not in the range 0..100", o.MinHealthPercent)
	}
	if v := o.FailurePercentageThreshold; v != nil && v.GetValue() > 100 {
		k.errorf(fld(p, "failurePercentageThreshold"), "percentage %d is not in the range 0..100", v.GetValue())
	}
	for i, c := range o.OutlierDetectionHttpErrorCodes {
		if c < 100 || c > 599 {
			k.errorf(idx(fld(p, "outlierDetectionHttpErrorCodes"), i), "HTTP status %d is not in the range 100..599", c)
		}
	}
}

func (k *checker) connectionPool(p string, cp *networking.ConnectionPoolSettings) {
	if cp == nil {
		return
	}
	if cp.Http == nil && cp.Tcp == nil {
		k.errorf(p, "connection pool must have http or tcp settings")
		return
	}
	if h := cp.Http; h != nil {
		hp := fld(p, "http")
		for _, f := range []struct {
			name string
			v    int32
		}{
			{"http1MaxPendingRequests", h.Http1MaxPendingRequests},
			{"http2MaxRequests", h.Http2MaxRequests},
			{"maxRequestsPerConnection", h.MaxRequestsPerConnection},
			{"maxRetries", h.MaxRetries},
			{"maxConcurrentStreams", h.MaxConcurrentStreams},
		} {
			if f.v < 0 {
				k.errorf(fld(hp, f.name), "must not be negative, got %d", f.v)
			}
		}
		k.duration(fld(hp, "idleTimeout"), h.IdleTimeout)
		if h.H2UpgradePolicy == networking.ConnectionPoolSettings_HTTPSettings_UPGRADE && h.UseClientProtocol {
			k.errorf(fld(hp, "useClientProtocol"), "must not be true when h2UpgradePolicy is UPGRADE")
		}
	}
	if t := cp.Tcp; t != nil {
		tp := fld(p, "tcp")
		if t.MaxConnections < 0 {
			k.errorf(fld(tp, "maxConnections"), "must not be negative, got %d", t.MaxConnections)
		}
		k.duration(fld(tp, "connectTimeout"), t.ConnectTimeout)
		k.duration(fld(tp, "maxConnectionDuration"), t.MaxConnectionDuration)
		if t.IdleTimeout.AsDuration() != 0 { // 0s disables the idle timeout
			k.duration(fld(tp, "idleTimeout"), t.IdleTimeout)
		}
		if ka := t.TcpKeepalive; ka != nil {
			k.duration(fld(tp, "tcpKeepalive.time"), ka.Time)
			k.duration(fld(tp, "tcpKeepalive.interval"), ka.Interval)
		}
	}
}

func (k *checker) loadBalancer(p string, lb *networking.LoadBalancerSettings, outlier *networking.OutlierDetection) {
	if lb == nil {
		return
	}
	if ch := lb.GetConsistentHash(); ch != nil {
		cp := fld(p, "consistentHash")
		switch key := ch.HashKey.(type) {
		case nil:
			k.errorf(cp, "consistentHash needs exactly one hash key: httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName")
		case *networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName:
			if key.HttpHeaderName == "" {
				k.errorf(fld(cp, "httpHeaderName"), "must not be empty")
			}
		case *networking.LoadBalancerSettings_ConsistentHashLB_HttpCookie:
			if key.HttpCookie.GetName() == "" {
				k.errorf(fld(cp, "httpCookie.name"), "required")
			}
			if key.HttpCookie.GetTtl() != nil {
				k.durationOrZero(fld(cp, "httpCookie.ttl"), key.HttpCookie.Ttl)
			}
		case *networking.LoadBalancerSettings_ConsistentHashLB_UseSourceIp:
			if !key.UseSourceIp {
				k.errorf(fld(cp, "useSourceIp"), "useSourceIp: false selects no hash key")
			}
		case *networking.LoadBalancerSettings_ConsistentHashLB_HttpQueryParameterName:
			if key.HttpQueryParameterName == "" {
				k.errorf(fld(cp, "httpQueryParameterName"), "must not be empty")
			}
		}
		if ch.MinimumRingSize != 0 {
			k.warnf(fld(cp, "minimumRingSize"), "deprecated: use ringHash.minimumRingSize")
			if ch.HashAlgorithm != nil {
				k.errorf(fld(cp, "minimumRingSize"), "only one of minimumRingSize and maglev/ringHash may be set")
			}
		}
		if ml := ch.GetMaglev(); ml != nil {
			mp := fld(cp, "maglev.tableSize")
			switch {
			case ml.TableSize == 0:
				k.errorf(mp, "tableSize is required for maglev")
			case ml.TableSize >= 5000011:
				k.errorf(mp, "tableSize must be less than 5000011")
			case !isPrime(ml.TableSize):
				k.errorf(mp, "tableSize %d must be a prime number", ml.TableSize)
			}
		}
	}
	k.localityLB(fld(p, "localityLbSetting"), lb.LocalityLbSetting, outlier)
	if w := lb.Warmup; w != nil {
		wp := fld(p, "warmup")
		if w.Duration == nil {
			k.errorf(fld(wp, "duration"), "required")
		}
		k.duration(fld(wp, "duration"), w.Duration)
		if v := w.MinimumPercent.GetValue(); v < 0 || v > 100 {
			k.errorf(fld(wp, "minimumPercent"), "must be in the range 0..100, got %v", v)
		}
		if w.Aggression != nil && w.Aggression.GetValue() < 1 {
			k.errorf(fld(wp, "aggression"), "must be at least 1, got %v", w.Aggression.GetValue())
		}
	}
	k.duration(fld(p, "warmupDurationSecs"), lb.WarmupDurationSecs)
}

// isPrime is trial division, as Envoy checks maglev table sizes.
func isPrime(x uint64) bool {
	if x < 2 {
		return false
	}
	if x < 4 {
		return true
	}
	if x%2 == 0 {
		return false
	}
	for f := uint64(3); f <= uint64(math.Sqrt(float64(x))); f += 2 {
		if x%f == 0 {
			return false
		}
	}
	return true
}

func (k *checker) localityLB(p string, l *networking.LocalityLoadBalancerSetting, outlier *networking.OutlierDetection) {
	if l == nil {
		return
	}
	if len(l.Distribute) > 0 && len(l.Failover) > 0 {
		k.errorf(p, "cannot set both distribute and failover")
		return
	}
	if len(l.Failover) > 0 {
		for i, fp := range l.FailoverPriority {
			switch fp {
			case "topology.kubernetes.io/region", "topology.kubernetes.io/zone", "topology.istio.io/subzone":
				k.errorf(idx(fld(p, "failoverPriority"), i), "cannot set failover together with topology label %q in failoverPriority", fp)
			}
		}
	}
	var froms []string
	for i, d := range l.Distribute {
		dp := idx(fld(p, "distribute"), i)
		if d == nil {
			continue
		}
		froms = append(froms, d.From)
		var total uint64
		var tos []string
		for _, loc := range sortedKeys(d.To) {
			w := d.To[loc]
			if w < 1 || w > 100 {
				k.errorf(key(fld(dp, "to"), loc), "locality weight %d must be in the range 1..100", w)
			}
			total += uint64(w)
			tos = append(tos, loc)
		}
		if total != 100 {
			k.errorf(fld(dp, "to"), "locality weights sum to %d, must be 100", total)
		}
		k.err(fld(dp, "to"), checkLocalities(tos))
	}
	k.err(fld(p, "distribute"), checkLocalities(froms))
	if (len(l.Failover) > 0 || len(l.FailoverPriority) > 0) && outlier == nil {
		k.warnf(p, "failover needs an outlierDetection policy to take effect")
	}
	for i, f := range l.Failover {
		fp := idx(fld(p, "failover"), i)
		if f == nil {
			continue
		}
		switch {
		case f.From == f.To:
			k.errorf(fp, "failover from and to must name different regions")
		case strings.Contains(f.From, "/") || strings.Contains(f.To, "/"):
			k.errorf(fp, "failover only names regions (no '/')")
		case strings.Contains(f.From, "*") || strings.Contains(f.To, "*"):
			k.errorf(fp, "failover regions must not contain '*'")
		}
	}
}

// checkLocalities checks region/zone/subzone patterns: a single trailing
// '*' at most, no empty parts, no overlaps.
func checkLocalities(locs []string) error {
	seen := map[string]bool{}
	for _, l := range locs {
		if n := strings.Count(l, "*"); n > 1 || (n == 1 && !strings.HasSuffix(l, "*")) {
			return fmt.Errorf("locality %q: at most one '*', at the end", l)
		}
		parts := strings.SplitN(l, "/", 3)
		for _, part := range parts {
			if part == "" {
				return fmt.Errorf("locality %q must not contain an empty region, zone or subzone", l)
			}
		}
		for prefix := range seen {
			if localityOverlaps(prefix, l) {
				return fmt.Errorf("locality %q overlaps with %q", l, prefix)
			}
		}
		seen[l] = true
	}
	return nil
}

func localityOverlaps(a, b string) bool {
	covers := func(p, l string) bool {
		p = strings.TrimSuffix(strings.TrimSuffix(p, "*"), "/")
		return p == "" || l == p || strings.HasPrefix(l, p+"/")
	}
	return covers(a, b) || covers(b, a)
}

// clientTLS checks DestinationRule TLS settings.
func (k *checker) clientTLS(p string, t *networking.ClientTLSSettings) {
	if t == nil {
		return
	}
	if t.GetInsecureSkipVerify().GetValue() {
		switch t.Mode {
		case networking.ClientTLSSettings_SIMPLE:
			if t.CaCertificates != "" || t.CredentialName != "" || len(t.SubjectAltNames) > 0 {
				k.errorf(fld(p, "insecureSkipVerify"), "cannot set caCertificates, credentialName or subjectAltNames when insecureSkipVerify is true")
			}
		case networking.ClientTLSSettings_MUTUAL:
			if t.CaCertificates != "" || len(t.SubjectAltNames) > 0 {
				k.errorf(fld(p, "insecureSkipVerify"), "cannot set caCertificates or subjectAltNames when insecureSkipVerify is true")
			}
		}
	}
	switch t.Mode {
	case networking.ClientTLSSettings_SIMPLE, networking.ClientTLSSettings_MUTUAL:
		if t.CredentialName != "" {
			if t.ClientCertificate != "" || t.CaCertificates != "" || t.PrivateKey != "" || t.CaCrl != "" {
				k.errorf(fld(p, "credentialName"), "cannot set clientCertificate, privateKey, caCertificates or caCrl together with credentialName")
			}
			return
		}
		if t.Mode == networking.ClientTLSSettings_MUTUAL {
			if t.ClientCertificate == "" {
				k.errorf(fld(p, "clientCertificate"), "required for MUTUAL TLS (or set credentialName)")
			}
			if t.PrivateKey == "" {
				k.errorf(fld(p, "privateKey"), "required for MUTUAL TLS (or set credentialName)")
			}
		}
	case networking.ClientTLSSettings_DISABLE, networking.ClientTLSSettings_ISTIO_MUTUAL:
		if t.ClientCertificate != "" || t.PrivateKey != "" || t.CaCertificates != "" || t.CredentialName != "" {
			k.warnf(p, "certificates are ignored in %s mode", t.Mode)
		}
	}
}
