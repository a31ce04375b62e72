package backend

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestBackend(t *testing.T) {
	s, err := Start(Config{HTTP: "127.0.0.1:0", GRPC: "127.0.0.1:0", TCPEcho: "127.0.0.1:0", TCPSink: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()

	// HTTP/1.1 and h2c on the same port.
	for _, h2 := range []bool{false, true} {
		var p http.Protocols
		if h2 {
			p.SetUnencryptedHTTP2(true)
		} else {
			p.SetHTTP1(true)
		}
		c := &http.Client{Transport: &http.Transport{Protocols: &p}}
		resp, err := c.Get("http://" + s.Addr("http") + "/x")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(body) != ResponseSize || resp.ProtoMajor != map[bool]int{false: 1, true: 2}[h2] {
			t.Errorf("h2=%v: proto %s, %d bytes", h2, resp.Proto, len(body))
		}
	}

	conn, err := grpc.NewClient(s.Addr("grpc"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hr, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("grpc health: %v %v", hr, err)
	}

	ec, err := net.Dial("tcp", s.Addr("tcp-echo"))
	if err != nil {
		t.Fatal(err)
	}
	ec.Write([]byte("ping"))
	buf := make([]byte, 4)
	ec.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(ec, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo: %q %v", buf, err)
	}
	ec.Close()

	res, err := TCPLoad(context.Background(), s.Addr("tcp-sink"), 2, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.Bytes < 1<<20 || res.Seconds < 0.2 || res.MBps() <= 0 {
		t.Fatalf("tcp load: %+v", res)
	}
}
