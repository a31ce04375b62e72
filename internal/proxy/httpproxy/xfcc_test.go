package httpproxy

import (
	"net/http"
	"testing"

	"github.com/weftmesh/weft/internal/proxy/sds"
)

func TestForwardClientCert(t *testing.T) {
	mtls := &ConnInfo{TLS: true, LocalPrincipal: "spiffe://td/ns/a/sa/server",
		Peer: &sds.Peer{Principal: "spiffe://td/ns/a/sa/client", Hash: "ab12", URIs: []string{"spiffe://td/ns/a/sa/client"}, DNS: []string{"c.example"}}}
	plain := &ConnInfo{}
	const prior = "By=spiffe://td/ns/x/sa/gw;Hash=ff;URI=spiffe://td/ns/x/sa/ext"
	cur := `By=spiffe://td/ns/a/sa/server;Hash=ab12;Subject="";URI=spiffe://td/ns/a/sa/client;DNS=c.example`
	all := ForwardClientCert{Subject: true, URI: true, DNS: true}
	for _, c := range []struct {
		name  string
		mode  XFCCMode
		conn  *ConnInfo
		prior string
		want  string
	}{
		{"sanitize drops", XFCCSanitize, mtls, prior, ""},
		{"append on mTLS", XFCCAppendForward, mtls, prior, prior + "," + cur},
		{"append without prior", XFCCAppendForward, mtls, "", cur},
		{"plain text never forwards a client's header", XFCCAppendForward, plain, prior, ""},
		{"no connection info", XFCCAppendForward, nil, prior, ""},
		{"sanitize_set replaces", XFCCSanitizeSet, mtls, prior, cur},
		{"forward_only keeps", XFCCForwardOnly, mtls, prior, prior},
		{"forward_only on plain text drops", XFCCForwardOnly, plain, prior, ""},
		{"always_forward_only keeps on plain text", XFCCAlwaysForwardOnly, plain, prior, prior},
	} {
		h := http.Header{}
		if c.prior != "" {
			h.Set("X-Forwarded-Client-Cert", c.prior)
		}
		f := all
		f.Mode = c.mode
		f.Apply(h, c.conn)
		if got := h.Get("X-Forwarded-Client-Cert"); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	// Only By and Hash without set_current_client_cert_details.
	h := http.Header{}
	ForwardClientCert{Mode: XFCCSanitizeSet}.Apply(h, mtls)
	if got := h.Get("X-Forwarded-Client-Cert"); got != "By=spiffe://td/ns/a/sa/server;Hash=ab12" {
		t.Errorf("minimal element = %q", got)
	}
}
