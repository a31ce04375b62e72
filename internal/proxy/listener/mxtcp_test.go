package listener

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/proxy/telemetry/peermeta"
)

func testExchange(t *testing.T, workload string) *peermeta.Exchange {
	t.Helper()
	md, err := structpb.NewStruct(map[string]any{"NAMESPACE": "default", "WORKLOAD_NAME": workload})
	if err != nil {
		t.Fatal(err)
	}
	x, err := peermeta.New("sidecar~"+workload, peermeta.NodeMetadata(md, "Kubernetes"))
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		done <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-done
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return string(b)
}

// nothingToRead checks that c has no bytes waiting.
func nothingToRead(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	defer c.SetReadDeadline(time.Time{})
	var b [1]byte
	if n, err := c.Read(b[:]); n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("unexpected bytes: %q, %v", b[:n], err)
	}
}

// TestTCPExchangeBothSides: the client sidecar sends its frame, the
// server sidecar reads it and answers with its own; each learns the
// other's workload and the applications' bytes pass untouched.
func TestTCPExchangeBothSides(t *testing.T) {
	cx, sx := testExchange(t, "client"), testExchange(t, "echo-v1")
	cEnd, sEnd := tcpPair(t)
	type result struct {
		peer *peermeta.Peer
		got  string
	}
	srv := make(chan result, 1)
	go func() {
		conn, _, p := exchangeDownstream(sEnd, sx)
		got := readN(t, conn, 5)
		sEnd.Write([]byte("world"))
		srv <- result{p, got}
	}()
	read, peer, rest := exchangeUpstream(cEnd, cx)
	cEnd.Write([]byte("hello"))
	if got := readN(t, read, 5); got != "world" || len(rest) != 0 {
		t.Errorf("client read %q, rest %q", got, rest)
	}
	if peer == nil || peer.Workload != "echo-v1" {
		t.Errorf("client learned %+v", peer)
	}
	r := <-srv
	if r.got != "hello" || r.peer == nil || r.peer.Workload != "client" || r.peer.Cluster != "Kubernetes" {
		t.Errorf("server read %q, learned %+v", r.got, r.peer)
	}
}

// TestTCPExchangeClientWithoutIt: a client that negotiated the protocol
// but sends application bytes (an HTTP client) gets them passed on and
// no frame back.
func TestTCPExchangeClientWithoutIt(t *testing.T) {
	cEnd, sEnd := tcpPair(t)
	const req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	cEnd.Write([]byte(req))
	conn, raw, peer := exchangeDownstream(sEnd, testExchange(t, "echo-v1"))
	if peer != nil || raw != sEnd {
		t.Errorf("peer %+v, raw %T", peer, raw)
	}
	if got := readN(t, conn, len(req)); got != req {
		t.Errorf("server read %q", got)
	}
	nothingToRead(t, cEnd)
}

// TestTCPExchangeServerFirst: nothing comes from the client in time (a
// server-first application behind an Envoy client, which sends its frame
// once it has received ours): the server sends its frame first and
// strips the client's when it arrives.
func TestTCPExchangeServerFirst(t *testing.T) {
	defer func(d time.Duration) { downstreamFrameWait = d }(downstreamFrameWait)
	downstreamFrameWait = 50 * time.Millisecond
	cEnd, sEnd := tcpPair(t)
	cx, sx := testExchange(t, "client"), testExchange(t, "echo-v1")
	done := make(chan error, 1)
	go func() { // the Envoy client: reads the server's frame, then sends its own and data
		p, _, err := peermeta.ReadTCPFrame(cEnd)
		if err == nil && (p == nil || p.Workload != "echo-v1") {
			err = errors.New("wrong server frame")
		}
		cEnd.Write(append(slices.Clone(cx.TCPFrame()), "data"...))
		done <- err
	}()
	conn, raw, peer := exchangeDownstream(sEnd, sx)
	if peer != nil || conn != raw {
		t.Errorf("peer %+v", peer)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := readN(t, raw, 4); got != "data" {
		t.Errorf("server read %q, want the data without the client's frame", got)
	}
}

// TestTCPExchangeEnvoyServer: an Envoy server sends its frame and the
// application's first bytes together; a server that does not speak the
// protocol sends application bytes, which go to the downstream.
func TestTCPExchangeEnvoyServer(t *testing.T) {
	cx, sx := testExchange(t, "client"), testExchange(t, "echo-v1")
	cEnd, sEnd := tcpPair(t)
	go func() {
		peermeta.ReadTCPFrame(sEnd)
		sEnd.Write(append(slices.Clone(sx.TCPFrame()), "220 ready\r\n"...))
	}()
	read, peer, rest := exchangeUpstream(cEnd, cx)
	if peer == nil || peer.Workload != "echo-v1" || len(rest) != 0 {
		t.Fatalf("peer %+v rest %q", peer, rest)
	}
	if got := readN(t, read, 11); got != "220 ready\r\n" {
		t.Errorf("after the frame: %q", got)
	}

	cEnd, sEnd = tcpPair(t)
	sEnd.Write([]byte("220 ready\r\n"))
	read, peer, rest = exchangeUpstream(cEnd, cx)
	if peer != nil || string(rest)+readN(t, read, 11-len(rest)) != "220 ready\r\n" {
		t.Errorf("plain server: peer %+v rest %q", peer, rest)
	}
}

// TestTLSChoosesExchange: a TCP chain's TLS server picks Istio's
// exchange protocol when the client cluster offers it with http/1.1.
func TestTLSChoosesExchange(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	srvCfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		NextProtos: []string{"h2", "http/1.1", peermeta.ALPN}} // as sds orders them
	preferExchange(srvCfg)
	if srvCfg.NextProtos[0] != peermeta.ALPN || len(srvCfg.NextProtos) != 3 {
		t.Fatalf("NextProtos %v", srvCfg.NextProtos)
	}
	cEnd, sEnd := tcpPair(t)
	ts := tls.Server(sEnd, srvCfg)
	go ts.Handshake()
	tc := tls.Client(cEnd, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{peermeta.ALPN, "istio", "http/1.1"}})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if !negotiatedExchange(tc) {
		t.Errorf("negotiated %q", tc.ConnectionState().NegotiatedProtocol)
	}
	if negotiatedExchange(cEnd) {
		t.Error("a plain connection negotiated the exchange")
	}
}
