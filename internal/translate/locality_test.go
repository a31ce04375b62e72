package translate

import (
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
)

func TestLocalityFailoverAndDistribute(t *testing.T) {
	snap := loadCase(t, "locality")
	proxy := sidecarProxy("productpage", "v1", "10.1.0.11")
	proxy.Metadata = map[string]string{MetadataLocality: "us-east1/us-east1-b"}
	r := Generate(snap, proxy)
	validateResources(t, r)

	la := findCLA(r, "outbound|8080||geo.default.svc.cluster.local")
	want := map[string]uint32{"us-east1/us-east1-b": 0, "us-east1/us-east1-c": 1, "eu-west1/eu-west1-a": 2, "us-west1/us-west1-a": 3}
	if len(la.Endpoints) != 4 {
		t.Fatalf("got %d localities", len(la.Endpoints))
	}
	for _, g := range la.Endpoints {
		key := g.Locality.Region + "/" + g.Locality.Zone
		if g.Priority != want[key] {
			t.Errorf("locality %s: priority %d, want %d", key, g.Priority, want[key])
		}
		if key == "eu-west1/eu-west1-a" && g.LoadBalancingWeight.Value != 3 {
			t.Errorf("eu-west1 weight %d, want the endpoint weight 3", g.LoadBalancingWeight.Value)
		}
	}
	if c := findCluster(r, la.ClusterName); c.LbPolicy != cluster.Cluster_ROUND_ROBIN || c.OutlierDetection == nil {
		t.Errorf("geo cluster: lb %v outlier %v", c.LbPolicy, c.OutlierDetection)
	}

	dist := findCLA(r, "outbound|8080|distributed|geo.default.svc.cluster.local")
	got := map[string]uint32{}
	for _, g := range dist.Endpoints {
		got[g.Locality.Region+"/"+g.Locality.Zone] = g.LoadBalancingWeight.Value
	}
	if len(got) != 2 || got["us-east1/us-east1-b"] != 4*got["us-west1/us-west1-a"] {
		t.Errorf("distribute weights = %v, want us-east1-b 80%% and us-west1 20%% only", got)
	}
	if c := findCluster(r, dist.ClusterName); c.CommonLbConfig.GetLocalityWeightedLbConfig() == nil {
		t.Error("distributed subset cluster lacks locality weighted LB")
	}

	// Without a proxy locality nothing is prioritised.
	proxy.Metadata = nil
	for _, g := range findCLA(Generate(snap, proxy), la.ClusterName).Endpoints {
		if g.Priority != 0 {
			t.Errorf("priority %d without proxy locality", g.Priority)
		}
	}
}

func TestSidecarScopeLimitsClusters(t *testing.T) {
	snap := loadCase(t, "sidecar-scope")
	r := Generate(snap, sidecarProxy("productpage", "v1", "10.1.0.11"))
	validateResources(t, r)
	var outbound []string
	for _, c := range r.Clusters {
		if len(c.Name) > 9 && c.Name[:9] == "outbound|" {
			outbound = append(outbound, c.Name)
		}
	}
	if len(outbound) != 1 || outbound[0] != "outbound|9080||reviews.default.svc.cluster.local" {
		t.Errorf("outbound clusters = %v, want only reviews", outbound)
	}
	// The inbound side still serves the workload's own port.
	if findCluster(r, "inbound|9080||") == nil {
		t.Error("no inbound cluster")
	}
}
