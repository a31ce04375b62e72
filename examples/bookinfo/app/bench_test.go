package app_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/weftmesh/weft/examples/bookinfo/app"
)

// BenchmarkProductpage measures a full /productpage: productpage calling
// details and reviews v2, reviews calling ratings, every call through the mesh
// stand-in proxy on loopback.
func BenchmarkProductpage(b *testing.B) {
	bi := startBookinfo(b, "v2")
	benchGet(b, bi.productpageURL+"/productpage")
}

// BenchmarkDetails measures one details call on loopback.
func BenchmarkDetails(b *testing.B) {
	_, base := serve(b, app.NewDetails())
	benchGet(b, base+"/details/0")
}

func benchGet(b *testing.B, url string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
