package sim_test

import (
	"slices"
	"testing"

	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/translate/sim"
)

const (
	ratingsVIP = "10.0.0.13"
	ratingsV1  = "outbound|9080|v1|ratings.default.svc.cluster.local"
	ratingsV2  = "outbound|9080|v2|ratings.default.svc.cluster.local"
)

func TestSourceLabelsSelectRoutesPerProxy(t *testing.T) {
	req := sim.Request{Address: ratingsVIP, Port: 9080, Host: "ratings:9080", Path: "/ratings/1"}
	if res := run(t, simulate(t, "features", productpage()), req); res.Cluster != ratingsV2 || res.Route != "from-productpage" {
		t.Errorf("productpage: %s via %q, want %s", res.Cluster, res.Route, ratingsV2)
	}
	if res := run(t, simulate(t, "features", reviewsV2()), req); res.Cluster != ratingsV1 {
		t.Errorf("reviews: %s, want %s", res.Cluster, ratingsV1)
	}
}

func TestDirectResponseAndRedirect(t *testing.T) {
	s := simulate(t, "features", reviewsV2())
	res := run(t, s, sim.Request{Address: ratingsVIP, Port: 9080, Host: "ratings", Path: "/health"})
	if res.DirectResponse != 200 || res.RouteEntry.GetDirectResponse().GetBody().GetInlineString() != "ok" {
		t.Errorf("/health: %+v", res)
	}
	res = run(t, s, sim.Request{Address: ratingsVIP, Port: 9080, Host: "ratings", Path: "/old/page"})
	if res.DirectResponse != 302 || res.RedirectTo != "ratings.example.com/new" {
		t.Errorf("/old: %d %q", res.DirectResponse, res.RedirectTo)
	}
}

func TestMatchConditionsAndRouteOptions(t *testing.T) {
	s := simulate(t, "features", reviewsV2())
	base := sim.Request{Address: ratingsVIP, Port: 9080, Host: "ratings", Method: "POST", Path: "/api/V2/x?debug=1"}
	res := run(t, s, base)
	if res.Route != "api-v2" {
		t.Fatalf("matching request took route %q", res.Route)
	}
	ra := res.RouteEntry.GetRoute()
	if ra.PrefixRewrite != "/" || ra.GetHostRewriteLiteral() != "ratings-internal" {
		t.Errorf("rewrite: %q %q", ra.PrefixRewrite, ra.GetHostRewriteLiteral())
	}
	rp := ra.RetryPolicy
	if rp.GetNumRetries().GetValue() != 3 || rp.RetryOn != "gateway-error,retriable-status-codes" || !slices.Equal(rp.RetriableStatusCodes, []uint32{503}) ||
		rp.PerTryTimeout.AsDuration().Seconds() != 2 || rp.RetryPriority == nil {
		t.Errorf("retry policy = %v", rp)
	}
	if len(ra.HashPolicy) != 1 || ra.HashPolicy[0].GetHeader().GetHeaderName() != "x-user" {
		t.Errorf("hash policy = %v", ra.HashPolicy)
	}
	cors := &corsv3.CorsPolicy{}
	if err := res.RouteEntry.TypedPerFilterConfig["envoy.filters.http.cors"].UnmarshalTo(cors); err != nil || cors.MaxAge != "86400" || cors.AllowMethods != "GET,POST" {
		t.Errorf("cors = %v (%v)", cors, err)
	}
	r := res.RouteEntry
	if len(r.RequestHeadersToAdd) != 1 || r.RequestHeadersToAdd[0].Header.Key != "x-route" || !slices.Equal(r.RequestHeadersToRemove, []string{"x-internal"}) ||
		len(r.ResponseHeadersToAdd) != 1 {
		t.Errorf("headers: %v %v %v", r.RequestHeadersToAdd, r.RequestHeadersToRemove, r.ResponseHeadersToAdd)
	}
	// Each condition, broken, falls through to the last route, whose
	// retries are disabled (attempts: 0).
	for name, mutate := range map[string]func(*sim.Request){
		"method": func(r *sim.Request) { r.Method = "GET" },
		"query":  func(r *sim.Request) { r.Path = "/api/V2/x?debug=0" },
		"regex":  func(r *sim.Request) { r.Path = "/api/vX/x?debug=1" },
		"without": func(r *sim.Request) {
			r.Headers = map[string]string{"x-skip": "1"}
		},
	} {
		req := base
		mutate(&req)
		res := run(t, s, req)
		if res.Route == "api-v2" || res.Cluster != ratingsV1 || res.RouteEntry.GetRoute().RetryPolicy != nil {
			t.Errorf("%s broken: route %q cluster %s retry %v", name, res.Route, res.Cluster, res.RouteEntry.GetRoute().RetryPolicy)
		}
	}
}

func TestDelegateVirtualService(t *testing.T) {
	s := simulate(t, "features", productpage())
	for _, tc := range []struct {
		path, canary, want string
	}{
		{"/details/1", "true", "outbound|9080|v2|details.default.svc.cluster.local"},
		{"/details/1", "", "outbound|9080|v1|details.default.svc.cluster.local"},
		{"/other", "true", "outbound|9080||details.default.svc.cluster.local"},
	} {
		h := map[string]string{}
		if tc.canary != "" {
			h["x-canary"] = tc.canary
		}
		res := run(t, s, sim.Request{Address: "10.0.0.11", Port: 9080, Host: "details", Path: tc.path, Headers: h})
		if res.Cluster != tc.want {
			t.Errorf("%s canary=%q: %s, want %s", tc.path, tc.canary, res.Cluster, tc.want)
		}
	}
}

func TestSniffedProtocolAndTCPRoutes(t *testing.T) {
	s := simulate(t, "features", productpage())
	res := run(t, s, sim.Request{Address: "10.0.0.40", Port: 7070, Host: "legacy:7070"})
	if res.Listener != "10.0.0.40_7070" || res.RouteConfig != "7070" || res.Cluster != "outbound|7070||legacy.default.svc.cluster.local" {
		t.Errorf("sniffed HTTP: %+v", res)
	}
	res = run(t, s, sim.Request{Protocol: sim.TCP, Address: "10.0.0.40", Port: 7070})
	if res.RouteConfig != "" || res.Cluster != "outbound|7070||legacy.default.svc.cluster.local" {
		t.Errorf("sniffed TCP: %+v", res)
	}
	res = run(t, s, sim.Request{Protocol: sim.TCP, Address: "10.0.0.30", Port: 27017})
	if res.WeightedClusters["outbound|27017|primary|mongodb.default.svc.cluster.local"] != 80 ||
		res.WeightedClusters["outbound|27017|replica|mongodb.default.svc.cluster.local"] != 20 {
		t.Errorf("tcp weighted route: %v", res.WeightedClusters)
	}
}

func TestExportToHidesServices(t *testing.T) {
	s := simulate(t, "features", productpage())
	res := run(t, s, sim.Request{Address: "10.0.0.50", Port: 9090, Host: "hidden.other.svc.cluster.local:9090"})
	if res.Cluster != "PassthroughCluster" {
		t.Errorf("service exported only to its namespace is visible from default: %+v", res)
	}
	other := &model.Proxy{Type: model.ProxySidecar, Namespace: "other", Labels: map[string]string{"app": "x"}}
	res = run(t, simulate(t, "features", other), sim.Request{Address: "10.0.0.50", Port: 9090, Host: "hidden.other.svc.cluster.local:9090"})
	if res.Cluster != "outbound|9090||hidden.other.svc.cluster.local" {
		t.Errorf("from its own namespace: %+v", res)
	}
}

func TestSidecarEgressScope(t *testing.T) {
	s := simulate(t, "sidecar-scope", productpage())
	if res := run(t, s, sim.Request{Address: reviewsVIP, Port: 9080, Host: "reviews"}); res.Cluster != "outbound|9080||reviews.default.svc.cluster.local" {
		t.Errorf("admitted host: %s", res.Cluster)
	}
	if res := run(t, s, sim.Request{Address: ratingsVIP, Port: 9080, Host: "ratings"}); res.Cluster != "PassthroughCluster" {
		t.Errorf("host outside the egress scope: %s", res.Cluster)
	}
	// Another workload has no Sidecar and sees everything.
	if res := run(t, simulate(t, "sidecar-scope", reviewsV2()), sim.Request{Address: ratingsVIP, Port: 9080, Host: "ratings"}); res.Cluster != "outbound|9080||ratings.default.svc.cluster.local" {
		t.Errorf("unscoped workload: %s", res.Cluster)
	}
}

func TestGatewayTLS(t *testing.T) {
	s := simulate(t, "gateway-tls", ingress())
	res := run(t, s, sim.Request{Address: "10.1.0.100", Port: 8080, Host: "bookinfo.example.com", Path: "/productpage"})
	if res.DirectResponse != 301 || res.RedirectTo != "https://bookinfo.example.com/productpage" {
		t.Errorf("http: %+v", res)
	}
	res = run(t, s, sim.Request{Protocol: sim.HTTPS, SNI: "bookinfo.example.com", Address: "10.1.0.100", Port: 8443, Host: "bookinfo.example.com:8443", Path: "/productpage"})
	if res.RouteConfig != "https.8443.https.secure-gateway.istio-system" || res.Cluster != "outbound|9080||productpage.default.svc.cluster.local" {
		t.Errorf("https: %+v", res)
	}
	res = run(t, s, sim.Request{Protocol: sim.TLS, SNI: "nginx.example.com", Address: "10.1.0.100", Port: 8443})
	if res.RouteConfig != "" || res.Cluster != "outbound|27017||mongodb.default.svc.cluster.local" {
		t.Errorf("passthrough: %+v", res)
	}
	if _, err := s.Run(sim.Request{Protocol: sim.TLS, SNI: "other.example.com", Address: "10.1.0.100", Port: 8443}); err == nil {
		t.Error("unknown SNI accepted")
	}
	res = run(t, s, sim.Request{Protocol: sim.TLS, SNI: "db.example.com", Address: "10.1.0.100", Port: 9443})
	if res.Cluster != "outbound|27017||mongodb.default.svc.cluster.local" || !res.TerminatesTLS {
		t.Errorf("TLS-terminated TCP: %+v", res)
	}
}

func ratingsProxy() *model.Proxy {
	return &model.Proxy{Type: model.ProxySidecar, Namespace: "default", Workload: "ratings-v1",
		Labels: map[string]string{"app": "ratings", "version": "v1"}, IPs: []string{"10.1.0.16"}}
}

var meshALPN = []string{"istio-peer-exchange", "istio"}

func TestInboundMTLSModes(t *testing.T) {
	inbound := func(p sim.Protocol, alpn []string) sim.Request {
		return sim.Request{Listener: "virtualInbound", Protocol: p, ALPN: alpn, Port: 9080, Host: "svc:9080"}
	}
	// No PeerAuthentication: PERMISSIVE, both plain text and mesh mTLS.
	s := simulate(t, "base", reviewsV2())
	if res := run(t, s, inbound(sim.HTTP, nil)); res.TerminatesTLS || res.Cluster != "inbound|9080||" {
		t.Errorf("permissive plain text: %+v", res)
	}
	if res := run(t, s, inbound(sim.HTTPS, meshALPN)); !res.TerminatesTLS || res.Cluster != "inbound|9080||" {
		t.Errorf("permissive mTLS: %+v", res)
	}
	// An application's own TLS (no mesh ALPN) is not terminated.
	if res := run(t, s, sim.Request{Listener: "virtualInbound", Protocol: sim.TLS, ALPN: []string{"h2"}, Port: 7777}); res.TerminatesTLS {
		t.Errorf("application TLS terminated by the sidecar: %+v", res)
	}

	// Namespace STRICT: plain text is refused.
	s = simulate(t, "peer-authentication", reviewsV2())
	if res, err := s.Run(inbound(sim.HTTP, nil)); err == nil {
		t.Errorf("strict accepted plain text: %+v", res)
	}
	if res := run(t, s, inbound(sim.HTTPS, meshALPN)); !res.TerminatesTLS || res.Cluster != "inbound|9080||" {
		t.Errorf("strict mTLS: %+v", res)
	}
	if _, err := s.Run(sim.Request{Listener: "virtualInbound", Protocol: sim.TCP, Port: 7777}); err == nil {
		t.Error("strict accepted plain text on another port")
	}

	// Workload port-level DISABLE overrides the namespace's STRICT.
	s = simulate(t, "peer-authentication", ratingsProxy())
	if res := run(t, s, inbound(sim.HTTP, nil)); res.TerminatesTLS || res.Cluster != "inbound|9080||" {
		t.Errorf("port-level disable, plain text: %+v", res)
	}
	if res, err := s.Run(inbound(sim.HTTPS, meshALPN)); err == nil && res.TerminatesTLS {
		t.Errorf("port-level disable terminated mTLS: %+v", res)
	}
}

func TestInboundApplicationTLSOnServicePort(t *testing.T) {
	s := simulate(t, "base", reviewsV2())
	res := run(t, s, sim.Request{Listener: "virtualInbound", Protocol: sim.TLS, ALPN: []string{"h2"}, Port: 9080})
	if res.TerminatesTLS || res.Cluster != "inbound|9080||" {
		t.Errorf("application TLS on a service port: %+v", res)
	}
}

func TestAutoMTLSFollowsServerPeerAuthentication(t *testing.T) {
	// ratings disables mTLS on 9080: its endpoints are marked tlsMode
	// disabled, so clients' auto mTLS sends plain text; reviews (STRICT)
	// keeps tlsMode istio.
	s := simulate(t, "peer-authentication", productpage())
	for host, want := range map[string]string{"ratings": "disabled", "reviews": "istio"} {
		res := run(t, s, sim.Request{Address: "10.0.0.1", Port: 9080, Host: host})
		for _, md := range res.EndpointMetadata {
			if got := md.GetFilterMetadata()["envoy.transport_socket_match"].GetFields()["tlsMode"].GetStringValue(); got != want {
				t.Errorf("%s endpoint tlsMode %q, want %q", host, got, want)
			}
		}
		if len(res.EndpointMetadata) == 0 {
			t.Errorf("%s: no endpoints", host)
		}
	}
}

func TestDefaultRouteHashesByDestinationRule(t *testing.T) {
	// features' ratings DestinationRule hashes on x-user; a proxy whose
	// VirtualService match does not apply still hashes on the default path
	// of a service without VirtualService: check on ratings' own routes and
	// on the default route of a service with only a DestinationRule.
	s := simulate(t, "features", reviewsV2())
	res := run(t, s, sim.Request{Address: ratingsVIP, Port: 9080, Host: "ratings", Path: "/x"})
	if hp := res.RouteEntry.GetRoute().GetHashPolicy(); len(hp) != 1 || hp[0].GetHeader().GetHeaderName() != "x-user" {
		t.Errorf("ratings route hash policy = %v", hp)
	}
}

func TestEgressGatewayTask(t *testing.T) {
	// The sidecar sends edition.cnn.com to the egress gateway...
	res := run(t, simulate(t, "egress-gateway", productpage()), sim.Request{Address: "151.101.1.67", Port: 80, Host: "edition.cnn.com"})
	if res.Cluster != "outbound|80|cnn|istio-egressgateway.istio-system.svc.cluster.local" || len(res.Endpoints) != 1 {
		t.Errorf("sidecar: %+v", res)
	}
	// ...and the egress gateway sends it out to the external service.
	egress := &model.Proxy{Type: model.ProxyRouter, Namespace: "istio-system", Labels: map[string]string{"istio": "egressgateway"}, IPs: []string{"10.1.0.200"}}
	res = run(t, simulate(t, "egress-gateway", egress), sim.Request{Address: "10.1.0.200", Port: 80, Host: "edition.cnn.com"})
	if res.RouteConfig != "http.80" || res.Cluster != "outbound|80||edition.cnn.com" || len(res.Endpoints) != 1 || res.Endpoints[0] != "edition.cnn.com:80" {
		t.Errorf("egress gateway: %+v", res)
	}
}

func TestTLSOrigination(t *testing.T) {
	s := simulate(t, "tls-origination", productpage())
	res := run(t, s, sim.Request{Address: "151.101.1.67", Port: 80, Host: "edition.cnn.com", Path: "/politics"})
	if res.Cluster != "outbound|443||edition.cnn.com" || len(res.Endpoints) != 1 || res.Endpoints[0] != "edition.cnn.com:443" {
		t.Fatalf("route: %+v", res)
	}
	c := s.Cluster(res.Cluster)
	utc := &tlsv3.UpstreamTlsContext{}
	if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(utc); err != nil || utc.Sni != "edition.cnn.com" {
		t.Errorf("cluster %s originates TLS with SNI %q (%v), want edition.cnn.com", c.Name, utc.Sni, err)
	}
	// HTTPS from the application on 443 is passed through untouched.
	res = run(t, s, sim.Request{Protocol: sim.TLS, SNI: "edition.cnn.com", Address: "151.101.1.67", Port: 443})
	if res.TerminatesTLS || res.Cluster != "outbound|443||edition.cnn.com" {
		t.Errorf("https passthrough: %+v", res)
	}
}
