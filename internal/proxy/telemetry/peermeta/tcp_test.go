package peermeta

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// envoyFrame builds an exchange frame as istio/proxy's network filter
// writes it, independently of tcpFrame.
func envoyFrame(t *testing.T, md map[string]any) []byte {
	t.Helper()
	data := mustStruct(t, map[string]any{"x-envoy-peer-metadata": md, "x-envoy-peer-metadata-id": "sidecar~10.0.0.9~a.ns~ns.svc.cluster.local"})
	value, err := proto.MarshalOptions{Deterministic: true}.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := proto.Marshal(&anypb.Any{TypeUrl: "type.googleapis.com/google.protobuf.Struct", Value: value})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, uint32(0x3D230467))
	binary.Write(&b, binary.BigEndian, uint32(len(payload)))
	b.Write(payload)
	return b.Bytes()
}

// TestReadEnvoyTCPFrame: a frame written by Istio's Envoy is read to its
// end (what follows is application data) and gives the peer's labels.
func TestReadEnvoyTCPFrame(t *testing.T) {
	frame := envoyFrame(t, map[string]any{"NAMESPACE": "bookinfo", "WORKLOAD_NAME": "ratings-v1", "CLUSTER_ID": "Kubernetes",
		"LABELS": map[string]any{"app": "ratings", "version": "v1"}})
	r := bytes.NewReader(append(frame, "app data"...))
	p, rest, err := ReadTCPFrame(r)
	if err != nil || rest != nil {
		t.Fatalf("ReadTCPFrame: %v, rest %q", err, rest)
	}
	want := Peer{Namespace: "bookinfo", Workload: "ratings-v1", Cluster: "Kubernetes", App: "ratings", Version: "v1",
		CanonicalService: "ratings", CanonicalRevision: "v1"}
	if p == nil || *p != want {
		t.Errorf("peer %+v, want %+v", p, want)
	}
	if after, _ := io.ReadAll(r); string(after) != "app data" {
		t.Errorf("after the frame: %q", after)
	}
}

// TestTCPFrameRoundTrip: our frame reads back, and has Envoy's layout.
func TestTCPFrameRoundTrip(t *testing.T) {
	x, err := New("sidecar~client", NodeMetadata(mustStruct(t, map[string]any{"NAMESPACE": "default", "WORKLOAD_NAME": "client"}), "Kubernetes"))
	if err != nil {
		t.Fatal(err)
	}
	f := x.TCPFrame()
	if binary.BigEndian.Uint32(f) != 0x3D230467 || int(binary.BigEndian.Uint32(f[4:])) != len(f)-8 {
		t.Fatalf("frame head % x", f[:8])
	}
	p, _, err := ReadTCPFrame(bytes.NewReader(f))
	if err != nil || p == nil || p.Workload != "client" || p.Namespace != "default" || p.Cluster != "Kubernetes" {
		t.Errorf("round trip: %+v, %v", p, err)
	}
}

// TestReadTCPFrameNotExchange: a stream that is not the protocol gives
// ErrNotExchange and the bytes read; an oversized frame is refused.
func TestReadTCPFrameNotExchange(t *testing.T) {
	for _, in := range []string{"GET / HTTP/1.1\r\n", "\x3D\x23\x04\x00rest", "ab"} {
		_, rest, err := ReadTCPFrame(bytes.NewReader([]byte(in)))
		if !errors.Is(err, ErrNotExchange) || !bytes.HasPrefix([]byte(in), rest) || len(rest) == 0 {
			t.Errorf("%q: %v, rest %q", in, err, rest)
		}
	}
	huge := []byte{0x3D, 0x23, 0x04, 0x67, 0x7f, 0, 0, 0}
	if _, _, err := ReadTCPFrame(bytes.NewReader(huge)); err == nil || errors.Is(err, ErrNotExchange) {
		t.Errorf("oversized frame: %v", err)
	}
	// A frame whose payload is not metadata: no peer, no error.
	bad := []byte{0x3D, 0x23, 0x04, 0x67, 0, 0, 0, 2, 0xff, 0xff}
	if p, rest, err := ReadTCPFrame(bytes.NewReader(bad)); p != nil || rest != nil || err != nil {
		t.Errorf("bad payload: %+v %q %v", p, rest, err)
	}
}
