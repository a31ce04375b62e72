package dataplane

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestHTTP1ForwardProxy sends HTTP/1.1 requests through the client
// sidecar's forward proxy (HTTP_PROXY, absolute-form) to a service of two
// workloads: each answers through its own sidecar, and the server sees
// the service's authority.
func TestHTTP1ForwardProxy(t *testing.T) {
	m := NewMesh(t)
	echo := m.AddService("echo", "http", "HTTP")
	m.AddWorkload(echo, "v1", BackendHTTP)
	m.AddWorkload(echo, "v2", BackendHTTP)
	client := m.StartClient("client")

	seen := map[string]int{}
	for range 20 {
		r := client.Get(t, echo.URL("/hello?x=1"))
		if r.Status != 200 || r.Echo == nil {
			t.Fatalf("GET %s: %d %q", echo.URL("/hello"), r.Status, r.Body)
		}
		if r.Echo.Proto != "HTTP/1.1" || r.Echo.URI != "/hello?x=1" || r.Echo.Host != echo.HostPort() {
			t.Errorf("backend saw %s %s host %s, want HTTP/1.1 /hello?x=1 host %s", r.Echo.Proto, r.Echo.URI, r.Echo.Host, echo.HostPort())
		}
		seen[r.Echo.Instance]++
	}
	if seen["echo-v1"] == 0 || seen["echo-v2"] == 0 {
		t.Errorf("instances answering = %v, want both echo-v1 and echo-v2", seen)
	}

	// The short name works too, as for an application with HTTP_PROXY.
	short := fmt.Sprintf("http://echo:%d/short", echo.Port)
	if r := client.Get(t, short); r.Status != 200 || r.Echo == nil || r.Echo.URI != "/short" {
		t.Errorf("GET %s: %d %q", short, r.Status, r.Body)
	}
	// A host the mesh does not know goes to PassthroughCluster (Istio's
	// allow_any virtual host), not to the service.
	before := len(echo.Workloads[0].Backend.Requests()) + len(echo.Workloads[1].Backend.Requests())
	if r := client.Get(t, fmt.Sprintf("http://nowhere.invalid:%d/", echo.Port)); r.Status == http.StatusOK {
		t.Errorf("GET an unknown host on the service port: %d %q, want an error from PassthroughCluster", r.Status, r.Body)
	}
	if after := len(echo.Workloads[0].Backend.Requests()) + len(echo.Workloads[1].Backend.Requests()); after != before {
		t.Errorf("a request for an unknown host reached the service's backends")
	}

	t.Run("access log path of an absolute-form request", func(t *testing.T) {
		// Envoy's HTTP/1 codec turns an absolute-form target into :authority
		// and :path (RFC 9112 3.2.2), so the access log's path is the
		// origin-form path.
		logged := m.StartClientWithAccessLog("logged")
		logged.Get(t, echo.URL("/logged?y=2"))
		e := logged.WaitAccessLog(t, "/logged?y=2")
		if e.Str("path") != "/logged?y=2" || e.Str("authority") != echo.HostPort() {
			t.Errorf("access log path %q authority %q, want /logged?y=2 and %s", e.Str("path"), e.Str("authority"), echo.HostPort())
		}
	})
}

// TestConnectTunnelHTTP speaks HTTP/1.1 inside a CONNECT tunnel (what an
// HTTPS_PROXY client does): the proxy treats the tunnel as a connection
// intercepted to host:port and routes its requests by Host; several
// requests share the tunnel.
func TestConnectTunnelHTTP(t *testing.T) {
	m := NewMesh(t)
	echo := m.AddService("echo", "http", "HTTP")
	m.AddWorkload(echo, "v1", BackendHTTP)
	client := m.StartClient("client")

	c, err := client.Dial(echo.HostPort())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i := range 3 {
		fmt.Fprintf(c, "GET /tunnel/%d HTTP/1.1\r\nHost: %s\r\n\r\n", i, echo.HostPort())
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d in the tunnel: %v", i, err)
		}
		r := readResponse(t, resp)
		if r.Status != 200 || r.Echo == nil || r.Echo.URI != fmt.Sprintf("/tunnel/%d", i) || r.Echo.Instance != "echo-v1" {
			t.Fatalf("request %d in the tunnel: %d %q", i, r.Status, r.Body)
		}
	}
}

// TestH2C sends HTTP/2 with prior knowledge (h2c) to an HTTP2 service:
// the client's sidecar and the server's sidecar speak HTTP/2 on to the
// backend, and concurrent streams share one client connection.
func TestH2C(t *testing.T) {
	m := NewMesh(t)
	echo := m.AddService("echo", "http2", "HTTP2")
	m.AddWorkload(echo, "v1", BackendHTTP)
	client := m.StartClient("client")

	hc := client.H2CClient()
	errs := make(chan error, 10)
	for i := range 10 {
		go func() {
			resp, err := hc.Get(echo.URL(fmt.Sprintf("/h2c/%d", i)))
			if err != nil {
				errs <- err
				return
			}
			r := readResponse(t, resp)
			switch {
			case resp.ProtoMajor != 2:
				errs <- fmt.Errorf("client got %s", resp.Proto)
			case r.Status != 200 || r.Echo == nil:
				errs <- fmt.Errorf("GET /h2c/%d: %d %q", i, r.Status, r.Body)
			case r.Echo.Proto != "HTTP/2.0" || r.Echo.URI != fmt.Sprintf("/h2c/%d", i):
				errs <- fmt.Errorf("backend saw %s %s, want HTTP/2.0 /h2c/%d", r.Echo.Proto, r.Echo.URI, i)
			default:
				errs <- nil
			}
		}()
	}
	for range 10 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestGRPC calls grpc.testing.TestService through both sidecars with
// grpc-go (connections tunnelled through the client sidecar): unary and
// server-streaming calls keep their headers, trailers and grpc-status,
// and an error status reaches the client unchanged.
func TestGRPC(t *testing.T) {
	m := NewMesh(t)
	svc := m.AddService("grpc-echo", "grpc", "GRPC")
	m.AddWorkload(svc, "v1", BackendGRPC)
	client := m.StartClient("client")

	cc, err := grpc.NewClient("passthrough:///"+svc.HostPort(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(_ context.Context, addr string) (net.Conn, error) { return client.Dial(addr) }))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	tc := testpb.NewTestServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var header, trailer metadata.MD
	resp, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		t.Fatalf("UnaryCall: %v", err)
	}
	if string(resp.GetPayload().GetBody()) != "grpc-echo-v1" {
		t.Errorf("UnaryCall payload %q, want grpc-echo-v1", resp.GetPayload().GetBody())
	}
	if got := header.Get("x-instance"); len(got) != 1 || got[0] != "grpc-echo-v1" {
		t.Errorf("header x-instance = %v", got)
	}
	if got := trailer.Get("x-trailer-instance"); len(got) != 1 || got[0] != "grpc-echo-v1" {
		t.Errorf("trailer x-trailer-instance = %v (trailer %v)", got, trailer)
	}
	if got := trailer.Get("x-seen-authority"); len(got) != 1 || got[0] != svc.HostPort() {
		t.Errorf("backend saw :authority %v, want %s", got, svc.HostPort())
	}

	// An error status and its message pass through.
	_, err = tc.UnaryCall(ctx, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.FailedPrecondition), Message: "not today"}})
	if s, _ := status.FromError(err); s.Code() != codes.FailedPrecondition || s.Message() != "not today" {
		t.Errorf("UnaryCall with status 9: got %v, want FailedPrecondition \"not today\"", err)
	}

	// Server streaming: every message, then the trailers.
	stream, err := tc.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
		ResponseParameters: make([]*testpb.ResponseParameters, 5),
		ResponseStatus:     &testpb.EchoStatus{Code: int32(codes.ResourceExhausted), Message: "enough"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		msg, err := stream.Recv()
		if err != nil {
			if s, _ := status.FromError(err); s.Code() != codes.ResourceExhausted || s.Message() != "enough" {
				t.Errorf("stream ended with %v, want ResourceExhausted \"enough\"", err)
			}
			break
		}
		got = append(got, string(msg.GetPayload().GetBody()))
	}
	if len(got) != 5 || got[4] != "grpc-echo-v1 4" {
		t.Errorf("streamed messages %q, want 5 ending with \"grpc-echo-v1 4\"", got)
	}
	if tr := stream.Trailer().Get("x-trailer-instance"); len(tr) != 1 {
		t.Errorf("stream trailer %v lacks x-trailer-instance", stream.Trailer())
	}

	// Bidirectional streaming.
	duplex, err := tc.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := duplex.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(fmt.Sprint("ping", i))}}); err != nil {
			t.Fatal(err)
		}
		msg, err := duplex.Recv()
		if err != nil {
			t.Fatalf("FullDuplexCall recv %d: %v", i, err)
		}
		if want := fmt.Sprint("grpc-echo-v1 ping", i); string(msg.GetPayload().GetBody()) != want {
			t.Errorf("FullDuplexCall got %q, want %q", msg.GetPayload().GetBody(), want)
		}
	}
	duplex.CloseSend()
	if _, err := duplex.Recv(); err != io.EOF {
		t.Errorf("FullDuplexCall end: %v, want EOF (status OK)", err)
	}
}

// TestWebSocket upgrades a request sent through the forward proxy to
// WebSocket: the 101 and Sec-WebSocket-Accept come back from the backend
// and frames flow both ways through both sidecars.
func TestWebSocket(t *testing.T) {
	m := NewMesh(t)
	echo := m.AddService("ws", "http", "HTTP")
	m.AddWorkload(echo, "v1", BackendHTTP)
	client := m.StartClient("client")

	for _, via := range []string{"forward proxy", "CONNECT tunnel"} {
		t.Run(strings.ReplaceAll(via, " ", "_"), func(t *testing.T) {
			var c net.Conn
			var err error
			target := echo.URL("/socket")
			if via == "forward proxy" {
				c, err = net.Dial("tcp", client.ForwardAddr)
			} else {
				c, err = client.Dial(echo.HostPort())
				target = "/socket"
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			key := "dGhlIHNhbXBsZSBub25jZQ=="
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n", target, echo.HostPort(), key)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != WebSocketAccept(key) {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
				t.Fatalf("upgrade answered %s %v %q", resp.Status, resp.Header, b)
			}
			hello, err := ReadWebSocketFrame(br)
			if err != nil || string(hello) != "ws-v1" {
				t.Fatalf("first frame %q, %v; want ws-v1", hello, err)
			}
			for _, msg := range []string{"one", "two", strings.Repeat("x", 100)} {
				c.Write(WebSocketFrame([]byte(msg), true))
				got, err := ReadWebSocketFrame(br)
				if err != nil || string(got) != msg {
					t.Fatalf("echoed frame %q, %v; want %q", got, err, msg)
				}
			}
		})
	}
}

// TestTCP opens CONNECT tunnels to a TCP service of two workloads: bytes
// go both ways through both sidecars unchanged, connections are spread
// over the instances, and a half-close reaches the backend.
func TestTCP(t *testing.T) {
	m := NewMesh(t)
	svc := m.AddService("tcp-echo", "tcp", "TCP")
	m.AddWorkload(svc, "v1", BackendTCP)
	m.AddWorkload(svc, "v2", BackendTCP)
	client := m.StartClient("client")

	seen := map[string]int{}
	payload := strings.Repeat("0123456789abcdef", 64<<10/16) // 64 KiB
	for range 10 {
		c, err := client.Dial(svc.HostPort())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			io.WriteString(c, payload)
			c.(interface{ CloseWrite() error }).CloseWrite()
		}()
		br := bufio.NewReader(c)
		inst, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the instance: %v", err)
		}
		seen[strings.TrimSpace(inst)]++
		got, err := io.ReadAll(br)
		c.Close()
		if err != nil || string(got) != payload {
			t.Fatalf("echo of %d bytes: got %d bytes, %v", len(payload), len(got), err)
		}
	}
	if seen["tcp-echo-v1"] == 0 || seen["tcp-echo-v2"] == 0 || len(seen) != 2 {
		t.Errorf("instances = %v, want both tcp-echo-v1 and tcp-echo-v2", seen)
	}
}

// TestTLSPassthroughBySNI routes TLS connections by SNI with a
// VirtualService tls match: the proxies never terminate TLS (the client
// verifies the backend's own certificate and negotiates h2 with it), and
// the SNI decides the subset.
func TestTLSPassthroughBySNI(t *testing.T) {
	m := NewMesh(t)
	svc := m.AddService("secure", "tls", "TLS")
	m.AddWorkload(svc, "v1", BackendTLS)
	m.AddWorkload(svc, "v2", BackendTLS)
	client := m.StartClient("client")
	m.Apply("secure-dr.yaml", SubsetsYAML(svc, "", "v1", "v2"))
	m.Apply("secure-vs.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: secure, namespace: default}
spec:
  hosts: [%[1]s]
  tls:
  - match:
    - port: %[2]d
      sniHosts: [%[1]s]
    route:
    - destination: {host: %[1]s, subset: v2}
`, svc.Host, svc.Port))
	m.Sync()

	ca := SharedCA(t)
	for i := range 6 {
		raw, err := client.Dial(svc.HostPort())
		if err != nil {
			t.Fatal(err)
		}
		tc := tls.Client(raw, &tls.Config{ServerName: svc.Host, RootCAs: ca.Pool, NextProtos: []string{"h2"}})
		if err := tc.Handshake(); err != nil {
			raw.Close()
			t.Fatalf("TLS handshake %d through the tunnel: %v", i, err)
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
			t.Fatalf("negotiated %q with the backend, want h2", p)
		}
		cc, err := (&http2.Transport{}).NewClientConn(tc)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("GET", "https://"+svc.HostPort()+"/tls", nil)
		resp, err := cc.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		r := readResponse(t, resp)
		tc.Close()
		if r.Echo == nil || r.Echo.Instance != "secure-v2" || r.Echo.SNI != svc.Host || r.Echo.ALPN != "h2" {
			t.Fatalf("connection %d: %d %q, want secure-v2 with SNI %s and ALPN h2", i, r.Status, r.Body, svc.Host)
		}
	}
}

// TestTLSOriginationHTTP2 sends plain HTTP/1.1 through the forward proxy
// to an external HTTP2 service whose DestinationRule originates TLS
// (SIMPLE, with the CA and SNI): the backend sees TLS with that SNI, ALPN
// h2 and HTTP/2.
func TestTLSOriginationHTTP2(t *testing.T) {
	m := NewMesh(t)
	be := StartBackend(t, BackendTLS, "external", m.NewAddress())
	client := m.StartClient("client")
	host := "api.example.com"
	m.Apply("external.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: default}
spec:
  hosts: [%[1]s]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: http2, protocol: HTTP2, targetPort: %[2]d}
  endpoints:
  - address: %[3]s
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: external, namespace: default}
spec:
  host: %[1]s
  trafficPolicy:
    tls:
      mode: SIMPLE
      sni: %[1]s
      caCertificates: %[4]s
`, host, be.Port, strings.Split(be.Addr, ":")[0], SharedCA(t).RootFile))
	m.Sync()

	for range 3 {
		r := client.Get(t, "http://"+host+"/originate")
		if r.Status != 200 || r.Echo == nil {
			t.Fatalf("GET http://%s/originate: %d %q", host, r.Status, r.Body)
		}
		if r.Echo.SNI != host || r.Echo.ALPN != "h2" || r.Echo.Proto != "HTTP/2.0" {
			t.Errorf("backend saw SNI %q ALPN %q %s, want %s, h2, HTTP/2.0", r.Echo.SNI, r.Echo.ALPN, r.Echo.Proto, host)
		}
	}
}

// TestProtocolSniffing gives a service an unnamed port without protocol
// and an address: HTTP/1.1 and h2c in a tunnel to it are detected and
// routed as HTTP (a VirtualService's header rule applies), other bytes are
// proxied as TCP to the same workload.
func TestProtocolSniffing(t *testing.T) {
	m := NewMesh(t)
	svc := m.AddService("mixed", "data", "")
	m.AddWorkload(svc, "v1", BackendMixed)
	client := m.StartClient("client")
	vip := "240.240.7.1"
	// Give the ServiceEntry an address, so TCP to VIP:port is the service's.
	m.Apply("service-mixed.yaml", strings.Replace(svc.yaml(), "  location: MESH_INTERNAL", "  addresses: ["+vip+"]\n  location: MESH_INTERNAL", 1))
	m.Apply("mixed-vs.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mixed, namespace: default}
spec:
  hosts: [%[1]s]
  http:
  - headers:
      request:
        set: {x-sniffed: http}
    route:
    - destination: {host: %[1]s}
`, svc.Host))
	m.Sync()
	target := net.JoinHostPort(vip, fmt.Sprint(svc.Port))

	// HTTP: detected, routed by Host with the VirtualService.
	c, err := client.Dial(target)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /sniffed HTTP/1.1\r\nHost: %s\r\n\r\n", svc.HostPort())
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := readResponse(t, resp)
	if r.Echo == nil || r.Echo.Instance != "mixed-v1" || r.Echo.Header.Get("X-Sniffed") != "http" {
		t.Fatalf("HTTP on the unnamed port: %d %q, want mixed-v1 with x-sniffed: http", r.Status, r.Body)
	}

	// HTTP/2 with prior knowledge is detected too.
	req, _ := http.NewRequest("GET", "http://"+target+"/sniffed-h2", nil)
	req.Host = svc.HostPort()
	resp, err = client.H2CClient().Do(req)
	if err != nil {
		t.Fatalf("h2c on the unnamed port: %v", err)
	}
	r = readResponse(t, resp)
	if r.Echo == nil || r.Echo.Instance != "mixed-v1" || r.Echo.Header.Get("X-Sniffed") != "http" || r.Echo.URI != "/sniffed-h2" {
		t.Fatalf("h2c on the unnamed port: %d %q, want mixed-v1 with x-sniffed: http", r.Status, r.Body)
	}

	// Not HTTP: proxied as bytes.
	c2, err := client.Dial(target)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c2, "\x00\x01binary hello\n")
	br := bufio.NewReader(c2)
	inst, err := br.ReadString('\n')
	if err != nil || inst != "mixed-v1\n" {
		t.Fatalf("TCP on the unnamed port: instance line %q, %v", inst, err)
	}
	echoed, err := br.ReadString('\n')
	if err != nil || echoed != "\x00\x01binary hello\n" {
		t.Fatalf("TCP on the unnamed port: echoed %q, %v", echoed, err)
	}
}

// TestGRPCTimeoutHeader sends a gRPC request (h2c, no client-side
// deadline) with grpc-timeout: 200m to a backend that ignores the header
// and takes 2s: as in Istio, whose routes leave the gRPC timeout header
// uncapped (max_grpc_timeout 0s on outbound routes,
// max_stream_duration.grpc_timeout_header_max 0s on inbound ones), the
// proxy must end the call at about 200ms with a timeout.
func TestGRPCTimeoutHeader(t *testing.T) {
	m := NewMesh(t)
	svc := m.AddService("grpc-slow", "grpc", "GRPC")
	m.AddWorkload(svc, "v1", BackendHTTP) // h2c echo: answers after x-echo-delay whatever grpc-timeout says
	client := m.StartClientWithAccessLog("client")

	req, _ := http.NewRequest("POST", svc.URL("/grpc.testing.TestService/UnaryCall"), strings.NewReader("\x00\x00\x00\x00\x00"))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	req.Header.Set("Grpc-Timeout", "200m")
	req.Header.Set(HeaderDelay, "2s")
	start := time.Now()
	resp, err := client.H2CClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	grpcStatus := resp.Header.Get("Grpc-Status") + resp.Trailer.Get("Grpc-Status")
	e := client.WaitAccessLog(t, "/grpc.testing.TestService/UnaryCall")
	// Both sidecars time the stream by the header: the client's router
	// (max_grpc_timeout: UT, grpc-status 14) and the server's connection
	// manager (max_stream_duration: DT, grpc-status 4). Either may fire
	// first; when the server's does, the client passes its trailers-only
	// reply on unflagged. The backend ignores grpc-timeout, so an early
	// DEADLINE_EXCEEDED can only come from a proxy.
	flags := e.Str("response_flags")
	clientTimedOut := (flags == "UT" || flags == "DT") && grpcStatus != "" && grpcStatus != "0"
	serverTimedOut := flags == "-" && grpcStatus == "4"
	if took >= 2*time.Second || resp.StatusCode != 200 || !(clientTimedOut || serverTimedOut) {
		t.Errorf("grpc-timeout 200m against a 2s backend: answered after %s with HTTP %d grpc-status %q, flags %q; want a timeout near 200ms with an error status, flag UT or DT", took, resp.StatusCode, grpcStatus, flags)
	}
	t.Logf("grpc-timeout 200m: HTTP %d grpc-status %q flags %q after %s", resp.StatusCode, grpcStatus, e.Str("response_flags"), took.Round(time.Millisecond))
}
