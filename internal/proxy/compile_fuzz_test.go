package proxy

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/proxy/listener"
	"github.com/weftmesh/weft/internal/proxy/router"
	"github.com/weftmesh/weft/internal/proxy/upstream"
	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

// FuzzCompile decodes arbitrary bytes as each xDS resource type and
// compiles them the way Validate does: bad input must give an error,
// never a panic.
func FuzzCompile(f *testing.F) {
	for _, m := range seeds() {
		data, _ := proto.Marshal(m)
		f.Add(data, uint8(0))
		f.Add(data, uint8(1))
		f.Add(data, uint8(2))
		f.Add(data, uint8(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, kind uint8) {
		watchdog := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("slow input kind %d: %x", kind%4, data)) })
		defer watchdog.Stop()
		switch kind % 4 {
		case 0:
			l := &listenerv3.Listener{}
			if proto.Unmarshal(data, l) == nil {
				listener.Compile(l, listener.Deps{})
			}
		case 1:
			rc := &routev3.RouteConfiguration{}
			if proto.Unmarshal(data, rc) == nil {
				router.Compile(rc)
			}
		case 2:
			c := &clusterv3.Cluster{}
			if proto.Unmarshal(data, c) == nil {
				upstream.Validate(c)
			}
		case 3:
			cla := &endpointv3.ClusterLoadAssignment{}
			if proto.Unmarshal(data, cla) == nil {
				upstream.ValidateAssignment(cla)
			}
		}
	})
}

func seeds() []proto.Message {
	fake := map[string]*backend{}
	for _, n := range []string{"v1", "v2", "flaky", "slow", "shadow"} {
		fake[n] = &backend{Server: &httptest.Server{URL: "http://127.0.0.1:1"}}
	}
	rich := bookinfo("127.0.0.1:9080", fake, "127.0.0.1:2")
	res := xdstest.Resources{
		Clusters:  []*clusterv3.Cluster{xdstest.EDSCluster("c"), xdstest.StaticCluster("s", "127.0.0.1:80")},
		Endpoints: []*endpointv3.ClusterLoadAssignment{xdstest.CLA("c", "10.0.0.1:80", "[fd00::1]:80")},
		Listeners: []*listenerv3.Listener{
			xdstest.HTTPListener("h", "0.0.0.0:80", xdstest.HCM("80", "80")),
			xdstest.TCPListener("t", "0.0.0.0:81", "s"),
			tlsListener(&testing.T{}, "tls", "0.0.0.0:443", "80"),
		},
		Routes: []*routev3.RouteConfiguration{xdstest.RouteConfig("80", "c")},
	}
	res.Clusters = append(res.Clusters, rich.Clusters...)
	res.Routes = append(res.Routes, rich.Routes...)
	var out []proto.Message
	for _, m := range res.Clusters {
		out = append(out, m)
	}
	for _, m := range res.Endpoints {
		out = append(out, m)
	}
	for _, m := range res.Listeners {
		out = append(out, m)
	}
	for _, m := range res.Routes {
		out = append(out, m)
	}
	return out
}
