package spiffe

import (
	"net/url"
	"testing"
)

func TestParseRoundTrip(t *testing.T) {
	for _, s := range []string{
		"spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
		"spiffe://example.org/ns/istio-system/sa/istiod",
		"spiffe://td_1.example-2/ns/a.b/sa/C_d",
	} {
		id, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		if id.String() != s || id.URL().String() != s {
			t.Errorf("round trip of %q gave %q / %q", s, id.String(), id.URL())
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, s := range []string{
		"",
		"https://cluster.local/ns/default/sa/x",
		"spiffe://cluster.local",
		"spiffe://cluster.local/ns/default",
		"spiffe://cluster.local/ns/default/sa/",
		"spiffe://cluster.local/ns//sa/x",
		"spiffe://cluster.local/ns/default/sa/x/y",
		"spiffe://cluster.local/sa/x/ns/default",
		"spiffe://Cluster.Local/ns/default/sa/x",
		"spiffe://cluster.local:443/ns/default/sa/x",
		"spiffe://user@cluster.local/ns/default/sa/x",
		"spiffe://cluster.local/ns/default/sa/x?q=1",
		"spiffe://cluster.local/ns/default/sa/x#f",
		"spiffe://cluster.local/ns/de%2Ffault/sa/x",
		"spiffe://cluster.local/ns/../sa/x",
		"spiffe:///ns/default/sa/x",
	} {
		if id, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) = %v, want error", s, id)
		}
	}
}

func TestFromURIs(t *testing.T) {
	a, _ := url.Parse("spiffe://cluster.local/ns/default/sa/a")
	b, _ := url.Parse("spiffe://cluster.local/ns/default/sa/b")
	if _, err := FromURIs(nil); err == nil {
		t.Error("no URIs accepted")
	}
	if _, err := FromURIs([]*url.URL{a, b}); err == nil {
		t.Error("two URIs accepted")
	}
	id, err := FromURIs([]*url.URL{a})
	if err != nil || id != (ID{"cluster.local", "default", "a"}) {
		t.Errorf("FromURIs = %v, %v", id, err)
	}
}

// FuzzParse: whatever Parse accepts is valid and formats back to itself.
func FuzzParse(f *testing.F) {
	f.Add("spiffe://cluster.local/ns/default/sa/reviews")
	f.Add("spiffe://cluster.local/ns/default/sa/")
	f.Add("spiffe://a/ns/b/sa/c/d")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Parse(s)
		if err != nil {
			return
		}
		if err := id.Validate(); err != nil {
			t.Fatalf("Parse(%q) accepted an invalid ID: %v", s, err)
		}
		if id.String() != s || id.URL().String() != s {
			t.Fatalf("Parse(%q) = %v does not format back", s, id)
		}
		if again, err := Parse(id.URL().String()); err != nil || again != id {
			t.Fatalf("URL form of %q does not parse back: %v %v", s, again, err)
		}
	})
}
