package proxy

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weftmesh/weft/internal/proxy/xdsclient"
	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

// TestListenerBindFailureIsNACKed: a listener whose port is taken is
// NACKed with the listener's name and the bind error (Envoy's behaviour),
// the listeners already serving keep serving, /config_dump shows the
// failure as the listener's error_state, and once the port is free the
// same listener is accepted and serves.
func TestListenerBindFailureIsNACKed(t *testing.T) {
	b := newBackend(t, "app", nil)
	const cluster = "outbound|80||app.default.svc.cluster.local"
	good := xdstest.FreeAddr(t)
	cfg := func(listeners ...*listenerv3.Listener) xdstest.Resources {
		return xdstest.Resources{
			Clusters:  []*clusterT{xdstest.StaticCluster(cluster, b.addr())},
			Listeners: listeners,
			Routes:    []*routev3.RouteConfiguration{xdstest.RouteConfig("80", cluster)},
		}
	}
	goodL := xdstest.HTTPListener("good", good, xdstest.HCM("80", "80"))
	h := newHarness(t, cfg(goodL))
	waitFor(t, "listener good", func() bool { return h.p.ListenerAddr(good) != "" })

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyAddr := busy.Addr().String()
	h.push(cfg(goodL, xdstest.HTTPListener("blocked", busyAddr, xdstest.HCM("80", "80"))))

	var nack string
	waitFor(t, "NACK of the listener update", func() bool {
		for _, n := range h.cp.NACKs() {
			if strings.Contains(n, "blocked") {
				nack = n
				return true
			}
		}
		return false
	})
	for _, want := range []string{"listener blocked", "cannot bind '" + busyAddr + "'", "address already in use"} {
		if !strings.Contains(nack, want) {
			t.Errorf("NACK error_detail %q does not say %q", nack, want)
		}
	}
	if code, _, _ := get(t, "http://"+good+"/"); code != http.StatusOK {
		t.Fatalf("listener good answered %d after the NACK, want 200", code)
	}
	dump := adminGet(t, h.p.Addr("admin"), "/config_dump")
	if !strings.Contains(dump, `"errorState"`) || !strings.Contains(dump, "cannot bind") {
		t.Errorf("config_dump shows no error_state for the unbindable listener:\n%s", grep(dump, "rror"))
	}
	if st := h.p.xds.Status().Types[xdsclient.ListenerType]; st.NACKs == 0 || !strings.Contains(st.LastNACK, "blocked") {
		t.Errorf("xds status %+v", st)
	}

	// The port is freed and the listener pushed again: ACKed, and it serves.
	busy.Close()
	h.push(cfg(goodL, xdstest.HTTPListener("blocked", busyAddr, xdstest.HCM("80", "80"))))
	want := fmt.Sprint("v", h.ver.Load())
	waitFor(t, "ACK of "+want, func() bool { return h.p.xds.Status().Types[xdsclient.ListenerType].Version == want })
	waitFor(t, "listener blocked bound", func() bool { return h.p.ListenerAddr(busyAddr) != "" })
	if code, body, _ := get(t, "http://"+busyAddr+"/x"); code != http.StatusOK || !strings.HasPrefix(body, "app") {
		t.Fatalf("through the freed listener: %d %q", code, body)
	}
	if dump := adminGet(t, h.p.Addr("admin"), "/config_dump"); strings.Contains(dump, `"errorState"`) {
		t.Errorf("error_state kept after the listener was applied:\n%s", grep(dump, "rror"))
	}
}
