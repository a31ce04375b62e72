package peermeta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// ALPN is the TLS application protocol under which Istio sidecars
// exchange metadata at the start of a mesh mTLS TCP connection.
const ALPN = "istio-peer-exchange"

// Istio's TCP exchange frame: a 4-byte magic and a 4-byte length, both
// big-endian, then a google.protobuf.Any holding a Struct with the
// node metadata under "x-envoy-peer-metadata" and the node id under
// "x-envoy-peer-metadata-id" (istio/proxy network metadata_exchange).
const (
	tcpMagic      = 0x3D230467
	frameHeadSize = 8
	// maxFrame bounds the metadata a peer may send.
	maxFrame = 64 << 10
)

// ErrNotExchange means the stream does not start with an exchange frame
// (the peer does not speak the protocol); the bytes read must be
// replayed.
var ErrNotExchange = errors.New("peermeta: no metadata exchange frame")

func tcpFrame(id string, md *structpb.Struct) ([]byte, error) {
	data := &structpb.Struct{Fields: map[string]*structpb.Value{
		"x-envoy-peer-metadata": structpb.NewStructValue(md),
	}}
	if id != "" {
		data.Fields["x-envoy-peer-metadata-id"] = structpb.NewStringValue(id)
	}
	value, err := proto.MarshalOptions{Deterministic: true}.Marshal(data)
	if err != nil {
		return nil, err
	}
	payload, err := proto.Marshal(&anypb.Any{TypeUrl: "type.googleapis.com/google.protobuf.Struct", Value: value})
	if err != nil {
		return nil, err
	}
	frame := make([]byte, frameHeadSize, frameHeadSize+len(payload))
	binary.BigEndian.PutUint32(frame, tcpMagic)
	binary.BigEndian.PutUint32(frame[4:], uint32(len(payload)))
	return append(frame, payload...), nil
}

// TCPFrame is this proxy's exchange frame, written at the start of a
// connection whose ALPN is ALPN.
func (x *Exchange) TCPFrame() []byte { return x.frame }

// ReadTCPFrame reads a peer's exchange frame from r. When the stream does
// not start with the magic it returns ErrNotExchange and the bytes it
// read (to be replayed); other errors are I/O errors or a malformed
// frame, with the bytes read so far. A frame whose metadata cannot be
// read gives a nil peer and no error: the stream goes on, as in Envoy.
func ReadTCPFrame(r io.Reader) (*Peer, []byte, error) {
	head := make([]byte, frameHeadSize)
	n, err := io.ReadFull(r, head)
	if n > 0 && (head[0] != byte(tcpMagic>>24) || n >= 4 && binary.BigEndian.Uint32(head) != tcpMagic) {
		return nil, head[:n], ErrNotExchange
	}
	if err != nil {
		return nil, head[:n], err
	}
	size := binary.BigEndian.Uint32(head[4:])
	if size > maxFrame {
		return nil, head, fmt.Errorf("peermeta: exchange frame of %d bytes (limit %d)", size, maxFrame)
	}
	payload := make([]byte, size)
	if n, err := io.ReadFull(r, payload); err != nil {
		return nil, append(head, payload[:n]...), err
	}
	var a anypb.Any
	var data structpb.Struct
	if proto.Unmarshal(payload, &a) != nil || proto.Unmarshal(a.GetValue(), &data) != nil {
		return nil, nil, nil
	}
	md := data.GetFields()["x-envoy-peer-metadata"].GetStructValue()
	if md == nil {
		return nil, nil, nil
	}
	p := fromStruct(md)
	return &p, nil, nil
}
