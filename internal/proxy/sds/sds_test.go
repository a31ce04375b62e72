package sds_test

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/ca/catest"
	"github.com/weftmesh/weft/internal/ca/spiffe"
	"github.com/weftmesh/weft/internal/proxy/sds"
)

// store returns the SDS store of service account sa in default, with a
// certificate from c.
func store(t *testing.T, c *catest.CA, sa string) *sds.Store {
	t.Helper()
	return sds.New(c.Rotator(t, spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: sa}, 0))
}

func sdsConfig(name string) *tlsv3.SdsSecretConfig { return &tlsv3.SdsSecretConfig{Name: name} }

// istioMutual is the client context translate emits for ISTIO_MUTUAL.
func istioMutual(sans ...string) *tlsv3.UpstreamTlsContext {
	dvc := &tlsv3.CertificateValidationContext{}
	for _, s := range sans {
		dvc.MatchTypedSubjectAltNames = append(dvc.MatchTypedSubjectAltNames, &tlsv3.SubjectAltNameMatcher{
			SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}},
		})
	}
	return &tlsv3.UpstreamTlsContext{Sni: "outbound_.9080_._.reviews.default.svc.cluster.local", CommonTlsContext: &tlsv3.CommonTlsContext{
		AlpnProtocols:                  []string{"istio-peer-exchange", "istio"},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsConfig("default")},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext: dvc, ValidationContextSdsSecretConfig: sdsConfig("ROOTCA"),
		}},
	}}
}

// strictServer is the inbound context for PeerAuthentication STRICT.
func strictServer() *tlsv3.DownstreamTlsContext {
	return &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			AlpnProtocols:                  []string{"istio-peer-exchange", "h2", "http/1.1"},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsConfig("default")},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
				ValidationContextSdsSecretConfig: sdsConfig("ROOTCA"),
			},
		},
	}
}

// handshake runs a TLS handshake over loopback and returns the server's
// view of it, or the first error.
func handshake(t *testing.T, client, server *tls.Config) (tls.ConnectionState, tls.ConnectionState, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	a.SetDeadline(time.Now().Add(20 * time.Second))
	b.SetDeadline(time.Now().Add(20 * time.Second))
	sc := tls.Server(b, server)
	errc := make(chan error, 1)
	go func() { errc <- sc.Handshake() }()
	cc := tls.Client(a, client)
	cerr := cc.Handshake()
	if cerr != nil {
		a.Close()
	}
	serr := <-errc
	if serr != nil {
		b.Close()
	}
	if cerr != nil {
		return tls.ConnectionState{}, tls.ConnectionState{}, cerr
	}
	if serr != nil {
		return tls.ConnectionState{}, tls.ConnectionState{}, serr
	}
	return cc.ConnectionState(), sc.ConnectionState(), nil
}

func TestIstioMutualHandshake(t *testing.T) {
	m := catest.Start(t)
	client, server := store(t, m, "productpage"), store(t, m, "reviews")
	srvCfg, err := sds.DownstreamConfig("test", strictServer(), server)
	if err != nil {
		t.Fatal(err)
	}
	cliCfg, err := sds.UpstreamConfig("test", istioMutual("spiffe://cluster.local/ns/default/sa/reviews"), client, "http/1.1")
	if err != nil {
		t.Fatal(err)
	}
	cs, ss, err := handshake(t, cliCfg, srvCfg)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if cs.NegotiatedProtocol != "http/1.1" {
		t.Errorf("ALPN = %q, want http/1.1 (istio protocols are never selected)", cs.NegotiatedProtocol)
	}
	p := sds.PeerOf(ss)
	if p == nil || p.Principal != "spiffe://cluster.local/ns/default/sa/productpage" || len(p.Hash) != 64 {
		t.Fatalf("server sees peer %+v", p)
	}
	if got := server.Identity(); got != "spiffe://cluster.local/ns/default/sa/reviews" {
		t.Errorf("server identity = %q", got)
	}
	if cp := sds.PeerOf(cs); cp == nil || cp.Principal != "spiffe://cluster.local/ns/default/sa/reviews" {
		t.Errorf("client sees server %+v", cp)
	}
}

func TestWrongServerIdentityIsRejected(t *testing.T) {
	m := catest.Start(t)
	client, server := store(t, m, "productpage"), store(t, m, "ratings")
	srvCfg, _ := sds.DownstreamConfig("test", strictServer(), server)
	cliCfg, _ := sds.UpstreamConfig("test", istioMutual("spiffe://cluster.local/ns/default/sa/reviews"), client, "")
	if _, _, err := handshake(t, cliCfg, srvCfg); err == nil || !strings.Contains(err.Error(), "do not match") {
		t.Fatalf("handshake with an unexpected server identity: err = %v, want a SAN mismatch", err)
	}
}

func TestStrictRequiresClientCertificate(t *testing.T) {
	m := catest.Start(t)
	server := store(t, m, "reviews")
	srvCfg, _ := sds.DownstreamConfig("test", strictServer(), server)
	// A TLS client without a certificate (plain TLS, not mesh mTLS).
	if _, _, err := handshake(t, &tls.Config{InsecureSkipVerify: true}, srvCfg); err == nil { //nolint:gosec // test client
		t.Fatal("handshake without a client certificate succeeded under require_client_certificate")
	}
}

func TestCertificateFromAnotherCAIsRejected(t *testing.T) {
	a, b := catest.Start(t), catest.Start(t)
	server := store(t, a, "reviews")
	stranger := store(t, b, "productpage")
	srvCfg, _ := sds.DownstreamConfig("test", strictServer(), server)
	cliCfg, _ := sds.UpstreamConfig("test", istioMutual(), stranger, "")
	if _, _, err := handshake(t, cliCfg, srvCfg); err == nil {
		t.Fatal("a client certificate of another mesh's CA was accepted")
	}
}

func TestNoIdentity(t *testing.T) {
	var none *sds.Store
	if _, err := none.Certificate("default"); err != sds.ErrNoIdentity {
		t.Errorf("Certificate on a proxy without identity: %v", err)
	}
	cfg, err := sds.DownstreamConfig("test", strictServer(), none)
	if err != nil {
		t.Fatalf("config naming SDS secrets must compile without identity (handshakes fail): %v", err)
	}
	if _, err := cfg.GetCertificate(nil); err == nil {
		t.Error("GetCertificate without identity succeeded")
	}
}

func TestBadContextsNameTheField(t *testing.T) {
	bad := strictServer()
	bad.CommonTlsContext.ValidationContextType = nil
	if _, err := sds.DownstreamConfig("listener x.filter_chains[0].transport_socket", bad, nil); err == nil || !strings.Contains(err.Error(), "listener x.filter_chains[0].transport_socket.require_client_certificate") {
		t.Errorf("require_client_certificate without validation: %v", err)
	}
	re := istioMutual()
	re.CommonTlsContext.GetCombinedValidationContext().DefaultValidationContext.MatchTypedSubjectAltNames = []*tlsv3.SubjectAltNameMatcher{{
		SanType: tlsv3.SubjectAltNameMatcher_URI, Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "("}}},
	}}
	if _, err := sds.UpstreamConfig("cluster c.transport_socket", re, nil, ""); err == nil || !strings.Contains(err.Error(), "match_typed_subject_alt_names[0].matcher.safe_regex") {
		t.Errorf("bad regex: %v", err)
	}
}
