package xds

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus metrics, named like istiod's where
// istiod has an equivalent.
type metrics struct {
	pushes       *prometheus.CounterVec // responses sent, by type
	rejects      *prometheus.CounterVec // NACKs received, by type
	connected    prometheus.Gauge       // proxies with at least one stream
	convergence  prometheus.Histogram   // config change → proxy ACKed everything
	pushTime     prometheus.Histogram   // generate + snapshot + hand to streams, per proxy
	debounceTime prometheus.Histogram   // first change → debounced push start
	inconsistent prometheus.Counter     // generated configurations refused
	pushTriggers prometheus.Counter     // debounced pushes started
}

func newMetrics(reg prometheus.Registerer) *metrics {
	buckets := []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m := &metrics{
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_xds_pushes", Help: "xDS responses sent, by type (cds, eds, lds, rds, sds).",
		}, []string{"type"}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_total_xds_rejects", Help: "xDS responses rejected (NACKed) by proxies, by type.",
		}, []string{"type"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pilot_xds", Help: "Proxies connected to this control plane over xDS.",
		}),
		convergence: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pilot_proxy_convergence_time", Help: "Seconds from a configuration change until a proxy has acknowledged all configuration it was sent.",
			Buckets: buckets,
		}),
		pushTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pilot_xds_push_time", Help: "Seconds to generate one proxy's configuration and hand it to its streams.",
			Buckets: buckets,
		}),
		debounceTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pilot_debounce_time", Help: "Seconds from the first configuration change to the start of the debounced push.",
			Buckets: buckets,
		}),
		inconsistent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_xds_inconsistent_configs_total", Help: "Generated proxy configurations refused as inconsistent (the proxy keeps its previous one).",
		}),
		pushTriggers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_xds_push_triggers_total", Help: "Debounced pushes started.",
		}),
	}
	for _, t := range typeURLs {
		m.pushes.WithLabelValues(TypeName(t))
		m.rejects.WithLabelValues(TypeName(t))
	}
	if reg != nil {
		reg.MustRegister(m.pushes, m.rejects, m.connected, m.convergence, m.pushTime, m.debounceTime, m.inconsistent, m.pushTriggers)
	}
	return m
}
