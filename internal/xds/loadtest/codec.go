package loadtest

import (
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// responseCodec is gRPC's proto codec, except that it decodes a
// state-of-the-world response's resources as views of one pooled copy of
// the message instead of one allocation each: thousands of simulated
// clients in one process spend their time on what a proxy does with a
// response, not on the decoder. The decoded response is the same, but
// its resource values are valid only until the next response is
// decoded. One codec serves one stream (its Unmarshal calls are
// sequential).
type responseCodec struct {
	proto encoding.CodecV2
	prev  *mem.Buffer // the buffer the last response's values view
}

func newResponseCodec() responseCodec {
	return responseCodec{proto: encoding.GetCodecV2("proto"), prev: new(mem.Buffer)}
}

// Name is the content subtype the codec serves: proto, like gRPC's.
func (c responseCodec) Name() string { return "proto" }

// Marshal is gRPC's proto encoding.
func (c responseCodec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

// Unmarshal decodes a response into views of a pooled buffer, anything
// else as gRPC does.
func (c responseCodec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*discovery.DiscoveryResponse)
	if !ok {
		return c.proto.Unmarshal(data, v)
	}
	if *c.prev != nil {
		(*c.prev).Free() // the previous response is processed
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	*c.prev = buf
	b := buf.ReadOnlyData()
	if decodeResponse(b, r) {
		return nil
	}
	proto.Reset(r)
	return proto.Unmarshal(b, r) // copies what it keeps
}

// decodeResponse decodes the fields of a response a client reads
// (version_info, resources, type_url, nonce), the resources' values as
// views of b. It reports false, leaving r partly set, if the encoding has
// other fields or is malformed.
func decodeResponse(b []byte, r *discovery.DiscoveryResponse) bool {
	var typeURL string // the resources' type URL, usually one for all
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return false
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch num {
		case 1:
			r.VersionInfo = string(v)
		case 2:
			a, ok := decodeAny(v, &typeURL)
			if !ok {
				return false
			}
			r.Resources = append(r.Resources, a)
		case 4:
			r.TypeUrl = string(v)
		case 5:
			r.Nonce = string(v)
		default:
			return false
		}
	}
	return true
}

// decodeAny decodes an Any whose value stays a view of b; typeURL is the
// last type URL seen, reused when equal.
func decodeAny(b []byte, typeURL *string) (*anypb.Any, bool) {
	a := &anypb.Any{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return nil, false
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		switch num {
		case 1:
			if string(v) != *typeURL {
				*typeURL = string(v)
			}
			a.TypeUrl = *typeURL
		case 2:
			a.Value = v[:len(v):len(v)]
		default:
			return nil, false
		}
	}
	return a, true
}
