package tracing

import (
	"net/http"
	"strings"
	"testing"
)

const (
	w3cTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	w3cParent = "00f067aa0ba902b7"
)

func TestParseTraceparent(t *testing.T) {
	for _, tc := range []struct {
		in      string
		ok      bool
		sampled bool
	}{
		{"00-" + w3cTrace + "-" + w3cParent + "-01", true, true},
		{"00-" + w3cTrace + "-" + w3cParent + "-00", true, false},
		{"01-" + w3cTrace + "-" + w3cParent + "-01-future", true, true},  // later versions may append fields
		{"00-" + w3cTrace + "-" + w3cParent + "-01-extra", false, false}, // version 00 is exactly 55 chars
		{"ff-" + w3cTrace + "-" + w3cParent + "-01", false, false},
		{"00-" + strings.ToUpper(w3cTrace) + "-" + w3cParent + "-01", false, false},
		{"00-00000000000000000000000000000000-" + w3cParent + "-01", false, false},
		{"00-" + w3cTrace + "-0000000000000000-01", false, false},
		{"00-" + w3cTrace + "-" + w3cParent + "-0g", false, false},
		{"garbage", false, false},
		{"", false, false},
	} {
		tid, sid, sampled, ok := ParseTraceparent(tc.in)
		if ok != tc.ok || sampled != tc.sampled {
			t.Errorf("ParseTraceparent(%q) = sampled %v ok %v, want %v %v", tc.in, sampled, ok, tc.sampled, tc.ok)
		}
		if ok && (tid.String() != w3cTrace || sid.String() != w3cParent) {
			t.Errorf("ParseTraceparent(%q) ids = %s %s", tc.in, tid, sid)
		}
	}
}

func TestExtractB3(t *testing.T) {
	h := http.Header{}
	h.Set(HeaderB3TraceID, "463ac35c9f6413ad")
	h.Set(HeaderB3SpanID, "a2fb4a1d1a96d312")
	h.Set(HeaderB3Sampled, "1")
	in := Extract(h)
	if !in.HasIDs || !in.ShortB3 || in.TraceID.String() != "0000000000000000463ac35c9f6413ad" || in.SpanID.String() != "a2fb4a1d1a96d312" || !in.Sampled || !in.Decided || in.Formats != FormatB3Multi {
		t.Fatalf("multi: %+v", in)
	}
	h = http.Header{}
	h.Set(HeaderB3Single, "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d-05e3ac9a4f6e3b90")
	in = Extract(h)
	if !in.HasIDs || in.ShortB3 || in.TraceID.String() != "80f198ee56343ba864fe8b2a57d3eff7" || !in.Debug || !in.Sampled || in.Formats != FormatB3Single {
		t.Fatalf("single: %+v", in)
	}
	h = http.Header{}
	h.Set(HeaderB3Single, "0")
	in = Extract(h)
	if in.HasIDs || !in.Decided || in.Sampled {
		t.Fatalf("b3: 0: %+v", in)
	}
	for _, bad := range []string{"x-y", "463ac35c9f6413ad-short", "463ac35c9f6413ad-a2fb4a1d1a96d312-2", "-", "1-2-3-4-5"} {
		h = http.Header{}
		h.Set(HeaderB3Single, bad)
		if in := Extract(h); in.HasIDs || in.Formats != 0 {
			t.Errorf("b3 %q accepted: %+v", bad, in)
		}
	}
}

func TestInjectChild(t *testing.T) {
	h := http.Header{}
	h.Set(HeaderTraceparent, "00-"+w3cTrace+"-"+w3cParent+"-01")
	h.Set(HeaderTracestate, "congo=t61rcWkgMzE")
	in := Extract(h)
	out := Child(in, func() bool { t.Fatal("sampling consulted for a decided trace"); return false })
	Inject(h, out, in.Formats, in.ShortB3)
	tid, sid, sampled, ok := ParseTraceparent(h.Get(HeaderTraceparent))
	if !ok || tid.String() != w3cTrace || sid == in.SpanID || sid != out.SpanID || !sampled {
		t.Fatalf("traceparent out = %q", h.Get(HeaderTraceparent))
	}
	if out.Parent.String() != w3cParent || h.Get(HeaderTracestate) != "congo=t61rcWkgMzE" {
		t.Fatalf("parent %s tracestate %q", out.Parent, h.Get(HeaderTracestate))
	}
	if h.Get(HeaderB3TraceID) != "" {
		t.Fatal("B3 written for a W3C-only request")
	}

	// A new trace is written in both formats.
	h = http.Header{}
	in = Extract(h)
	out = Child(in, func() bool { return false })
	Inject(h, out, in.Formats, in.ShortB3)
	if _, _, sampled, ok := ParseTraceparent(h.Get(HeaderTraceparent)); !ok || sampled {
		t.Fatalf("new trace traceparent %q", h.Get(HeaderTraceparent))
	}
	if h.Get(HeaderB3TraceID) != out.TraceID.String() || h.Get(HeaderB3Sampled) != "0" || h.Get(HeaderB3ParentSpan) != "" {
		t.Fatalf("new trace b3: %v", h)
	}

	// 64-bit B3 stays 64-bit.
	h = http.Header{}
	h.Set(HeaderB3TraceID, "463ac35c9f6413ad")
	h.Set(HeaderB3SpanID, "a2fb4a1d1a96d312")
	in = Extract(h)
	out = Child(in, func() bool { return true })
	Inject(h, out, in.Formats, in.ShortB3)
	if h.Get(HeaderB3TraceID) != "463ac35c9f6413ad" || h.Get(HeaderB3ParentSpan) != "a2fb4a1d1a96d312" || h.Get(HeaderB3Sampled) != "1" || h.Get(HeaderTraceparent) != "" {
		t.Fatalf("b3 child: %v", h)
	}
}

// FuzzExtract checks that no header value panics the parser and that an
// accepted context survives a round trip through Inject.
func FuzzExtract(f *testing.F) {
	f.Add("00-"+w3cTrace+"-"+w3cParent+"-01", "463ac35c9f6413ad", "a2fb4a1d1a96d312", "1", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d-05e3ac9a4f6e3b90")
	f.Add("garbage", "", "zz", "true", "d")
	f.Fuzz(func(t *testing.T, tp, b3t, b3s, sampled, single string) {
		h := http.Header{}
		h[HeaderTraceparent] = []string{tp}
		h[HeaderB3TraceID] = []string{b3t}
		h[HeaderB3SpanID] = []string{b3s}
		h[HeaderB3Sampled] = []string{sampled}
		h[HeaderB3Single] = []string{single}
		in := Extract(h)
		out := Child(in, func() bool { return true })
		if in.HasIDs && (out.TraceID != in.TraceID || out.Parent != in.SpanID) {
			t.Fatalf("child of %+v is %+v", in, out)
		}
		if out.TraceID.IsZero() || out.SpanID.IsZero() {
			t.Fatalf("zero ids: %+v", out)
		}
		Inject(h, out, in.Formats, in.ShortB3)
		again := Extract(h)
		if !again.HasIDs || again.TraceID != out.TraceID || again.SpanID != out.SpanID || again.Sampled != out.Sampled {
			t.Fatalf("round trip: in %+v out %+v again %+v (%v)", in, out, again, h)
		}
	})
}
