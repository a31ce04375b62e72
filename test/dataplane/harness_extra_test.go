package dataplane

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// This file extends the harness (harness_test.go, owned by the routing and
// protocol tests) with what the upstream, telemetry, xDS-client, update
// and admin tests need: services declared with explicit endpoints, a
// backend that counts connections, a Prometheus text reader and a weftd
// restart.

// extraRestartWeftd stops weftd and starts it again on the same ports
// and config directory, then waits for /healthz. The model version
// starts over, so the mesh forgets the version it waits for.
func extraRestartWeftd(m *Mesh) {
	m.t.Helper()
	m.weftd.stop()
	m.weftd = m.startWeftd()
	m.version = 0
}

// extraEndpoint is one WorkloadEntry of a service declared with
// [extraServiceYAML]: it points straight at a backend (no sidecar), with
// an optional weight and locality.
type extraEndpoint struct {
	// Name is the WorkloadEntry's name and its version label.
	Name string
	// Addr is the backend's host:port.
	Addr     string
	Weight   int
	Locality string
}

// extraServiceYAML declares service s (MESH_INTERNAL, STATIC) with one
// WorkloadEntry per endpoint, mapping the service port to the endpoint's
// port. Clients reach the endpoints directly, without a server sidecar.
func extraServiceYAML(s *Service, eps ...extraEndpoint) string {
	var b strings.Builder
	s.writeServiceEntry(&b)
	for _, e := range eps {
		host, port, _ := net.SplitHostPort(e.Addr)
		fmt.Fprintf(&b, "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  address: %s\n  ports: {%s: %s}\n  labels: {app: %s, version: %s}\n",
			e.Name, Namespace, host, s.PortName, port, s.Name, e.Name)
		if e.Weight != 0 {
			fmt.Fprintf(&b, "  weight: %d\n", e.Weight)
		}
		if e.Locality != "" {
			fmt.Fprintf(&b, "  locality: %s\n", e.Locality)
		}
	}
	return b.String()
}

// extraBackend is an HTTP/1.1 and h2c server that answers with its
// instance name (the [Echo] JSON) and counts the connections it accepted
// and the requests in flight. Request header x-echo-delay delays the
// answer. It can be told to fail every request (503) and be stopped.
type extraBackend struct {
	Instance string
	Addr     string

	srv       *http.Server
	conns     atomic.Int64
	requests  atomic.Int64
	inFlight  atomic.Int64
	maxFlight atomic.Int64
	failing   atomic.Bool

	mu     sync.Mutex
	protos map[string]int
}

// extraStartBackend starts an extraBackend on host (a free port); it is
// closed when the test ends.
func extraStartBackend(t *testing.T, instance, host string) *extraBackend {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("backend %s: %v", instance, err)
	}
	b := &extraBackend{Instance: instance, Addr: ln.Addr().String(), protos: map[string]int{}}
	b.srv = &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second, Protocols: new(http.Protocols),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				b.conns.Add(1)
			}
		}}
	b.srv.Protocols.SetHTTP1(true)
	b.srv.Protocols.SetUnencryptedHTTP2(true)
	go b.srv.Serve(ln)
	t.Cleanup(b.Stop)
	return b
}

// Stop closes the listener and every connection: the endpoint is dead.
func (b *extraBackend) Stop() { b.srv.Close() }

// Conns is the number of connections accepted so far.
func (b *extraBackend) Conns() int { return int(b.conns.Load()) }

// Requests is the number of requests received so far.
func (b *extraBackend) Requests() int { return int(b.requests.Load()) }

// MaxInFlight is the largest number of requests served at once.
func (b *extraBackend) MaxInFlight() int { return int(b.maxFlight.Load()) }

// Protos counts the requests by protocol (HTTP/1.1, HTTP/2.0).
func (b *extraBackend) Protos() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]int{}
	for k, v := range b.protos {
		out[k] = v
	}
	return out
}

// SetFailing makes every later request fail with 503.
func (b *extraBackend) SetFailing(fail bool) { b.failing.Store(fail) }

func (b *extraBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	b.requests.Add(1)
	n := b.inFlight.Add(1)
	defer b.inFlight.Add(-1)
	for {
		old := b.maxFlight.Load()
		if n <= old || b.maxFlight.CompareAndSwap(old, n) {
			break
		}
	}
	b.mu.Lock()
	b.protos[r.Proto]++
	b.mu.Unlock()
	if d, err := time.ParseDuration(r.Header.Get(HeaderDelay)); err == nil {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Instance", b.Instance)
	if b.failing.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(Echo{Instance: b.Instance, Proto: r.Proto, Method: r.Method, Host: r.Host, URI: r.RequestURI, Header: r.Header})
}

// extraDeadEndpoint returns host:port of a TCP listener whose accept
// queue is full (backlog 0, one connection never accepted): connection
// attempts to it hang until the client's connect timeout, like a dead
// host's. The test is skipped if the kernel completes connections anyway.
func extraDeadEndpoint(t *testing.T, host string) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	ip := net.ParseIP(host).To4()
	sa := &syscall.SockaddrInet4{}
	copy(sa.Addr[:], ip)
	if err := syscall.Bind(fd, sa); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	got, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(host, strconv.Itoa(got.(*syscall.SockaddrInet4).Port))
	// Fill the accept queue, then check that one more connect hangs.
	for i := 0; i < 4; i++ {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("connections to a listener with a full accept queue still complete on this kernel: no dead endpoint")
	return ""
}

// extraSample is one Prometheus sample: a metric name, labels and value.
type extraSample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// extraParseMetrics reads Prometheus text exposition format.
func extraParseMetrics(t *testing.T, text string) []extraSample {
	t.Helper()
	var out []extraSample
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := extraSample{Labels: map[string]string{}}
		rest := line
		if i := strings.IndexAny(line, "{ "); i >= 0 && line[i] == '{' {
			s.Name = line[:i]
			rest = line[i+1:]
			for {
				rest = strings.TrimLeft(rest, ", ")
				if strings.HasPrefix(rest, "}") {
					rest = rest[1:]
					break
				}
				eq := strings.Index(rest, `="`)
				if eq < 0 {
					t.Fatalf("bad metrics line %q", line)
				}
				key := rest[:eq]
				rest = rest[eq+2:]
				var val strings.Builder
				for len(rest) > 0 && rest[0] != '"' {
					if rest[0] == '\\' && len(rest) > 1 {
						switch rest[1] {
						case 'n':
							val.WriteByte('\n')
						default:
							val.WriteByte(rest[1])
						}
						rest = rest[2:]
						continue
					}
					val.WriteByte(rest[0])
					rest = rest[1:]
				}
				if len(rest) == 0 {
					t.Fatalf("bad metrics line %q", line)
				}
				rest = rest[1:]
				s.Labels[key] = val.String()
			}
		} else if i >= 0 {
			s.Name, rest = line[:i], line[i:]
		} else {
			t.Fatalf("bad metrics line %q", line)
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			t.Fatalf("bad metrics line %q", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			t.Fatalf("bad metrics value in %q: %v", line, err)
		}
		s.Value = v
		out = append(out, s)
	}
	return out
}

// extraFind returns the samples named name whose labels include want.
func extraFind(samples []extraSample, name string, want map[string]string) []extraSample {
	var out []extraSample
outer:
	for _, s := range samples {
		if s.Name != name {
			continue
		}
		for k, v := range want {
			if s.Labels[k] != v {
				continue outer
			}
		}
		out = append(out, s)
	}
	return out
}

// extraSum adds the values of samples.
func extraSum(samples []extraSample) float64 {
	var n float64
	for _, s := range samples {
		n += s.Value
	}
	return n
}

// extraStat reads one counter from the proxy's admin /stats ("name: value").
func extraStat(t *testing.T, p *Proxy, name string) int {
	t.Helper()
	for _, line := range strings.Split(p.AdminGet(t, "/stats?filter="+name), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if ok && k == name {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatalf("stat %s: %q", name, v)
			}
			return n
		}
	}
	t.Fatalf("proxy %s has no stat %s", p.Name, name)
	return 0
}

// extraCounts renders instance counts in a stable order for messages.
func extraCounts(counts map[string]int) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, counts[k]))
	}
	return strings.Join(parts, " ")
}
