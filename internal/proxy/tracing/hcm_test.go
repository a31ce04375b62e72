package tracing

import (
	"net/http"
	"strings"
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

func TestForHCM(t *testing.T) {
	base, err := New(Config{OTLPURL: "http://127.0.0.1:1/v1/traces", SamplingPercent: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  *hcmv3.HttpConnectionManager_Tracing
		want string
	}{
		{"bad percent", &hcmv3.HttpConnectionManager_Tracing{RandomSampling: &typev3.Percent{Value: 101}}, "random_sampling: 101"},
		{"metadata tag", &hcmv3.HttpConnectionManager_Tracing{CustomTags: []*tracingv3.CustomTag{{Tag: "m", Type: &tracingv3.CustomTag_Metadata_{Metadata: &tracingv3.CustomTag_Metadata{}}}}}, "custom_tags[0] (m): only literal and request_header"},
		{"empty header", &hcmv3.HttpConnectionManager_Tracing{CustomTags: []*tracingv3.CustomTag{{Tag: "h", Type: &tracingv3.CustomTag_RequestHeader{RequestHeader: &tracingv3.CustomTag_Header{}}}}}, "custom_tags[0] (h).request_header.name: empty"},
	} {
		if _, err := base.ForHCM(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}

	tr, err := base.ForHCM(&hcmv3.HttpConnectionManager_Tracing{
		RandomSampling: &typev3.Percent{Value: 0},
		CustomTags: []*tracingv3.CustomTag{
			{Tag: "pod", Type: &tracingv3.CustomTag_Environment_{Environment: &tracingv3.CustomTag_Environment{Name: "POD_NAME", DefaultValue: "unknown-pod"}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if base.hcm != nil {
		t.Fatal("ForHCM changed the proxy-wide tracer")
	}
	r, _ := http.NewRequest("GET", "http://a/", nil)
	if sp := tr.Start(r); sp != nil {
		t.Fatal("random_sampling 0% sampled a request (the proxy-wide 100% applied)")
	}
	r, _ = http.NewRequest("GET", "http://a/", nil)
	r.Header.Set(HeaderClientTraceID, "x")
	sp := tr.Start(r)
	if sp == nil {
		t.Fatal("x-client-trace-id not sampled at client_sampling 100%")
	}
	if v, ok := Lookup(sp.(*span).tags, "pod"); !ok || v != "unknown-pod" {
		t.Errorf("environment tag %q, want its default", v)
	}
}
