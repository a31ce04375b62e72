package bootstrap

import (
	"strings"
	"testing"
	"time"
)

func TestParseYAMLAndNode(t *testing.T) {
	doc := `
xdsAddress: 10.0.0.1:15010
delta: true
node:
  id: sidecar~10.1.1.1~reviews-v1.default~default.svc.cluster.local
  namespace: default
  workload: reviews-v1
  serviceAccount: bookinfo-reviews
  labels: {app: reviews, version: v1}
  instanceIPs: [10.1.1.1, "fd00::1"]
warmingTimeout: 2s
`
	cfg, err := Parse("b.yaml", []byte(doc), Default())
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if !cfg.Delta || cfg.XDSAddress != "10.0.0.1:15010" || time.Duration(cfg.WarmingTimeout) != 2*time.Second {
		t.Fatalf("parsed %+v", cfg)
	}
	if cfg.AdminAddress != "127.0.0.1:15000" {
		t.Fatalf("default admin lost: %q", cfg.AdminAddress)
	}
	n := cfg.XDSNode()
	md := n.GetMetadata().GetFields()
	if md["NAMESPACE"].GetStringValue() != "default" || md["WORKLOAD_NAME"].GetStringValue() != "reviews-v1" ||
		md["SERVICE_ACCOUNT"].GetStringValue() != "bookinfo-reviews" || md["INSTANCE_IPS"].GetStringValue() != "10.1.1.1,fd00::1" {
		t.Fatalf("metadata %v", md)
	}
	if md["LABELS"].GetStructValue().GetFields()["app"].GetStringValue() != "reviews" {
		t.Fatalf("labels %v", md["LABELS"])
	}
}

func TestParseJSON(t *testing.T) {
	cfg, err := Parse("b.json", []byte(`{"node":{"id":"n1"},"adminAddress":"127.0.0.1:0"}`), Default())
	if err != nil || cfg.Node.ID != "n1" || cfg.AdminAddress != "127.0.0.1:0" {
		t.Fatalf("%+v %v", cfg, err)
	}
}

func TestValidateErrors(t *testing.T) {
	cases := map[string]string{
		`node: {id: x}
xdsAddress: nope`: "xdsAddress",
		`xdsAddress: a:1`:                   "node.id",
		`node: {id: x, instanceIPs: [bad]}`: "node.instanceIPs[0]",
		`node: {id: x}
bogus: 1`: "unknown field",
		`node: {id: x}
warmingTimeout: soon`: "invalid duration",
	}
	for doc, want := range cases {
		cfg, err := Parse("f.yaml", []byte(doc), Default())
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want error containing %q", doc, err, want)
		}
	}
}

func TestParseLabels(t *testing.T) {
	m, err := ParseLabels("app=reviews, version=v1")
	if err != nil || m["app"] != "reviews" || m["version"] != "v1" {
		t.Fatalf("%v %v", m, err)
	}
	if _, err := ParseLabels("novalue"); err == nil {
		t.Fatal("want error")
	}
}
