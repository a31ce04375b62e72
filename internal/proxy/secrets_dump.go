package proxy

import (
	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// redacted replaces private keys in the config dump, as Envoy does.
const redacted = "[redacted]"

// secretsDump is the SecretsConfigDump of the locally served SDS secrets
// ("default" with its certificate chain, never the key; "ROOTCA"), or nil
// without an identity.
func (p *Proxy) secretsDump() *adminv3.SecretsConfigDump {
	if p.rotator == nil {
		return nil
	}
	st := p.rotator.Status()
	d := &adminv3.SecretsConfigDump{}
	for _, s := range p.rotator.Secrets() {
		if tc := s.GetTlsCertificate(); tc != nil {
			tc.PrivateKey = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: redacted}}
		}
		d.DynamicActiveSecrets = append(d.DynamicActiveSecrets, &adminv3.SecretsConfigDump_DynamicSecret{
			Name: s.GetName(), VersionInfo: st.Serial, LastUpdated: timestamppb.New(st.LastRotation), Secret: mustAny(s),
		})
	}
	return d
}
