package sim_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"

	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/translate"
	"github.com/weftmesh/weft/internal/translate/sim"
)

const testdata = "../../../testdata/translate"

// simulate generates the configuration of proxy for a test case (the
// bookinfo base plus the case's files) and returns its simulator.
func simulate(t *testing.T, caseName string, proxy *model.Proxy) *sim.Simulator {
	t.Helper()
	files := []string{filepath.Join(testdata, "base", "bookinfo.yaml")}
	if caseName != "base" {
		more, _ := filepath.Glob(filepath.Join(testdata, caseName, "*.yaml"))
		if len(more) == 0 {
			t.Fatalf("case %s has no files", caseName)
		}
		files = append(files, more...)
	}
	var configs []*model.Config
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cs, diags := manifest.Decode(f, data, "file")
		if len(diags) > 0 {
			t.Fatalf("%v", diags)
		}
		configs = append(configs, cs...)
	}
	snap := model.NewStore().Update(&model.SourceState{Source: "file", Configs: configs, Synced: true})
	r := translate.Generate(snap, proxy)
	return sim.New(sim.Config{Listeners: r.Listeners, Routes: r.Routes, Clusters: r.Clusters, Endpoints: r.Endpoints})
}

func productpage() *model.Proxy {
	return &model.Proxy{Type: model.ProxySidecar, Namespace: "default", Workload: "productpage-v1",
		Labels: map[string]string{"app": "productpage", "version": "v1"}, IPs: []string{"10.1.0.11"}}
}

func reviewsV2() *model.Proxy {
	return &model.Proxy{Type: model.ProxySidecar, Namespace: "default", Workload: "reviews-v2",
		Labels: map[string]string{"app": "reviews", "version": "v2"}, IPs: []string{"10.1.0.14"}}
}

func ingress() *model.Proxy {
	return &model.Proxy{Type: model.ProxyRouter, Namespace: "istio-system", Workload: "istio-ingressgateway",
		Labels: map[string]string{"istio": "ingressgateway"}, IPs: []string{"10.1.0.100"}}
}

const (
	reviewsVIP = "10.0.0.12"
	reviewsV1  = "outbound|9080|v1|reviews.default.svc.cluster.local"
	reviewsV2C = "outbound|9080|v2|reviews.default.svc.cluster.local"
	reviewsV3  = "outbound|9080|v3|reviews.default.svc.cluster.local"
)

func run(t *testing.T, s *sim.Simulator, req sim.Request) *sim.Result {
	t.Helper()
	res, err := s.Run(req)
	if err != nil {
		t.Fatalf("%+v: %v", req, err)
	}
	return res
}

func TestNoVirtualServiceUsesDefaultCluster(t *testing.T) {
	s := simulate(t, "base", productpage())
	res := run(t, s, sim.Request{Address: reviewsVIP, Port: 9080, Host: "reviews:9080", Path: "/reviews/0"})
	if res.Listener != "0.0.0.0_9080" || res.RouteConfig != "9080" || res.Route != "default" {
		t.Errorf("matched %+v", res)
	}
	if res.Cluster != "outbound|9080||reviews.default.svc.cluster.local" || len(res.Endpoints) != 3 {
		t.Errorf("cluster %s endpoints %v, want whole reviews service (3)", res.Cluster, res.Endpoints)
	}
	// Every name Istio generates reaches the same virtual host.
	for _, host := range []string{"reviews", "reviews.default", "reviews.default.svc", "reviews.default.svc.cluster.local:9080", "10.0.0.12:9080"} {
		res := run(t, s, sim.Request{Address: reviewsVIP, Port: 9080, Host: host})
		if res.VirtualHost != "reviews.default.svc.cluster.local:9080" {
			t.Errorf("host %q matched virtual host %q", host, res.VirtualHost)
		}
	}
	// Unknown hosts pass through (ALLOW_ANY).
	res = run(t, s, sim.Request{Address: "93.184.216.34", Port: 9080, Host: "example.com:9080"})
	if res.Cluster != translate.PassthroughCluster {
		t.Errorf("unknown host went to %s", res.Cluster)
	}
	res = run(t, s, sim.Request{Protocol: sim.TCP, Address: "93.184.216.34", Port: 5432})
	if res.Listener != translate.VirtualOutboundListener || res.Cluster != translate.PassthroughCluster {
		t.Errorf("unknown TCP destination: %+v", res)
	}
	res = run(t, s, sim.Request{Protocol: sim.TCP, Address: "10.0.0.30", Port: 27017})
	if res.Listener != "10.0.0.30_27017" || res.Cluster != "outbound|27017||mongodb.default.svc.cluster.local" {
		t.Errorf("mongodb: %+v", res)
	}
	res = run(t, s, sim.Request{Protocol: sim.TLS, SNI: "api.example.com", Address: "93.184.216.34", Port: 443})
	if res.Cluster != "outbound|443||api.example.com" || len(res.Endpoints) != 1 {
		t.Errorf("external TLS by SNI: %+v", res)
	}
}

func TestAllV1(t *testing.T) {
	s := simulate(t, "all-v1", productpage())
	for _, svc := range []string{"productpage", "reviews", "ratings", "details"} {
		res := run(t, s, sim.Request{Address: "10.0.0.1", Port: 9080, Host: svc + ":9080", Headers: map[string]string{"end-user": "jason"}})
		want := "outbound|9080|v1|" + svc + ".default.svc.cluster.local"
		if res.Cluster != want || len(res.Endpoints) != 1 {
			t.Errorf("%s: cluster %s endpoints %v, want %s with one endpoint", svc, res.Cluster, res.Endpoints, want)
		}
	}
}

func TestJasonGoesToReviewsV2(t *testing.T) {
	s := simulate(t, "jason-v2", productpage())
	res := run(t, s, sim.Request{Address: reviewsVIP, Port: 9080, Host: "reviews:9080", Headers: map[string]string{"end-user": "jason"}})
	if res.Cluster != reviewsV2C || len(res.Endpoints) != 1 || res.Endpoints[0] != "10.1.0.14:9080" {
		t.Errorf("jason: %s %v, want %s at 10.1.0.14:9080", res.Cluster, res.Endpoints, reviewsV2C)
	}
	for _, user := range []string{"", "jasonx", "Jason"} {
		h := map[string]string{}
		if user != "" {
			h["end-user"] = user
		}
		res := run(t, s, sim.Request{Address: reviewsVIP, Port: 9080, Host: "reviews:9080", Headers: h})
		if res.Cluster != reviewsV1 {
			t.Errorf("user %q: %s, want %s", user, res.Cluster, reviewsV1)
		}
	}
}

func TestRatingsDelayAndAbortForJason(t *testing.T) {
	for _, tc := range []struct {
		name  string
		check func(*faultv3.HTTPFault) bool
	}{
		{"ratings-delay", func(f *faultv3.HTTPFault) bool {
			return f.GetDelay().GetFixedDelay().AsDuration() == 7*time.Second && f.GetDelay().GetPercentage().GetNumerator() == 1000000
		}},
		{"ratings-abort", func(f *faultv3.HTTPFault) bool {
			return f.GetAbort().GetHttpStatus() == 500 && f.GetAbort().GetPercentage().GetNumerator() == 1000000
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := simulate(t, tc.name, reviewsV2())
			res := run(t, s, sim.Request{Address: "10.0.0.13", Port: 9080, Host: "ratings:9080", Headers: map[string]string{"end-user": "jason"}})
			if res.Cluster != "outbound|9080|v1|ratings.default.svc.cluster.local" {
				t.Fatalf("jason: %s", res.Cluster)
			}
			f := fault(t, res)
			if f == nil || !tc.check(f) {
				t.Errorf("jason's route fault = %v", f)
			}
			res = run(t, s, sim.Request{Address: "10.0.0.13", Port: 9080, Host: "ratings:9080"})
			if fault(t, res) != nil {
				t.Errorf("other users get a fault")
			}
		})
	}
}

func fault(t *testing.T, res *sim.Result) *faultv3.HTTPFault {
	a := res.RouteEntry.GetTypedPerFilterConfig()["envoy.filters.http.fault"]
	if a == nil {
		return nil
	}
	f := &faultv3.HTTPFault{}
	if err := a.UnmarshalTo(f); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestTrafficShifting(t *testing.T) {
	s := simulate(t, "shift-50-v3", productpage())
	res := run(t, s, sim.Request{Address: reviewsVIP, Port: 9080, Host: "reviews:9080"})
	if len(res.WeightedClusters) != 2 || res.WeightedClusters[reviewsV1] != 50 || res.WeightedClusters[reviewsV3] != 50 {
		t.Errorf("50/50: %v", res.WeightedClusters)
	}
	s = simulate(t, "shift-100-v3", productpage())
	res = run(t, s, sim.Request{Address: reviewsVIP, Port: 9080, Host: "reviews:9080"})
	if res.Cluster != reviewsV3 || res.WeightedClusters != nil {
		t.Errorf("100%% v3: %s %v", res.Cluster, res.WeightedClusters)
	}
}

func TestRequestTimeout(t *testing.T) {
	s := simulate(t, "reviews-timeout", productpage())
	res := run(t, s, sim.Request{Address: reviewsVIP, Port: 9080, Host: "reviews:9080"})
	if got := res.RouteEntry.GetRoute().GetTimeout().AsDuration(); got != 500*time.Millisecond || res.Cluster != reviewsV2C {
		t.Errorf("reviews: timeout %v cluster %s", got, res.Cluster)
	}
	// Without a VirtualService timeout, Istio disables Envoy's 15 s default.
	res = run(t, s, sim.Request{Address: "10.0.0.11", Port: 9080, Host: "details:9080"})
	if to := res.RouteEntry.GetRoute().GetTimeout(); to == nil || to.AsDuration() != 0 {
		t.Errorf("details timeout = %v, want 0s", to)
	}
	if rp := res.RouteEntry.GetRoute().GetRetryPolicy(); rp.GetNumRetries().GetValue() != 2 || !strings.Contains(rp.GetRetryOn(), "retriable-status-codes") {
		t.Errorf("default retry policy = %v", rp)
	}
}

func TestMirror(t *testing.T) {
	s := simulate(t, "mirror", productpage())
	res := run(t, s, sim.Request{Address: "10.0.0.20", Port: 8000, Host: "httpbin:8000"})
	if res.Cluster != "outbound|8000|v1|httpbin.default.svc.cluster.local" || res.Endpoints[0] != "10.1.0.21:80" {
		t.Errorf("httpbin: %s %v", res.Cluster, res.Endpoints)
	}
	m := res.RouteEntry.GetRoute().GetRequestMirrorPolicies()
	if len(m) != 1 || m[0].Cluster != "outbound|8000|v2|httpbin.default.svc.cluster.local" || m[0].GetRuntimeFraction().GetDefaultValue().GetNumerator() != 1000000 {
		t.Errorf("mirror policies = %v", m)
	}
}

func TestIngressGateway(t *testing.T) {
	s := simulate(t, "ingress-gateway", ingress())
	for _, path := range []string{"/productpage", "/static/css/x.css", "/login", "/logout", "/api/v1/products/1"} {
		res := run(t, s, sim.Request{Address: "10.1.0.100", Port: 8080, Host: "bookinfo.example.com", Path: path})
		if res.Listener != "0.0.0.0_8080" || res.RouteConfig != "http.8080" || res.Cluster != "outbound|9080||productpage.default.svc.cluster.local" {
			t.Errorf("%s: %+v", path, res)
		}
	}
	if _, err := s.Run(sim.Request{Address: "10.1.0.100", Port: 8080, Host: "x", Path: "/admin"}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("/admin: err = %v, want no route (404)", err)
	}
	if _, err := s.Run(sim.Request{Address: "10.1.0.100", Port: 15001}); err == nil {
		t.Error("gateway has an outbound capture listener")
	}
}

func TestRegistryOnly(t *testing.T) {
	s := simulate(t, "registry-only", productpage())
	res := run(t, s, sim.Request{Protocol: sim.TCP, Address: "93.184.216.34", Port: 5432})
	if res.Cluster != translate.BlackHoleCluster {
		t.Errorf("unknown TCP destination went to %s, want BlackHoleCluster", res.Cluster)
	}
	res = run(t, s, sim.Request{Address: "93.184.216.34", Port: 9080, Host: "example.com"})
	if res.DirectResponse != 502 || res.VirtualHost != translate.BlockAllVirtualHost {
		t.Errorf("unknown HTTP host: %+v", res)
	}
	res = run(t, s, sim.Request{Address: reviewsVIP, Port: 9080, Host: "reviews"})
	if res.Cluster != "outbound|9080||reviews.default.svc.cluster.local" {
		t.Errorf("known host: %s", res.Cluster)
	}
	// "./*" admits only the proxy's namespace; api.example.com is in default too.
	res = run(t, s, sim.Request{Protocol: sim.TLS, SNI: "api.example.com", Address: "93.184.216.34", Port: 443})
	if res.Cluster != "outbound|443||api.example.com" {
		t.Errorf("external service in own namespace: %s", res.Cluster)
	}
}

func TestInbound(t *testing.T) {
	s := simulate(t, "base", reviewsV2())
	res := run(t, s, sim.Request{Listener: translate.VirtualInboundListener, Address: "10.1.0.14", Port: 9080, Host: "reviews:9080"})
	if res.Cluster != "inbound|9080||" || len(res.Endpoints) != 1 || res.Endpoints[0] != "127.0.0.1:9080" {
		t.Errorf("inbound: %+v", res)
	}
	res = run(t, s, sim.Request{Protocol: sim.TCP, Listener: translate.VirtualInboundListener, Address: "10.1.0.14", Port: 7777})
	if res.Cluster != translate.InboundPassthroughCluster {
		t.Errorf("inbound other port: %s", res.Cluster)
	}
}
