package httpproxy

import (
	"fmt"
	"net/netip"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	xffv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/original_ip_detection/xff/v3"
)

// HCMTracer is a Tracer that takes an HTTP connection manager's own
// tracing settings (sampling, custom tags, path tag length), which then
// take precedence over the proxy-wide ones.
type HCMTracer interface {
	Tracer
	// ForHCM returns the tracer to use for a connection manager whose
	// tracing field is t, or an error naming the unsupported setting.
	ForHCM(t *hcmv3.HttpConnectionManager_Tracing) (Tracer, error)
}

// xffExtension is the XFF original IP detection extension's type URL.
const xffExtension = "type.googleapis.com/envoy.extensions.http.original_ip_detection.xff.v3.XffConfig"

// ConfigureHCM applies the connection manager settings the handler
// implements itself: X-Forwarded-For handling (use_remote_address,
// xff_num_trusted_hops, skip_xff_append, internal_address_config, the
// XFF original IP detection extension) and, when the handler has a
// Tracer, the tracing settings. field names m in errors. Call it before
// the handler serves.
func (h *Handler) ConfigureHCM(field string, m *hcmv3.HttpConnectionManager) error {
	f := Forwarding{
		UseRemoteAddress: m.GetUseRemoteAddress().GetValue(),
		TrustedHops:      int(m.GetXffNumTrustedHops()),
		SkipXFFAppend:    m.GetSkipXffAppend(),
	}
	if ic := m.GetInternalAddressConfig(); ic != nil {
		f.Internal = []netip.Prefix{}
		for i, c := range ic.GetCidrRanges() {
			a, err := netip.ParseAddr(c.GetAddressPrefix())
			if err != nil {
				return fmt.Errorf("%s.internal_address_config.cidr_ranges[%d].address_prefix: %q is not an IP address", field, i, c.GetAddressPrefix())
			}
			bits := a.BitLen()
			if c.GetPrefixLen() != nil {
				bits = int(c.GetPrefixLen().GetValue())
			}
			p, err := a.Prefix(bits)
			if err != nil {
				return fmt.Errorf("%s.internal_address_config.cidr_ranges[%d].prefix_len: %v", field, i, err)
			}
			f.Internal = append(f.Internal, p)
		}
	}
	exts := m.GetOriginalIpDetectionExtensions()
	switch {
	case len(exts) > 1:
		return fmt.Errorf("%s.original_ip_detection_extensions: only one (the XFF extension) is supported", field)
	case len(exts) == 1:
		e := exts[0]
		ef := fmt.Sprintf("%s.original_ip_detection_extensions[0] (%s)", field, e.GetName())
		if f.UseRemoteAddress {
			return fmt.Errorf("%s: cannot be combined with use_remote_address", ef)
		}
		if f.TrustedHops != 0 {
			return fmt.Errorf("%s: cannot be combined with xff_num_trusted_hops", ef)
		}
		if e.GetTypedConfig().GetTypeUrl() != xffExtension {
			return fmt.Errorf("%s: unsupported original IP detection extension %s", ef, e.GetTypedConfig().GetTypeUrl())
		}
		x := &xffv3.XffConfig{}
		if err := e.GetTypedConfig().UnmarshalTo(x); err != nil {
			return fmt.Errorf("%s: %v", ef, err)
		}
		if x.GetXffTrustedCidrs() != nil {
			return fmt.Errorf("%s.xff_trusted_cidrs: not supported", ef)
		}
		f.TrustedHops = int(x.GetXffNumTrustedHops())
		f.SkipXFFAppend = x.GetSkipXffAppend().GetValue()
	}
	h.Forwarding = f
	if t := m.GetTracing(); t != nil && h.Tracer != nil {
		if ht, ok := h.Tracer.(HCMTracer); ok {
			tr, err := ht.ForHCM(t)
			if err != nil {
				return fmt.Errorf("%s.tracing: %v", field, err)
			}
			h.Tracer = tr
		}
	}
	return nil
}
