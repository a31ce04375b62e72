package httpproxy

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	xffv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/original_ip_detection/xff/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestConfigureHCMErrors(t *testing.T) {
	xff := func(hops uint32) []*corev3.TypedExtensionConfig {
		a, _ := anypb.New(&xffv3.XffConfig{XffNumTrustedHops: hops})
		return []*corev3.TypedExtensionConfig{{Name: "envoy.http.original_ip_detection.xff", TypedConfig: a}}
	}
	other, _ := anypb.New(&hcmv3.HttpConnectionManager{})
	for _, tc := range []struct {
		name string
		hcm  *hcmv3.HttpConnectionManager
		want string
	}{
		{"extension with use_remote_address", &hcmv3.HttpConnectionManager{UseRemoteAddress: wrapperspb.Bool(true), OriginalIpDetectionExtensions: xff(1)}, "l.original_ip_detection_extensions[0] (envoy.http.original_ip_detection.xff): cannot be combined with use_remote_address"},
		{"extension with hops", &hcmv3.HttpConnectionManager{XffNumTrustedHops: 1, OriginalIpDetectionExtensions: xff(1)}, "cannot be combined with xff_num_trusted_hops"},
		{"unknown extension", &hcmv3.HttpConnectionManager{OriginalIpDetectionExtensions: []*corev3.TypedExtensionConfig{{Name: "custom", TypedConfig: other}}}, "unsupported original IP detection extension"},
		{"bad cidr", &hcmv3.HttpConnectionManager{InternalAddressConfig: &hcmv3.HttpConnectionManager_InternalAddressConfig{CidrRanges: []*corev3.CidrRange{{AddressPrefix: "ten"}}}}, "l.internal_address_config.cidr_ranges[0].address_prefix"},
	} {
		err := (&Handler{}).ConfigureHCM("l", tc.hcm)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	h := &Handler{}
	if err := h.ConfigureHCM("l", &hcmv3.HttpConnectionManager{OriginalIpDetectionExtensions: xff(2)}); err != nil || h.Forwarding.TrustedHops != 2 {
		t.Errorf("xff extension: %v, %+v", err, h.Forwarding)
	}
}
