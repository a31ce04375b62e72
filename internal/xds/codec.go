package xds

import (
	"sync"
	"unicode/utf8"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
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
//   - A response (state of the world or delta) that carries the shared
//     encoding of all of a type's resources (see typeResources.wire and
//     deltaWire) is written from that encoding, without copying it: a push to N proxies of one
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

// Marshal encodes v; a response carrying a shared encoding is written
// from it.
func (c wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	var shared []byte
	switch r := v.(type) {
	case *discovery.DiscoveryResponse:
		shared = r.ProtoReflect().GetUnknown()
	case *discovery.DeltaDiscoveryResponse:
		shared = r.ProtoReflect().GetUnknown()
	}
	if len(shared) == 0 {
		return c.proto.Marshal(v)
	}
	head, err := proto.Marshal(withoutUnknown(v.(proto.Message)))
	if err != nil {
		return nil, err
	}
	// Field order does not matter in the encoding: the shared resources
	// follow the response's other fields. SliceBuffer's Free does
	// nothing, so gRPC never recycles the shared bytes.
	return mem.BufferSlice{mem.SliceBuffer(head), mem.SliceBuffer(shared)}, nil
}

// Unmarshal decodes data into v, interning the resource names of
// discovery requests. A state-of-the-world request's names are read
// straight from the encoding: a name seen before costs no allocation.
func (c wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*discovery.DiscoveryRequest); ok {
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		defer buf.Free()
		if c.decodeRequest(buf.ReadOnlyData(), r) {
			return nil
		}
		proto.Reset(r)
		if err := proto.Unmarshal(buf.ReadOnlyData(), r); err != nil {
			return err
		}
		c.names.intern(r.ResourceNames)
		return nil
	}
	if err := c.proto.Unmarshal(data, v); err != nil {
		return err
	}
	if r, ok := v.(*discovery.DeltaDiscoveryRequest); ok {
		c.names.intern(r.ResourceNamesSubscribe)
		c.names.intern(r.ResourceNamesUnsubscribe)
	}
	return nil
}

// decodeRequest decodes the usual fields of a state-of-the-world request
// (version_info, node, resource_names, type_url, response_nonce,
// error_detail), the names through the name table. It reports false,
// leaving r partly set, for any other field or a malformed encoding;
// the caller then decodes it the usual way.
func (c wireCodec) decodeRequest(b []byte, r *discovery.DiscoveryRequest) bool {
	if names := countField(b, 3); names > 0 {
		r.ResourceNames = make([]string, 0, names)
	}
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
		case 1, 4, 5:
			if !utf8.Valid(v) {
				return false
			}
			s := string(v)
			switch num {
			case 1:
				r.VersionInfo = s
			case 4:
				r.TypeUrl = s
			case 5:
				r.ResponseNonce = s
			}
		case 3:
			name, ok := c.names.lookup(v)
			if !ok {
				return false
			}
			r.ResourceNames = append(r.ResourceNames, name)
		case 2:
			r.Node = &core.Node{}
			if err := proto.Unmarshal(v, r.Node); err != nil {
				return false
			}
		case 6:
			r.ErrorDetail = &status.Status{}
			if err := proto.Unmarshal(v, r.ErrorDetail); err != nil {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// countField counts the occurrences of field num in an encoded message
// whose fields are all length-delimited; 0 if it finds another kind.
func countField(b []byte, num protowire.Number) int {
	n := 0
	for len(b) > 0 {
		fn, typ, l := protowire.ConsumeTag(b)
		if l < 0 || typ != protowire.BytesType {
			return 0
		}
		b = b[l:]
		l = protowire.ConsumeFieldValue(fn, typ, b)
		if l < 0 {
			return 0
		}
		b = b[l:]
		if fn == num {
			n++
		}
	}
	return n
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

// lookup returns the interned name spelled b, interning it if it is new
// and valid UTF-8; ok is false for invalid UTF-8.
func (t *nameTable) lookup(b []byte) (name string, ok bool) {
	t.mu.RLock()
	s, found := t.m[string(b)] // no allocation for the lookup
	t.mu.RUnlock()
	if found {
		return s, true
	}
	if !utf8.Valid(b) {
		return "", false
	}
	s = string(b)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil || len(t.m) >= nameTableLimit {
		t.m = map[string]string{}
	}
	if old, ok := t.m[s]; ok {
		return old, true
	}
	t.m[s] = s
	return s, true
}

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

// deltaWire returns the encoding of all the type's resources as the
// resources field (2) of a DeltaDiscoveryResponse, built on first use and
// shared by every delta response that carries them all.
func (t *typeResources) deltaWire() []byte {
	t.deltaWireOnce.Do(func() {
		var b []byte
		opts := proto.MarshalOptions{Deterministic: true}
		for _, r := range t.deltaResources() {
			b = protowire.AppendTag(b, 2, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(opts.Size(r)))
			b, _ = opts.MarshalAppend(b, r) // a Resource of a name, a version and an Any cannot fail
		}
		t.deltaWireBytes = b
	})
	return t.deltaWireBytes
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

// deltaResponseResources returns the resources of a delta response the
// cache built: its Resources, or those its shared encoding carries.
func deltaResponseResources(r *discovery.DeltaDiscoveryResponse) []*discovery.Resource {
	shared := r.ProtoReflect().GetUnknown()
	if len(shared) == 0 {
		return r.GetResources()
	}
	out := append([]*discovery.Resource(nil), r.GetResources()...)
	var only discovery.DeltaDiscoveryResponse
	if err := proto.Unmarshal(shared, &only); err == nil {
		out = append(out, only.GetResources()...)
	}
	return out
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
