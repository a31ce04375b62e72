package translate

import (
	"strings"
	"testing"
	"time"

	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/weftmesh/weft/internal/model"
)

// badConfig is accepted by the decoder but cannot be translated as is:
// each problem must be reported and left out, never emitted invalid.
const badConfig = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - match:
    - uri: {prefix: /bad-status}
    directResponse: {status: 42}
  - match:
    - uri: {prefix: /bad-abort}
    fault:
      abort: {httpStatus: 99, percentage: {value: 250}}
    route:
    - destination: {host: ratings}
  - match:
    - uri: {prefix: /missing-delegate}
    delegate: {name: nowhere}
  - route:
    - destination: {host: ratings}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: "", ttl: 0s}
        ringHash: {minimumRingSize: 100000000}
`

func TestConflictingMeshVirtualServicesWarn(t *testing.T) {
	const second = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-too, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v3}
`
	snap := loadSnapshot(t, testdataDir+"/base/bookinfo.yaml", testdataDir+"/all-v1/destination-rule-all.yaml",
		testdataDir+"/all-v1/virtual-service-all-v1.yaml", writeTemp(t, second))
	r := Generate(snap, sidecarProxy("productpage", "v1", "10.1.0.11"))
	validateResources(t, r)
	if len(r.Diagnostics) != 1 || r.Diagnostics[0].Severity != model.SeverityWarning ||
		!strings.Contains(r.Diagnostics[0].String(), "VirtualService default/reviews-too: spec.hosts[0]: host reviews.default.svc.cluster.local is already routed by VirtualService default/reviews") {
		t.Errorf("diagnostics = %v", r.Diagnostics)
	}
}

func TestBadInputIsReportedNotEmitted(t *testing.T) {
	snap := loadSnapshot(t, testdataDir+"/base/bookinfo.yaml", writeTemp(t, badConfig))
	r := Generate(snap, sidecarProxy("productpage", "v1", "10.1.0.11"))
	validateResources(t, r)
	var msgs []string
	for _, d := range r.Diagnostics {
		msgs = append(msgs, d.String())
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{
		"extra.yaml:2: error: VirtualService default/ratings: spec.http[0]: route left out",
		"extra.yaml:2: error: VirtualService default/ratings: spec.http[1]: route left out",
		"VirtualService default/ratings: spec.http[2].delegate: delegate VirtualService default/nowhere not found",
		"DestinationRule default/reviews: spec.trafficPolicy: traffic policy not applied to outbound|9080||reviews.default.svc.cluster.local",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("diagnostics lack %q; got:\n%s", want, all)
		}
	}
	// The valid routes of the same VirtualService survive.
	for _, rc := range r.Routes {
		for _, vh := range rc.VirtualHosts {
			if strings.HasPrefix(vh.Name, "ratings.") && len(vh.Routes) != 1 {
				t.Errorf("ratings virtual host has %d routes, want the 1 valid one", len(vh.Routes))
			}
		}
	}
}

func TestServicePortOnProxyPortGetsNoListener(t *testing.T) {
	const clash = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: clash, namespace: default}
spec:
  hosts: [clash.default.svc.cluster.local]
  addresses: [10.0.0.99]
  resolution: STATIC
  ports:
  - {number: 15006, name: http, protocol: HTTP}
  - {number: 15001, name: tcp, protocol: TCP}
  endpoints:
  - {address: 10.1.0.99}
`
	r := Generate(loadSnapshot(t, writeTemp(t, clash)), sidecarProxy("productpage", "v1", "10.1.0.11"))
	validateResources(t, r)
	for _, l := range r.Listeners {
		if port := l.GetAddress().GetSocketAddress().GetPortValue(); (port == 15006 && l.Name != VirtualInboundListener) || (port == 15001 && l.Name != VirtualOutboundListener) {
			t.Errorf("listener %s clashes with the proxy's own port %d", l.Name, port)
		}
	}
	if findCluster(r, "outbound|15006||clash.default.svc.cluster.local") == nil {
		t.Error("the service's cluster must still exist")
	}
}

func TestTCPIdleTimeoutFromDestinationRule(t *testing.T) {
	const dr = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: mongodb, namespace: default}
spec:
  host: mongodb
  trafficPolicy:
    connectionPool:
      tcp: {idleTimeout: 5m}
`
	r := Generate(loadSnapshot(t, testdataDir+"/base/bookinfo.yaml", writeTemp(t, dr)), sidecarProxy("productpage", "v1", "10.1.0.11"))
	validateResources(t, r)
	for _, l := range r.Listeners {
		if l.Name != "10.0.0.30_27017" {
			continue
		}
		tp := &tcpproxy.TcpProxy{}
		if err := l.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(tp); err != nil {
			t.Fatal(err)
		}
		if tp.IdleTimeout.AsDuration() != 5*time.Minute {
			t.Errorf("idle timeout = %v", tp.IdleTimeout)
		}
		return
	}
	t.Fatal("no mongodb listener")
}

func TestTCPPortConflictsWarn(t *testing.T) {
	const conflict = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db-a, namespace: default}
spec:
  hosts: [db-a.default.svc.cluster.local]
  resolution: STATIC
  ports:
  - {number: 5432, name: tcp, protocol: TCP}
  endpoints: [{address: 10.1.1.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db-b, namespace: default}
spec:
  hosts: [db-b.default.svc.cluster.local]
  resolution: STATIC
  ports:
  - {number: 5432, name: tcp, protocol: TCP}
  endpoints: [{address: 10.1.1.2}]
`
	r := Generate(loadSnapshot(t, writeTemp(t, conflict)), sidecarProxy("productpage", "v1", "10.1.0.11"))
	validateResources(t, r)
	if len(r.Diagnostics) != 1 || !strings.Contains(r.Diagnostics[0].String(), "extra.yaml:12: warning: ServiceEntry default/db-b: TCP port 5432: service db-b.default.svc.cluster.local has no address") {
		t.Errorf("diagnostics = %v", r.Diagnostics)
	}
}

func TestSidecarEgressPortScope(t *testing.T) {
	const sidecar = `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress:
  - port: {number: 9080, protocol: HTTP, name: http}
    hosts: ["./reviews.default.svc.cluster.local"]
  - hosts: ["./*"]
`
	r := Generate(loadSnapshot(t, testdataDir+"/base/bookinfo.yaml", writeTemp(t, sidecar)), sidecarProxy("productpage", "v1", "10.1.0.11"))
	validateResources(t, r)
	vhosts := map[string]bool{}
	for _, rc := range r.Routes {
		for _, vh := range rc.VirtualHosts {
			vhosts[vh.Name] = true
		}
	}
	for name, want := range map[string]bool{
		"reviews.default.svc.cluster.local:9080": true,
		"ratings.default.svc.cluster.local:9080": false,
		"httpbin.default.svc.cluster.local:8000": true,
	} {
		if vhosts[name] != want {
			t.Errorf("virtual host %s present = %v, want %v", name, vhosts[name], want)
		}
	}
}

func TestDelegateMustBeExportedToRoot(t *testing.T) {
	const cfg = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details, namespace: default}
spec:
  hosts: [details]
  http:
  - delegate: {name: details-routes, namespace: team}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details-routes, namespace: team}
spec:
  exportTo: ["."]
  http:
  - route:
    - destination: {host: details.default.svc.cluster.local}
`
	r := Generate(loadSnapshot(t, testdataDir+"/base/bookinfo.yaml", writeTemp(t, cfg)), sidecarProxy("productpage", "v1", "10.1.0.11"))
	validateResources(t, r)
	if len(r.Diagnostics) != 1 || !strings.Contains(r.Diagnostics[0].String(), "delegate VirtualService team/details-routes is not exported to namespace default") {
		t.Errorf("diagnostics = %v", r.Diagnostics)
	}
}

func TestGatewayServerBind(t *testing.T) {
	const gw = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: internal, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    bind: 127.0.0.5
    hosts: ["*/*"]
  - port: {number: 8080, name: http-public, protocol: HTTP}
    hosts: ["*/*"]
`
	r := Generate(loadSnapshot(t, writeTemp(t, gw)), gatewayProxy())
	validateResources(t, r)
	var names []string
	for _, l := range r.Listeners {
		names = append(names, l.Name+"@"+l.GetAddress().GetSocketAddress().GetAddress())
	}
	if strings.Join(names, ",") != "0.0.0.0_8080@0.0.0.0,127.0.0.5_8080@127.0.0.5" {
		t.Errorf("listeners = %v", names)
	}
}
