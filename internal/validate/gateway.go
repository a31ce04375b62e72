//lint:file-ignore SA1019 checking deprecated fields (and warning about them) is the validator's job

package validate

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// protocols are the port protocols Istio knows (case-insensitive).
var protocols = map[string]bool{
	"http": true, "http2": true, "https": true, "grpc": true, "grpc-web": true, "http_proxy": true,
	"tcp": true, "tls": true, "udp": true, "mongo": true, "redis": true, "mysql": true,
}

func knownProtocol(p string) bool { return protocols[strings.ToLower(p)] }

func isHTTPProtocol(p string) bool {
	switch strings.ToLower(p) {
	case "http", "http2", "grpc", "grpc-web", "http_proxy":
		return true
	}
	return false
}

func isTLSProtocol(p string) bool {
	switch strings.ToLower(p) {
	case "https", "tls":
		return true
	}
	return false
}

const unixPrefix = "unix://"

func (k *checker) gateway(g *networking.Gateway) {
	if !isLabel(k.meta.Name) {
		k.errorf("metadata.name", "invalid gateway name %q: Gateway names must be DNS labels (no dots)", k.meta.Name)
	}
	if len(g.Servers) == 0 {
		k.errorf("spec.servers", "a gateway needs at least one server")
	}
	k.labels("spec.selector", g.Selector)
	portNames := map[string]int{}
	for i, s := range g.Servers {
		p := idx("spec.servers", i)
		if s == nil {
			k.errorf(p, "server may not be null")
			continue
		}
		k.server(p, s)
		if s.Port != nil && s.Port.Name != "" {
			if j, dup := portNames[s.Port.Name]; dup {
				k.errorf(fld(p, "port.name"), "duplicate port name %q (also spec.servers[%d]); port names must be unique across servers", s.Port.Name, j)
			} else {
				portNames[s.Port.Name] = i
			}
		}
	}
}

func (k *checker) server(p string, s *networking.Server) {
	if len(s.Hosts) == 0 {
		k.errorf(fld(p, "hosts"), "a server needs at least one host")
	}
	for i, h := range s.Hosts {
		k.err(idx(fld(p, "hosts"), i), checkNamespacedHost(h, true))
	}
	portOK := true
	pp := fld(p, "port")
	if s.Port == nil {
		k.errorf(pp, "required")
		portOK = false
	} else {
		if !knownProtocol(s.Port.Protocol) {
			k.errorf(fld(pp, "protocol"), "invalid protocol %q (want HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TCP, TLS, MONGO, REDIS or MYSQL)", s.Port.Protocol)
			portOK = false
		}
		if s.Port.Number > 0 || !strings.HasPrefix(s.Bind, unixPrefix) {
			if err := checkPort(int64(s.Port.Number)); err != nil {
				k.err(fld(pp, "number"), err)
				portOK = false
			}
		}
		if s.Port.TargetPort > 0 {
			k.errorf(fld(pp, "targetPort"), "targetPort has no effect on gateways")
		}
		if s.Port.Name == "" {
			k.errorf(fld(pp, "name"), "required")
		}
	}
	if strings.HasPrefix(s.Bind, unixPrefix) {
		k.err(fld(p, "bind"), checkUnixPath(strings.TrimPrefix(s.Bind, unixPrefix)))
		if s.Port != nil && s.Port.Number != 0 {
			k.errorf(fld(pp, "number"), "port number must be 0 for a unix domain socket bind")
		}
	} else if s.Bind != "" && !isIP(s.Bind) {
		k.errorf(fld(p, "bind"), "%q is not a valid IP address or unix:// path", s.Bind)
	}
	k.serverTLS(fld(p, "tls"), s.Tls)
	if !portOK {
		return
	}
	proto := s.Port.Protocol
	switch {
	case isTLSProtocol(proto) && s.Tls == nil:
		k.errorf(fld(p, "tls"), "%s servers need tls settings (mode and credentials)", strings.ToUpper(proto))
	case !isTLSProtocol(proto) && s.Tls != nil:
		if isHTTPProtocol(proto) {
			t := s.Tls
			onlyRedirect := t.Mode == networking.ServerTLSSettings_PASSTHROUGH && t.CaCertificates == "" &&
				t.PrivateKey == "" && t.ServerCertificate == "" && t.CredentialName == "" && len(t.CredentialNames) == 0
			if !onlyRedirect {
				k.errorf(fld(p, "tls"), "plain-text %s servers can only set tls.httpsRedirect", strings.ToUpper(proto))
			}
		} else {
			k.errorf(fld(p, "tls"), "tls settings are only allowed on HTTPS and TLS servers")
		}
	}
	if s.Tls.GetHttpsRedirect() && !isHTTPProtocol(proto) {
		k.warnf(fld(p, "tls.httpsRedirect"), "httpsRedirect only has an effect on HTTP servers")
	}
}

// serverTLS checks gateway (and sidecar ingress) TLS settings.
func (k *checker) serverTLS(p string, t *networking.ServerTLSSettings) {
	if t == nil {
		return
	}
	if (t.MinProtocolVersion == networking.ServerTLSSettings_TLSV1_0 || t.MinProtocolVersion == networking.ServerTLSSettings_TLSV1_1) && len(t.CipherSuites) == 0 {
		k.warnf(fld(p, "minProtocolVersion"), "TLS versions below 1.2 need compatible cipherSuites; the defaults no longer include them")
	}
	if t.MaxProtocolVersion != networking.ServerTLSSettings_TLS_AUTO && t.MinProtocolVersion > t.MaxProtocolVersion {
		k.errorf(fld(p, "minProtocolVersion"), "minProtocolVersion %s is above maxProtocolVersion %s", t.MinProtocolVersion, t.MaxProtocolVersion)
	}
	switch t.Mode {
	case networking.ServerTLSSettings_ISTIO_MUTUAL:
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"serverCertificate", t.ServerCertificate != ""}, {"privateKey", t.PrivateKey != ""},
			{"caCertificates", t.CaCertificates != ""}, {"tlsCertificates", len(t.TlsCertificates) > 0},
			{"credentialName", t.CredentialName != ""}, {"credentialNames", len(t.CredentialNames) > 0},
		} {
			if f.set {
				k.errorf(fld(p, f.name), "ISTIO_MUTUAL uses the mesh certificates; %s must not be set", f.name)
			}
		}
		return
	case networking.ServerTLSSettings_PASSTHROUGH, networking.ServerTLSSettings_AUTO_PASSTHROUGH:
		if t.CaCrl != "" || t.ServerCertificate != "" || t.PrivateKey != "" || t.CaCertificates != "" ||
			len(t.TlsCertificates) > 0 || t.CredentialName != "" || len(t.CredentialNames) > 0 {
			k.warnf(p, "%s mode does not use certificates; they are ignored", t.Mode)
		}
		return
	}
	sources := 0
	if t.ServerCertificate != "" && t.PrivateKey != "" {
		sources++
	}
	if t.CredentialName != "" {
		sources++
	}
	if len(t.CredentialNames) > 0 {
		sources++
	}
	if len(t.TlsCertificates) > 0 {
		sources++
	}
	if sources > 1 {
		k.errorf(p, "only one of credentialName, credentialNames, serverCertificate/privateKey and tlsCertificates may be set")
	}
	mutual := t.Mode == networking.ServerTLSSettings_MUTUAL || t.Mode == networking.ServerTLSSettings_OPTIONAL_MUTUAL
	if t.CredentialName != "" || len(t.CredentialNames) > 0 {
		if t.CaCrl != "" && t.CredentialName != "" {
			k.errorf(fld(p, "caCrl"), "caCrl is not supported with credentialName; put the CRL in the credential")
		}
		return // certificates (and the CA for MUTUAL) come from the credential
	}
	mode := "SIMPLE"
	if mutual {
		mode = string(t.Mode.String())
		if t.CaCertificates == "" {
			k.errorf(fld(p, "caCertificates"), "%s TLS needs a client CA bundle (caCertificates) or credentialName", mode)
		}
	}
	if len(t.TlsCertificates) > 2 {
		k.warnf(fld(p, "tlsCertificates"), "at most 2 server certificates are supported")
	}
	if len(t.TlsCertificates) > 0 {
		for i, c := range t.TlsCertificates {
			cp := idx(fld(p, "tlsCertificates"), i)
			if c.GetServerCertificate() == "" {
				k.errorf(fld(cp, "serverCertificate"), "required")
			}
			if c.GetPrivateKey() == "" {
				k.errorf(fld(cp, "privateKey"), "required")
			}
		}
	} else if t.ServerCertificate == "" && t.PrivateKey == "" {
		k.errorf(p, "%s TLS needs credentials: credentialName, or serverCertificate and privateKey", mode)
	} else {
		if t.ServerCertificate == "" {
			k.errorf(fld(p, "serverCertificate"), "%s TLS needs a server certificate", mode)
		}
		if t.PrivateKey == "" {
			k.errorf(fld(p, "privateKey"), "%s TLS needs a private key", mode)
		}
	}
	if t.CaCrl != "" && t.Mode == networking.ServerTLSSettings_SIMPLE {
		k.errorf(fld(p, "caCrl"), "caCrl is not supported with SIMPLE TLS")
	}
}
