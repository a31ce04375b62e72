package xds

import (
	"sync"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// wireCodec is gRPC's proto codec with two shortcuts for xDS, installed on
// the xDS server only (grpc.ForceServerCodecV2):
//
//   - A state-of-the-world response that carries the shared encoding of
//     all of a type's resources (see typeResources.wire) is written from
//     that encoding, without copying it: a push to N proxies of one
//     configuration holds the resources once, not once per proxy waiting
//     in gRPC's send buffers.
//   - Resource names in requests are interned: a sidecar's EDS request
//     names every cluster, and go-control-plane keeps the names of each
//     stream's subscription; thousands of proxies asking for the same
//     clusters then share the strings.
//
// Every other message goes through gRPC's proto codec. The bytes on the
// wire are a valid encoding of the same message either way.
type wireCodec struct {
	proto encoding.CodecV2
	names *nameTable
}

func newWireCodec() wireCodec {
	return wireCodec{proto: encoding.GetCodecV2("proto"), names: &nameTable{}}
}

// Name is the content subtype the codec serves: proto, like gRPC's.
func (c wireCodec) Name() string { return "proto" }

// Marshal encodes v.
func (c wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*discovery.DiscoveryResponse); ok {
		if shared := r.ProtoReflect().GetUnknown(); len(shared) > 0 {
			head, err := proto.Marshal(withoutUnknown(r))
			if err != nil {
				return nil, err
			}
			// Field order does not matter in the encoding: the shared
			// resources follow the response's other fields. SliceBuffer's
			// Free does nothing, so gRPC never recycles the shared bytes.
			return mem.BufferSlice{mem.SliceBuffer(head), mem.SliceBuffer(shared)}, nil
		}
	}
	return c.proto.Marshal(v)
}

// Unmarshal decodes data into v, interning the resource names of
// discovery requests.
func (c wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if err := c.proto.Unmarshal(data, v); err != nil {
		return err
	}
	switch r := v.(type) {
	case *discovery.DiscoveryRequest:
		c.names.intern(r.ResourceNames)
	case *discovery.DeltaDiscoveryRequest:
		c.names.intern(r.ResourceNamesSubscribe)
		c.names.intern(r.ResourceNamesUnsubscribe)
	}
	return nil
}

// withoutUnknown returns a shallow copy of m without its unknown fields.
func withoutUnknown(m proto.Message) proto.Message {
	src := m.ProtoReflect()
	dst := src.New()
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		dst.Set(fd, v)
		return true
	})
	return dst.Interface()
}

// nameTable interns resource names. It forgets everything when it
// reaches nameTableLimit names, so names of resources long gone do not
// accumulate.
type nameTable struct {
	mu sync.RWMutex
	m  map[string]string
}

const nameTableLimit = 1 << 18

func (t *nameTable) intern(names []string) {
	if len(names) == 0 {
		return
	}
	t.mu.RLock()
	missing := false
	for i, n := range names {
		if s, ok := t.m[n]; ok {
			names[i] = s
		} else {
			missing = true
		}
	}
	t.mu.RUnlock()
	if !missing {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil || len(t.m)+len(names) > nameTableLimit {
		t.m = make(map[string]string, len(names))
	}
	for i, n := range names {
		if s, ok := t.m[n]; ok {
			names[i] = s
		} else {
			t.m[n] = n
		}
	}
}

// wire returns the encoding of all the type's resources as the resources
// field (2) of a DiscoveryResponse, built on first use and shared by
// every response that carries them all.
func (t *typeResources) wire() []byte {
	t.wireOnce.Do(func() {
		size := 0
		for _, a := range t.anys {
			n := anySize(a)
			size += protowire.SizeTag(2) + protowire.SizeBytes(n)
		}
		b := make([]byte, 0, size)
		for _, a := range t.anys {
			b = protowire.AppendTag(b, 2, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(anySize(a)))
			if a.GetTypeUrl() != "" {
				b = protowire.AppendTag(b, 1, protowire.BytesType)
				b = protowire.AppendString(b, a.GetTypeUrl())
			}
			if len(a.GetValue()) > 0 {
				b = protowire.AppendTag(b, 2, protowire.BytesType)
				b = protowire.AppendBytes(b, a.GetValue())
			}
		}
		t.wireBytes = b
	})
	return t.wireBytes
}

// anySize is the encoded size of an Any (proto3: empty fields are left
// out).
func anySize(a *anypb.Any) int {
	n := 0
	if a.GetTypeUrl() != "" {
		n += protowire.SizeTag(1) + protowire.SizeBytes(len(a.GetTypeUrl()))
	}
	if len(a.GetValue()) > 0 {
		n += protowire.SizeTag(2) + protowire.SizeBytes(len(a.GetValue()))
	}
	return n
}

// responseResources returns the resources of a response the cache built:
// its Resources, or those its shared encoding carries.
func responseResources(r *discovery.DiscoveryResponse) []*anypb.Any {
	shared := r.ProtoReflect().GetUnknown()
	if len(shared) == 0 {
		return r.GetResources()
	}
	out := append([]*anypb.Any(nil), r.GetResources()...)
	var only discovery.DiscoveryResponse
	if err := proto.Unmarshal(shared, &only); err == nil {
		out = append(out, only.GetResources()...)
	}
	return out
}
