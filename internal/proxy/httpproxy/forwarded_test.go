package httpproxy

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestLastXFF(t *testing.T) {
	for _, tc := range []struct {
		xff    []string
		skip   int
		want   string
		single bool
	}{
		{nil, 0, "", false},
		{[]string{"10.0.0.1"}, 0, "10.0.0.1", true},
		{[]string{" 10.0.0.1 "}, 0, "10.0.0.1", true},
		{[]string{"1.1.1.1, 10.0.0.1"}, 0, "10.0.0.1", false},
		{[]string{"1.1.1.1, 10.0.0.1"}, 1, "1.1.1.1", false},
		{[]string{"1.1.1.1, 10.0.0.1"}, 2, "", false},
		{[]string{"1.1.1.1", "10.0.0.1"}, 1, "1.1.1.1", false}, // two header lines
		{[]string{"garbage"}, 0, "", false},
		{[]string{"2001:db8::1"}, 0, "2001:db8::1", true},
	} {
		h := http.Header{}
		if tc.xff != nil {
			h["X-Forwarded-For"] = tc.xff
		}
		a, single := lastXFF(h, tc.skip)
		got := ""
		if a.IsValid() {
			got = a.String()
		}
		if got != tc.want || single != tc.single {
			t.Errorf("XFF %q skip %d: %q %v, want %q %v", tc.xff, tc.skip, got, single, tc.want, tc.single)
		}
	}
}

func TestForwardingInternalRanges(t *testing.T) {
	def := Forwarding{}
	for _, a := range []string{"10.1.2.3", "172.20.0.1", "192.168.1.1", "127.0.0.1", "fd00::1", "::1", "::ffff:10.0.0.1"} {
		if !def.isInternal(netip.MustParseAddr(a)) {
			t.Errorf("%s not internal by default", a)
		}
	}
	for _, a := range []string{"203.0.113.1", "172.32.0.1", "2001:db8::1"} {
		if def.isInternal(netip.MustParseAddr(a)) {
			t.Errorf("%s internal by default", a)
		}
	}
	none := Forwarding{Internal: []netip.Prefix{}}
	if none.isInternal(netip.MustParseAddr("10.0.0.1")) {
		t.Error("an empty internal_address_config still treats 10/8 as internal")
	}
}

// BenchmarkForwardingDefault is the per-request cost of the default
// (sidecar) XFF handling on a request without X-Forwarded-For.
func BenchmarkForwardingDefault(b *testing.B) {
	f := Forwarding{}
	ci := &ConnInfo{RemoteAddr: "10.0.0.1:5555", LocalAddr: "10.0.0.2:9080"}
	r, _ := http.NewRequest("GET", "http://reviews:9080/", nil)
	r.Header.Set("User-Agent", "bench")
	r.Header.Set("Accept", "*/*")
	b.ReportAllocs()
	for b.Loop() {
		f.apply(r, ci)
	}
}

// BenchmarkForwardingEdge is the gateway case: use_remote_address with
// an XFF to append to.
func BenchmarkForwardingEdge(b *testing.B) {
	f := Forwarding{UseRemoteAddress: true}
	ci := &ConnInfo{RemoteAddr: "203.0.113.9:5555", LocalAddr: "10.0.0.2:8080"}
	r, _ := http.NewRequest("GET", "http://shop/", nil)
	b.ReportAllocs()
	for b.Loop() {
		r.Header["X-Forwarded-For"] = []string{"198.51.100.7"}
		f.apply(r, ci)
	}
}
