package iptables

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestRulesGolden(t *testing.T) {
	custom := Default()
	custom.ProxyUID, custom.ProxyGID = 2000, 2001
	custom.InboundPorts = []int{9080, 9443, 9080}
	custom.ExcludeOutboundCIDRs = []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12"), netip.MustParsePrefix("fd00::1/8")}
	excl := Default()
	excl.ExcludeInboundPorts = []int{8081, 22}
	excl.ExcludeOutboundCIDRs = []netip.Prefix{netip.MustParsePrefix("169.254.169.254/32")}
	for name, c := range map[string]Config{"default": Default(), "inbound-ports": custom, "exclude": excl} {
		for _, f := range []Family{IPv4, IPv6} {
			file := filepath.Join("testdata", name+map[Family]string{IPv4: ".v4", IPv6: ".v6"}[f]+".golden")
			got := c.Rules(f)
			if *update {
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("%s: rules differ from the golden file\ngot:\n%s\nwant:\n%s", file, got, want)
			}
		}
	}
}

// TestRulesOrder checks the properties the interception relies on, so a
// golden update cannot silently break them.
func TestRulesOrder(t *testing.T) {
	rules := strings.Split(Default().Rules(IPv4), "\n")
	index := func(rule string) int {
		t.Helper()
		for i, r := range rules {
			if r == rule {
				return i
			}
		}
		t.Fatalf("rule %q missing", rule)
		return -1
	}
	ownerReturn := index("-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN")
	appLoopback := index("-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN")
	redirect := index("-A ISTIO_OUTPUT -j ISTIO_REDIRECT")
	selfCall := index("-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT")
	if !(selfCall < appLoopback && appLoopback < ownerReturn && ownerReturn < redirect) {
		t.Errorf("ISTIO_OUTPUT order wrong: self-call %d, app loopback %d, owner return %d, redirect %d", selfCall, appLoopback, ownerReturn, redirect)
	}
	if redirect != len(rules)-3 { // last rule, then COMMIT and the empty line
		t.Errorf("the catch-all redirect is not the last rule:\n%s", strings.Join(rules, "\n"))
	}
	for _, p := range []string{"15008", "15020", "15021", "15090", "22"} {
		if index("-A ISTIO_INBOUND -p tcp --dport "+p+" -j RETURN") > index("-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT") {
			t.Errorf("port %s excluded after the inbound redirect", p)
		}
	}
}

func TestValidateAndParse(t *testing.T) {
	bad := Default()
	bad.InboundCapturePort = 0
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "inbound capture port 0") {
		t.Errorf("Validate(inbound port 0) = %v", err)
	}
	bad = Default()
	bad.ExcludeInboundPorts = []int{70000}
	if err := bad.Validate(); err == nil {
		t.Error("Validate accepted port 70000")
	}
	if err := Default().Validate(); err != nil {
		t.Errorf("Validate(Default()) = %v", err)
	}
	if p, err := ParsePorts("*"); err != nil || p != nil {
		t.Errorf("ParsePorts(*) = %v, %v", p, err)
	}
	if p, err := ParsePorts("9080, 15000"); err != nil || len(p) != 2 || p[1] != 15000 {
		t.Errorf("ParsePorts = %v, %v", p, err)
	}
	if _, err := ParsePorts("80,http"); err == nil || !strings.Contains(err.Error(), `"http"`) {
		t.Errorf("ParsePorts(http) = %v", err)
	}
	c, err := ParseCIDRs("10.0.0.0/8, 192.168.1.1,fd00::/8")
	if err != nil || len(c) != 3 || c[1].String() != "192.168.1.1/32" {
		t.Errorf("ParseCIDRs = %v, %v", c, err)
	}
	if _, err := ParseCIDRs("10.0.0.0/33"); err == nil {
		t.Error("ParseCIDRs accepted /33")
	}
}
