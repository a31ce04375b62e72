package proxy

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/proxy/xdstest"
)

// TestNoRequestLostDuringConfigChanges sends a steady 1000 requests per
// second through the proxy while the control plane pushes 100 different
// configurations — the default route moving between subsets, an unrelated
// listener coming and going, the target cluster's endpoints changing — and
// requires every request to succeed.
func TestNoRequestLostDuringConfigChanges(t *testing.T) {
	if testing.Short() {
		t.Skip("sends about 4000 requests")
	}
	b := backends(t)
	lis := xdstest.FreeAddr(t)
	base := bookinfo(lis, b, deadAddr(t))
	h := newHarness(t, base)

	subsets := []string{"v1", "v2"}
	extra := xdstest.FreeAddr(t)
	config := func(i int) xdstest.Resources {
		res := xdstest.Resources{
			Clusters:  base.Clusters,
			Endpoints: base.Endpoints,
			Listeners: base.Listeners,
		}
		rc := proto.Clone(base.Routes[0]).(*routev3.RouteConfiguration)
		routes := rc.VirtualHosts[0].Routes
		routes[len(routes)-1].Action = &routev3.Route_Route{Route: toCluster(fmt.Sprintf("outbound|9080|%s|reviews.default.svc.cluster.local", subsets[i%2]))}
		res.Routes = []*routev3.RouteConfiguration{rc}
		if i%3 == 0 { // an unrelated listener comes and goes
			res.Listeners = append(append(res.Listeners[:0:0], base.Listeners...),
				xdstest.HTTPListener(fmt.Sprintf("extra_%d", i), extra, xdstest.HCM("extra", "9080")))
		}
		if i%5 == 0 { // v1 gains and loses a second endpoint (the v2 backend)
			res.Endpoints = append(res.Endpoints[:0:0], base.Endpoints...)
			for j, e := range res.Endpoints {
				if e.ClusterName == "outbound|9080|v1|reviews.default.svc.cluster.local" {
					res.Endpoints[j] = xdstest.CLA(e.ClusterName, b["v1"].addr(), b["v2"].addr())
				}
			}
		}
		return res
	}

	const rate = 1000 // requests per second
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
	var sent, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	work := make(chan struct{}, rate)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				req, _ := http.NewRequest("GET", "http://"+lis+"/load", nil)
				req.Host = "reviews:9080"
				resp, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d (flags %q)", resp.StatusCode, resp.Header.Get("X-Weft-Response-Flags"))
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	pacerDone := make(chan struct{})
	go func() { // a steady pace: one request every millisecond
		defer close(pacerDone)
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				sent.Add(1)
				work <- struct{}{}
			}
		}
	}()

	for i := 1; i <= 100; i++ {
		h.push(config(i))
		time.Sleep(40 * time.Millisecond)
	}
	// The last configuration (i=100: v1 default, extra listener absent)
	// must be the one serving.
	waitFor(t, "the last configuration", func() bool {
		_, body, _ := get(t, "http://"+lis+"/x", "Host", "reviews:9080")
		return body == "v1 reviews:9080 /x"
	})
	time.Sleep(200 * time.Millisecond)
	close(stop)
	<-pacerDone
	close(work)
	wg.Wait()

	t.Logf("%d requests at %d/s during 100 configuration changes, %d failed", sent.Load(), rate, failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed during configuration changes; first: %v", failed.Load(), sent.Load(), firstErr.Load())
	}
	if sent.Load() < 1000 {
		t.Errorf("only %d requests were sent: the load did not overlap the changes", sent.Load())
	}
}
