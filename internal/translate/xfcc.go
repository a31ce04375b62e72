package translate

import (
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// setInboundXFCC makes an inbound connection manager forward the mesh
// client's identity to the application as Istio's sidecars do:
// x-forwarded-client-cert gets "By=<server SPIFFE ID>;Hash=...;
// Subject=\"\";URI=<client SPIFFE ID>" appended on mTLS connections and
// is removed from plain-text requests (so a client cannot forge it).
func setInboundXFCC(m *hcm.HttpConnectionManager) {
	m.ForwardClientCertDetails = hcm.HttpConnectionManager_APPEND_FORWARD
	m.SetCurrentClientCertDetails = &hcm.HttpConnectionManager_SetCurrentClientCertDetails{
		Subject: wrapperspb.Bool(true), Uri: true, Dns: true,
	}
}
