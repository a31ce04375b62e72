package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestInitDryRun(t *testing.T) {
	var out bytes.Buffer
	err := runInit([]string{"--dry-run", "--ipv6", "true", "--proxy-uid", "2000", "--inbound-ports", "9080",
		"--exclude-outbound-cidrs", "169.254.169.254,fd00::/8"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{
		"# iptables-restore\n* nat\n", "# ip6tables-restore\n* nat\n",
		"-A ISTIO_INBOUND -p tcp --dport 9080 -j ISTIO_IN_REDIRECT\n",
		"-A ISTIO_OUTPUT -m owner --uid-owner 2000 -j RETURN\n",
		"-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN\n",
		"-A ISTIO_OUTPUT -d 169.254.169.254/32 -j RETURN\n",
		"-A ISTIO_OUTPUT -d fd00::/8 -j RETURN\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, s)
		}
	}
	if strings.Count(s, "COMMIT\n") != 2 {
		t.Errorf("want two tables (IPv4 and IPv6):\n%s", s)
	}
	out.Reset()
	if err := runInit([]string{"--dry-run", "--ipv6", "false"}, &out); err != nil || strings.Contains(out.String(), "ip6tables") {
		t.Errorf("--ipv6 false: %v\n%s", err, out.String())
	}
}

func TestInitRejectsBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--dry-run", "--inbound-ports", "80,http"}, `--inbound-ports: invalid port "http"`},
		{[]string{"--dry-run", "--exclude-inbound-ports", "70000"}, "--exclude-inbound-ports: invalid port"},
		{[]string{"--dry-run", "--exclude-outbound-cidrs", "10.0.0.0/33"}, `--exclude-outbound-cidrs: invalid CIDR "10.0.0.0/33"`},
		{[]string{"--dry-run", "--ipv6", "maybe"}, "--ipv6: want auto, true or false"},
		{[]string{"--dry-run", "--proxy-uid", "-1"}, "must not be negative"},
		{[]string{"--dry-run", "extra"}, `unexpected argument "extra"`},
	} {
		var out bytes.Buffer
		err := runInit(tc.args, &out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}
