package tracing

import (
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"strings"
)

// Header names of the propagation formats weft-proxy reads and writes.
const (
	HeaderTraceparent  = "Traceparent"
	HeaderTracestate   = "Tracestate"
	HeaderB3TraceID    = "X-B3-Traceid"
	HeaderB3SpanID     = "X-B3-Spanid"
	HeaderB3ParentSpan = "X-B3-Parentspanid"
	HeaderB3Sampled    = "X-B3-Sampled"
	HeaderB3Flags      = "X-B3-Flags"
	HeaderB3Single     = "B3"
	HeaderRequestID    = "X-Request-Id"
)

// TraceID is a 128-bit trace id.
type TraceID [16]byte

// SpanID is a 64-bit span id.
type SpanID [8]byte

// IsZero reports whether id is all zeros (invalid in every format).
func (id TraceID) IsZero() bool { return id == TraceID{} }

// IsZero reports whether id is all zeros.
func (id SpanID) IsZero() bool { return id == SpanID{} }

// String is the lowercase hex form.
func (id TraceID) String() string { return hex.EncodeToString(id[:]) }

// String is the lowercase hex form.
func (id SpanID) String() string { return hex.EncodeToString(id[:]) }

// Format is a set of propagation formats.
type Format uint8

// Propagation formats.
const (
	FormatW3C Format = 1 << iota
	FormatB3Multi
	FormatB3Single
)

// Incoming is the trace context a request arrived with.
type Incoming struct {
	// TraceID and SpanID are the caller's; valid when HasIDs.
	TraceID TraceID
	SpanID  SpanID
	HasIDs  bool
	// Sampled is the caller's decision, meaningful when Decided.
	Sampled bool
	Decided bool
	// Debug is B3's debug flag (forces sampling).
	Debug bool
	// Formats are the formats present (and valid) in the request.
	Formats Format
	// ShortB3 records a 64-bit B3 trace id, written back in that form.
	ShortB3 bool
}

// Extract reads the trace context of h: W3C traceparent first, then B3
// multi-header, then B3 single. Malformed headers are ignored.
func Extract(h http.Header) Incoming {
	var in Incoming
	if v := h.Get(HeaderTraceparent); v != "" {
		if tid, sid, sampled, ok := ParseTraceparent(v); ok {
			in = Incoming{TraceID: tid, SpanID: sid, HasIDs: true, Sampled: sampled, Decided: true, Formats: FormatW3C}
		}
	}
	if m, ok := parseB3Multi(h); ok {
		in.Formats |= FormatB3Multi
		in = merge(in, m)
	}
	if v := h.Get(HeaderB3Single); v != "" {
		if s, ok := ParseB3Single(v); ok {
			in.Formats |= FormatB3Single
			in = merge(in, s)
		}
	}
	return in
}

// merge fills what in lacks from b3 (W3C wins when both carry ids).
func merge(in, b3 Incoming) Incoming {
	if !in.HasIDs && b3.HasIDs {
		in.TraceID, in.SpanID, in.HasIDs, in.ShortB3 = b3.TraceID, b3.SpanID, true, b3.ShortB3
	}
	if !in.Decided && b3.Decided {
		in.Sampled, in.Decided = b3.Sampled, true
	}
	if b3.Debug {
		in.Debug, in.Sampled, in.Decided = true, true, true
	}
	return in
}

// ParseTraceparent parses a W3C traceparent header
// ("00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>").
func ParseTraceparent(v string) (TraceID, SpanID, bool, bool) {
	var tid TraceID
	var sid SpanID
	v = strings.TrimSpace(v)
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return tid, sid, false, false
	}
	ver, ok := hexByte(v[0:2])
	if !ok || ver == 0xff || ver == 0 && len(v) != 55 || ver != 0 && len(v) > 55 && v[55] != '-' {
		return tid, sid, false, false
	}
	if !decodeLowerHex(tid[:], v[3:35]) || !decodeLowerHex(sid[:], v[36:52]) || tid.IsZero() || sid.IsZero() {
		return tid, sid, false, false
	}
	flags, ok := hexByte(v[53:55])
	if !ok {
		return tid, sid, false, false
	}
	return tid, sid, flags&1 == 1, true
}

// ParseB3Single parses the single "b3" header: "0", "1", "d", or
// "<trace id>-<span id>[-<sampling>[-<parent span id>]]".
func ParseB3Single(v string) (Incoming, bool) {
	v = strings.TrimSpace(v)
	switch v {
	case "0", "1", "d":
		return Incoming{Decided: true, Sampled: v != "0", Debug: v == "d"}, true
	}
	parts := strings.Split(v, "-")
	if len(parts) < 2 || len(parts) > 4 {
		return Incoming{}, false
	}
	in, ok := b3IDs(parts[0], parts[1])
	if !ok {
		return Incoming{}, false
	}
	if len(parts) >= 3 {
		switch parts[2] {
		case "0", "1", "d":
			in.Decided, in.Sampled, in.Debug = true, parts[2] != "0", parts[2] == "d"
		default:
			return Incoming{}, false
		}
	}
	if len(parts) == 4 {
		var p SpanID
		if len(parts[3]) != 16 || !decodeLowerHex(p[:], parts[3]) {
			return Incoming{}, false
		}
	}
	return in, true
}

func parseB3Multi(h http.Header) (Incoming, bool) {
	var in Incoming
	found := false
	if t, s := h.Get(HeaderB3TraceID), h.Get(HeaderB3SpanID); t != "" || s != "" {
		ids, ok := b3IDs(strings.ToLower(t), strings.ToLower(s))
		if !ok {
			return Incoming{}, false
		}
		in, found = ids, true
	}
	switch strings.ToLower(h.Get(HeaderB3Sampled)) {
	case "1", "true":
		in.Decided, in.Sampled, found = true, true, true
	case "0", "false":
		in.Decided, in.Sampled, found = true, false, true
	}
	if h.Get(HeaderB3Flags) == "1" {
		in.Debug, in.Decided, in.Sampled, found = true, true, true, true
	}
	return in, found
}

func b3IDs(t, s string) (Incoming, bool) {
	var in Incoming
	switch len(t) {
	case 32:
		if !decodeLowerHex(in.TraceID[:], t) {
			return in, false
		}
	case 16:
		if !decodeLowerHex(in.TraceID[8:], t) {
			return in, false
		}
		in.ShortB3 = true
	default:
		return in, false
	}
	if len(s) != 16 || !decodeLowerHex(in.SpanID[:], s) || in.TraceID.IsZero() || in.SpanID.IsZero() {
		return Incoming{}, false
	}
	in.HasIDs = true
	return in, true
}

// Outgoing is the context forwarded upstream: this proxy's span.
type Outgoing struct {
	TraceID TraceID
	SpanID  SpanID
	// Parent is the caller's span id (zero for a new trace).
	Parent  SpanID
	Sampled bool
	Debug   bool
}

// Child derives this proxy's span from in; decide is consulted when the
// caller made no sampling decision.
func Child(in Incoming, decide func() bool) Outgoing {
	out := Outgoing{SpanID: newSpanID(), Sampled: in.Sampled, Debug: in.Debug}
	if in.HasIDs {
		out.TraceID, out.Parent = in.TraceID, in.SpanID
	} else {
		out.TraceID = newTraceID()
	}
	if !in.Decided {
		out.Sampled = decide()
	}
	return out
}

// Inject writes out into h in the formats given (W3C and B3 multi when
// none), replacing what the request carried. tracestate is kept as is.
func Inject(h http.Header, out Outgoing, formats Format, shortB3 bool) {
	if formats == 0 {
		formats = FormatW3C | FormatB3Multi
	}
	sampled := "0"
	if out.Sampled {
		sampled = "1"
	}
	if formats&FormatW3C != 0 {
		flags := "00"
		if out.Sampled {
			flags = "01"
		}
		h.Set(HeaderTraceparent, "00-"+out.TraceID.String()+"-"+out.SpanID.String()+"-"+flags)
	}
	tid := out.TraceID.String()
	if shortB3 {
		tid = tid[16:]
	}
	if formats&FormatB3Multi != 0 {
		h.Set(HeaderB3TraceID, tid)
		h.Set(HeaderB3SpanID, out.SpanID.String())
		if out.Parent.IsZero() {
			h.Del(HeaderB3ParentSpan)
		} else {
			h.Set(HeaderB3ParentSpan, out.Parent.String())
		}
		h.Set(HeaderB3Sampled, sampled)
		if out.Debug {
			h.Set(HeaderB3Flags, "1")
		}
	}
	if formats&FormatB3Single != 0 {
		if out.Debug {
			sampled = "d"
		}
		v := tid + "-" + out.SpanID.String() + "-" + sampled
		if !out.Parent.IsZero() {
			v += "-" + out.Parent.String()
		}
		h.Set(HeaderB3Single, v)
	}
}

func newTraceID() TraceID {
	var id TraceID
	for id.IsZero() {
		putUint64(id[:8], rand.Uint64())
		putUint64(id[8:], rand.Uint64())
	}
	return id
}

func newSpanID() SpanID {
	var id SpanID
	for id.IsZero() {
		putUint64(id[:], rand.Uint64())
	}
	return id
}

func putUint64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (56 - 8*i))
	}
}

// decodeLowerHex decodes s into dst, accepting lowercase hex only (W3C).
func decodeLowerHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := nibble(s[2*i])
		lo, ok2 := nibble(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func hexByte(s string) (byte, bool) {
	var b [1]byte
	ok := decodeLowerHex(b[:], s)
	return b[0], ok
}

func nibble(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
