package translate

import (
	"os"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"gopkg.in/yaml.v3"
)

func findCluster(r *Resources, name string) *cluster.Cluster {
	for _, c := range r.Clusters {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func findCLA(r *Resources, name string) *endpoint.ClusterLoadAssignment {
	for _, e := range r.Endpoints {
		if e.ClusterName == name {
			return e
		}
	}
	return nil
}

func claAddresses(la *endpoint.ClusterLoadAssignment) []string {
	var out []string
	for _, g := range la.GetEndpoints() {
		for _, e := range g.LbEndpoints {
			sa := e.GetEndpoint().GetAddress().GetSocketAddress()
			out = append(out, sa.GetAddress()+":"+portString(sa.GetPortValue()))
		}
	}
	return out
}

func TestClustersBookinfoNoRules(t *testing.T) {
	snap := loadCase(t, "base")
	r := Generate(snap, sidecarProxy("productpage", "v1", "10.1.0.11"))
	validateResources(t, r)

	c := findCluster(r, "outbound|9080||reviews.default.svc.cluster.local")
	if c == nil {
		t.Fatal("no reviews cluster")
	}
	if c.GetType() != cluster.Cluster_EDS || c.LbPolicy != cluster.Cluster_LEAST_REQUEST {
		t.Errorf("reviews cluster: type %v lb %v, want EDS LEAST_REQUEST", c.GetType(), c.LbPolicy)
	}
	if len(c.TransportSocketMatches) != 2 || c.TransportSocketMatches[0].Match.Fields["tlsMode"].GetStringValue() != "istio" {
		t.Errorf("reviews cluster: want auto mTLS socket matches, got %v", c.TransportSocketMatches)
	}
	utc := &tlsv3.UpstreamTlsContext{}
	if err := c.TransportSocketMatches[0].TransportSocket.GetTypedConfig().UnmarshalTo(utc); err != nil {
		t.Fatal(err)
	}
	sans := utc.CommonTlsContext.GetCombinedValidationContext().GetDefaultValidationContext().GetMatchTypedSubjectAltNames()
	if len(sans) != 1 || sans[0].Matcher.GetExact() != "spiffe://cluster.local/ns/default/sa/bookinfo-reviews" ||
		utc.Sni != "outbound_.9080_._.reviews.default.svc.cluster.local" {
		t.Errorf("mTLS: sni %q, SANs %v", utc.Sni, sans)
	}
	if got := claAddresses(findCLA(r, c.Name)); len(got) != 3 {
		t.Errorf("reviews endpoints = %v, want 3", got)
	}
	if got := claAddresses(findCLA(r, "outbound|8000||httpbin.default.svc.cluster.local")); len(got) != 2 || got[0] != "10.1.0.21:80" {
		t.Errorf("httpbin endpoints = %v, want 2 on targetPort 80", got)
	}
	ext := findCluster(r, "outbound|443||api.example.com")
	if ext.GetType() != cluster.Cluster_STRICT_DNS || ext.TransportSocketMatches != nil {
		t.Errorf("external cluster: type %v, socket matches %v; want STRICT_DNS, none", ext.GetType(), ext.TransportSocketMatches)
	}
	if got := claAddresses(ext.LoadAssignment); len(got) != 1 || got[0] != "api.example.com:443" {
		t.Errorf("external DNS addresses = %v", got)
	}
	for _, name := range []string{PassthroughCluster, BlackHoleCluster, InboundPassthroughCluster, "inbound|9080||"} {
		if findCluster(r, name) == nil {
			t.Errorf("missing cluster %s", name)
		}
	}
	in := findCluster(r, "inbound|9080||")
	if got := claAddresses(in.LoadAssignment); len(got) != 1 || got[0] != "127.0.0.1:9080" {
		t.Errorf("inbound endpoints = %v", got)
	}
	md := findCLA(r, c.Name).Endpoints[0].LbEndpoints[0].Metadata.FilterMetadata
	if md["istio"].Fields["principal"].GetStringValue() != "spiffe://cluster.local/ns/default/sa/bookinfo-reviews" ||
		md["envoy.transport_socket_match"].Fields["tlsMode"].GetStringValue() != "istio" {
		t.Errorf("endpoint metadata = %v", md)
	}
}

const circuitBreakerDR = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin, namespace: default}
spec:
  host: httpbin
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1, connectTimeout: 3s, tcpKeepalive: {time: 60s, interval: 10s, probes: 3}, idleTimeout: 5m}
      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1, http2MaxRequests: 7, maxRetries: 4, idleTimeout: 30s}
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 3m, maxEjectionPercent: 100, failurePercentageThreshold: 50}
    retryBudget: {percent: 25}
    loadBalancer: {simple: ROUND_ROBIN, warmupDurationSecs: 30s}
    portLevelSettings:
    - port: {number: 8000}
      loadBalancer: {simple: RANDOM}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 65537}}
      tls: {mode: ISTIO_MUTUAL}
`

func TestClustersDestinationRule(t *testing.T) {
	snap := loadSnapshot(t, testdataDir+"/base/bookinfo.yaml", writeTemp(t, circuitBreakerDR))
	r := Generate(snap, sidecarProxy("productpage", "v1", "10.1.0.11"))
	validateResources(t, r)
	c := findCluster(r, "outbound|8000||httpbin.default.svc.cluster.local")
	th := c.CircuitBreakers.Thresholds[0]
	if th.MaxConnections.Value != 1 || th.MaxPendingRequests.Value != 1 || th.MaxRequests.Value != 7 || th.MaxRetries.Value != 4 {
		t.Errorf("thresholds = %v", th)
	}
	if c.ConnectTimeout.AsDuration().Seconds() != 3 || c.UpstreamConnectionOptions.TcpKeepalive.KeepaliveTime.Value != 60 {
		t.Errorf("connect timeout %v keepalive %v", c.ConnectTimeout, c.UpstreamConnectionOptions)
	}
	if c.LbPolicy != cluster.Cluster_RANDOM {
		t.Errorf("port-level lb = %v, want RANDOM", c.LbPolicy)
	}
	if c.LbConfig != nil {
		t.Errorf("port-level lb without warmup keeps a slow start config: %v", c.LbConfig)
	}
	if other := findCluster(r, "outbound|8000||httpbin.default.svc.cluster.local"); other == nil {
		t.Fatal("missing cluster")
	}
	if rb := th.RetryBudget; rb.GetBudgetPercent().GetValue() != 25 || rb.GetMinRetryConcurrency().GetValue() != 3 {
		t.Errorf("retry budget = %v", rb)
	}
	if c.OutlierDetection.FailurePercentageThreshold.GetValue() != 50 || c.OutlierDetection.EnforcingFailurePercentage.GetValue() != 100 {
		t.Errorf("failure percentage = %v", c.OutlierDetection)
	}
	if c.OutlierDetection.Consecutive_5Xx.Value != 1 || c.OutlierDetection.EnforcingConsecutive_5Xx.Value != 100 {
		t.Errorf("outlier = %v", c.OutlierDetection)
	}
	if c.TypedExtensionProtocolOptions[httpProtocolOptionsKey] == nil {
		t.Error("no http protocol options for maxRequestsPerConnection")
	}
	v1 := findCluster(r, "outbound|8000|v1|httpbin.default.svc.cluster.local")
	if v1 == nil || v1.LbPolicy != cluster.Cluster_RANDOM || v1.CircuitBreakers.Thresholds[0].MaxConnections.Value != 1 {
		t.Errorf("v1 subset cluster inherits policy: %v", v1)
	}
	if got := claAddresses(findCLA(r, v1.Name)); len(got) != 1 || got[0] != "10.1.0.21:80" {
		t.Errorf("v1 endpoints = %v", got)
	}
	for _, rc := range r.Routes {
		for _, vh := range rc.VirtualHosts {
			if vh.Name == "httpbin.default.svc.cluster.local:8000" && vh.Routes[0].GetRoute().GetHashPolicy() != nil {
				t.Errorf("default route hashes without consistentHash at port level: %v", vh.Routes[0].GetRoute().GetHashPolicy())
			}
		}
	}
	v2 := findCluster(r, "outbound|8000|v2|httpbin.default.svc.cluster.local")
	if v2.LbPolicy != cluster.Cluster_MAGLEV || v2.TransportSocket == nil || v2.TransportSocketMatches != nil {
		t.Errorf("v2 subset: lb %v socket %v", v2.LbPolicy, v2.TransportSocket)
	}
}

func writeTemp(t testing.TB, content string) string {
	t.Helper()
	var probe yaml.Node
	if err := yaml.Unmarshal([]byte(content), &probe); err != nil {
		t.Fatal(err)
	}
	f := t.TempDir() + "/extra.yaml"
	if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}
