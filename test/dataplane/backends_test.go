package dataplane

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// BackendKind selects what a [Backend] serves.
type BackendKind int

const (
	// BackendHTTP serves the echo handler over HTTP/1.1 and h2c (prior
	// knowledge) on one port.
	BackendHTTP BackendKind = iota
	// BackendTLS serves the echo handler over TLS with ALPN h2 and
	// http/1.1, with a certificate from [SharedCA] for any name under
	// svc.cluster.local and example.com.
	BackendTLS
	// BackendGRPC serves grpc.testing.TestService (plaintext HTTP/2); every
	// response carries the instance in header "x-instance" and trailer
	// "x-trailer-instance".
	BackendGRPC
	// BackendTCP echoes every connection, writing "INSTANCE\n" before the
	// first echoed bytes. It is client-first on purpose: Istio's inbound
	// listeners wait for the client's first bytes (TLS and protocol
	// detection), so server-first protocols need their port declared
	// otherwise, as in Istio.
	BackendTCP
	// BackendMixed serves the echo handler (HTTP/1.1 and h2c) to
	// connections that start like HTTP and behaves as BackendTCP for
	// the others, like an application on a port of unknown protocol.
	BackendMixed
)

// Backend is a Go server on a workload address that says which instance
// answered and what it saw. It stops when the test ends.
type Backend struct {
	// Instance is the name it reports (the workload name).
	Instance string
	Kind     BackendKind
	// Addr is host:port it listens on; Port its port.
	Addr string
	Port int

	mu    sync.Mutex
	seen  []Echo
	fails map[string]int
	slows map[string]int
}

// Echo is what the echo handler answers (JSON) and records for each
// request.
type Echo struct {
	// Instance is the backend that answered.
	Instance string `json:"instance"`
	// Proto is the request's protocol as the backend saw it (HTTP/1.1,
	// HTTP/2.0).
	Proto  string `json:"proto"`
	Method string `json:"method"`
	// Host is the Host header (:authority) the backend got.
	Host string `json:"host"`
	// URI is the request target (path and query).
	URI    string      `json:"uri"`
	Header http.Header `json:"header"`
	// SNI and ALPN describe the TLS connection, if any.
	SNI  string `json:"sni,omitempty"`
	ALPN string `json:"alpn,omitempty"`
	// BodyBytes is the size of the request body.
	BodyBytes int `json:"bodyBytes"`
}

// Request headers the echo handler obeys.
const (
	// HeaderStatus makes it answer with that status code.
	HeaderStatus = "x-echo-status"
	// HeaderDelay makes it wait that long (a Go duration) before answering.
	HeaderDelay = "x-echo-delay"
	// HeaderFail makes the first N requests carrying the same HeaderKey
	// value fail with 503 (counted per backend).
	HeaderFail = "x-echo-fail"
	// HeaderSlow limits HeaderDelay to the first N requests carrying the
	// same HeaderKey value.
	HeaderSlow = "x-echo-slow"
	// HeaderKey groups requests for HeaderFail and HeaderSlow.
	HeaderKey = "x-echo-key"
	// HeaderRespond adds a response header, "name: value".
	HeaderRespond = "x-echo-respond"
	// HeaderShadowDelay and HeaderShadowStatus act like HeaderDelay and
	// HeaderStatus on mirrored requests only (Host "...-shadow").
	HeaderShadowDelay  = "x-echo-shadow-delay"
	HeaderShadowStatus = "x-echo-shadow-status"
)

// StartBackend starts a backend of kind on host (a free port), reporting
// itself as instance.
func StartBackend(t *testing.T, kind BackendKind, instance, host string) *Backend {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("backend %s: %v", instance, err)
	}
	b := &Backend{Instance: instance, Kind: kind, Addr: ln.Addr().String(), Port: ln.Addr().(*net.TCPAddr).Port, fails: map[string]int{}, slows: map[string]int{}}
	switch kind {
	case BackendHTTP, BackendTLS:
		srv := &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
		srv.Protocols = new(http.Protocols)
		if kind == BackendHTTP {
			srv.Protocols.SetHTTP1(true)
			srv.Protocols.SetUnencryptedHTTP2(true)
			go srv.Serve(ln)
		} else {
			srv.Protocols.SetHTTP1(true)
			srv.Protocols.SetHTTP2(true)
			srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{SharedCA(t).Cert}, NextProtos: []string{"h2", "http/1.1"}}
			go srv.ServeTLS(ln, "", "")
		}
		t.Cleanup(func() { srv.Close() })
	case BackendGRPC:
		srv := grpc.NewServer()
		testpb.RegisterTestServiceServer(srv, &grpcEcho{instance: instance})
		go srv.Serve(ln)
		t.Cleanup(srv.Stop)
	case BackendMixed:
		httpLn := &chanListener{addr: ln.Addr(), conns: make(chan net.Conn), done: make(chan struct{})}
		srv := &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second, Protocols: new(http.Protocols)}
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
		go srv.Serve(httpLn)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					br := bufio.NewReader(c)
					c.SetReadDeadline(time.Now().Add(10 * time.Second))
					head, _ := br.Peek(4)
					c.SetReadDeadline(time.Time{})
					pc := &prefixConn{Conn: c, r: br}
					if looksLikeHTTP(head) {
						select {
						case httpLn.conns <- pc:
						case <-httpLn.done:
							c.Close()
						}
						return
					}
					defer c.Close()
					echoTCP(c, pc, instance)
				}()
			}
		}()
		t.Cleanup(func() {
			ln.Close()
			srv.Close()
		})
	case BackendTCP:
		var wg sync.WaitGroup
		var connsMu sync.Mutex
		conns := map[net.Conn]bool{}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				connsMu.Lock()
				conns[c] = true
				connsMu.Unlock()
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer c.Close()
					echoTCP(c, c, instance)
				}()
			}
		}()
		t.Cleanup(func() {
			ln.Close()
			connsMu.Lock()
			for c := range conns {
				c.Close()
			}
			connsMu.Unlock()
			wg.Wait()
		})
	default:
		t.Fatalf("backend %s: unknown kind %d", instance, kind)
	}
	return b
}

// echoTCP copies r to w, writing "INSTANCE\n" before the first bytes.
func echoTCP(w io.Writer, r io.Reader, instance string) {
	buf := make([]byte, 32<<10)
	first := true
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if first {
				first = false
				if _, err := fmt.Fprintf(w, "%s\n", instance); err != nil {
					return
				}
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// looksLikeHTTP tells whether a connection's first bytes are an HTTP/1
// method or the HTTP/2 preface.
func looksLikeHTTP(head []byte) bool {
	for _, m := range []string{"GET ", "POST", "PUT ", "HEAD", "DELE", "OPTI", "PATC", "PRI "} {
		if string(head) == m {
			return true
		}
	}
	return false
}

// chanListener hands connections accepted elsewhere to an http.Server.
type chanListener struct {
	addr  net.Addr
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// Requests returns the requests the echo handler has served (or been
// asked to fail), oldest first.
func (b *Backend) Requests() []Echo {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Echo(nil), b.seen...)
}

// ServeHTTP is the echo handler.
func (b *Backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n, _ := io.Copy(io.Discard, r.Body)
	e := Echo{Instance: b.Instance, Proto: r.Proto, Method: r.Method, Host: r.Host, URI: r.RequestURI, Header: r.Header, BodyBytes: int(n)}
	if r.TLS != nil {
		e.SNI, e.ALPN = r.TLS.ServerName, r.TLS.NegotiatedProtocol
	}
	b.mu.Lock()
	b.seen = append(b.seen, e)
	key := r.Header.Get(HeaderKey)
	fail, slow := false, true
	if want, err := strconv.Atoi(r.Header.Get(HeaderFail)); err == nil {
		if b.fails[key] < want {
			b.fails[key]++
			fail = true
		}
	}
	if want, err := strconv.Atoi(r.Header.Get(HeaderSlow)); err == nil {
		slow = b.slows[key] < want
		b.slows[key]++
	}
	b.mu.Unlock()

	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		b.websocket(w, r)
		return
	}
	delayHeader, statusHeader := HeaderDelay, HeaderStatus
	if host, _, err := net.SplitHostPort(r.Host); strings.HasSuffix(r.Host, "-shadow") || (err == nil && strings.HasSuffix(host, "-shadow")) {
		delayHeader, statusHeader = HeaderShadowDelay, HeaderShadowStatus
	}
	if d, err := time.ParseDuration(r.Header.Get(delayHeader)); err == nil && slow {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	for _, v := range r.Header.Values(HeaderRespond) {
		if k, val, ok := strings.Cut(v, ":"); ok {
			w.Header().Add(strings.TrimSpace(k), strings.TrimSpace(val))
		}
	}
	code := http.StatusOK
	if c, err := strconv.Atoi(r.Header.Get(statusHeader)); err == nil {
		code = c
	}
	if fail {
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Instance", b.Instance)
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(e)
}

// websocket completes an RFC 6455 handshake, sends one text frame
// "INSTANCE" and then echoes whatever bytes arrive (frames included).
func (b *Backend) websocket(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if key == "" {
		http.Error(w, "missing Sec-WebSocket-Key", http.StatusBadRequest)
		return
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", WebSocketAccept(key))
	brw.Write(WebSocketFrame([]byte(b.Instance), false))
	brw.Flush()
	io.Copy(c, brw)
}

// WebSocketAccept is the Sec-WebSocket-Accept value for key (RFC 6455).
func WebSocketAccept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// WebSocketFrame encodes one final text frame of at most 125 bytes,
// masked (as a client must send it) when masked is set.
func WebSocketFrame(payload []byte, masked bool) []byte {
	f := []byte{0x81, byte(len(payload))}
	if !masked {
		return append(f, payload...)
	}
	f[1] |= 0x80
	mask := []byte{1, 2, 3, 4}
	f = append(f, mask...)
	for i, c := range payload {
		f = append(f, c^mask[i%4])
	}
	return f
}

// ReadWebSocketFrame reads one frame of at most 125 bytes and returns its
// unmasked payload.
func ReadWebSocketFrame(r *bufio.Reader) ([]byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := int(h[1] & 0x7f)
	if n > 125 {
		return nil, fmt.Errorf("frame length %d not supported", n)
	}
	var mask []byte
	if h[1]&0x80 != 0 {
		mask = make([]byte, 4)
		if _, err := io.ReadFull(r, mask); err != nil {
			return nil, err
		}
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return nil, err
	}
	for i := range p {
		if mask != nil {
			p[i] ^= mask[i%4]
		}
	}
	return p, nil
}

// grpcEcho implements grpc.testing.TestService's unary and streaming
// calls. Payloads carry the instance name; ResponseStatus in the request
// is returned as the call's status; a UnaryCall payload "sleep:DURATION"
// delays the answer.
type grpcEcho struct {
	testpb.UnimplementedTestServiceServer
	instance string
}

func (g *grpcEcho) metadata(ctx context.Context) {
	grpc.SetHeader(ctx, metadata.Pairs("x-instance", g.instance))
	md, _ := metadata.FromIncomingContext(ctx)
	grpc.SetTrailer(ctx, metadata.Pairs("x-trailer-instance", g.instance, "x-seen-authority", strings.Join(md.Get(":authority"), ",")))
}

func (g *grpcEcho) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	g.metadata(ctx)
	if d, ok := strings.CutPrefix(string(req.GetPayload().GetBody()), "sleep:"); ok {
		if d, err := time.ParseDuration(d); err == nil {
			select {
			case <-time.After(d):
			case <-ctx.Done(): // the call's deadline (grpc-timeout) or cancellation
				return nil, status.FromContextError(ctx.Err()).Err()
			}
		}
	}
	if s := req.GetResponseStatus(); s != nil && s.GetCode() != 0 {
		return nil, status.Error(codes.Code(s.GetCode()), s.GetMessage())
	}
	return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: []byte(g.instance)}}, nil
}

func (g *grpcEcho) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	g.metadata(stream.Context())
	for i := range req.GetResponseParameters() {
		body := fmt.Sprintf("%s %d", g.instance, i)
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: []byte(body)}}); err != nil {
			return err
		}
	}
	if s := req.GetResponseStatus(); s != nil && s.GetCode() != 0 {
		return status.Error(codes.Code(s.GetCode()), s.GetMessage())
	}
	return nil
}

func (g *grpcEcho) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	g.metadata(stream.Context())
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		body := g.instance + " " + string(req.GetPayload().GetBody())
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: []byte(body)}}); err != nil {
			return err
		}
	}
}

// CA is a self-signed test certificate authority and one serving
// certificate it issued for *.svc.cluster.local, *.default.svc.cluster.local,
// *.example.com and localhost.
type CA struct {
	// Cert is the serving certificate with its key.
	Cert tls.Certificate
	// Pool trusts the CA; RootFile holds it as PEM (for a
	// DestinationRule's caCertificates).
	Pool     *x509.CertPool
	RootFile string

	dir string // removed by TestMain
}

var testCA struct {
	once sync.Once
	ca   *CA
	err  error
}

// TestCA returns the test binary's CA, creating it on first use.
func SharedCA(t *testing.T) *CA {
	t.Helper()
	testCA.once.Do(func() { testCA.ca, testCA.err = newCA() })
	if testCA.err != nil {
		t.Fatal(testCA.err)
	}
	return testCA.ca
}

func newCA() (*CA, error) {
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	root := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "weft dataplane test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, root, root, &rootKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	rootCert, _ := x509.ParseCertificate(rootDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "backend"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames:    []string{"*.svc.cluster.local", "*.default.svc.cluster.local", "*.example.com", "localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, rootCert, &key.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(rootCert)
	dir, err := os.MkdirTemp("", "weft-dataplane-ca-")
	if err != nil {
		return nil, err
	}
	file := filepath.Join(dir, "root-cert.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER}), 0o644); err != nil {
		return nil, err
	}
	return &CA{Cert: tls.Certificate{Certificate: [][]byte{leafDER, rootDER}, PrivateKey: key}, Pool: pool, RootFile: file, dir: dir}, nil
}
