package report

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// plotColors are distinguishable line colours, assigned in result order.
var plotColors = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"}

// percentileX maps a percentile to the x axis: log10(1/(1-p/100)), so
// p50 is 0.3, p90 is 1, p99 is 2 and p99.9 is 3 (the tail spreads out).
func percentileX(p float64) float64 {
	if p >= 100 {
		p = 99.999
	}
	return math.Log10(100 / (100 - p))
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*e*(1+1e-9) {
			return m * e
		}
	}
	return 10 * e
}

// LatencySVG writes a latency-versus-percentile plot of the scenario's
// results that have a curve: one line per proxy, a legend, and axes.
func (s *Scenario) LatencySVG(w io.Writer) error {
	const (
		width, height         = 720, 400
		left, right, top, bot = 70, 170, 40, 50
		plotW, plotH          = width - left - right, height - top - bot
		yTicks                = 5
	)
	var ymax, xmax float64
	for _, r := range s.Results {
		for _, p := range r.Curve {
			ymax = math.Max(ymax, p.Value)
			xmax = math.Max(xmax, percentileX(p.Percentile))
		}
	}
	ymax = niceCeil(ymax)
	xmax = math.Max(math.Ceil(xmax), 1)
	px := func(p float64) float64 { return left + percentileX(p)/xmax*plotW }
	py := func(v float64) float64 { return top + plotH - v/ymax*plotH }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", left, esc("Scenario "+s.ID+": latency by percentile"))
	// Axes and grid.
	for i := 0; i <= yTicks; i++ {
		v := ymax * float64(i) / yTicks
		y := py(v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", left, y, left+plotW, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y+4, trimFloat(v))
	}
	for _, p := range []float64{0, 50, 90, 99, 99.9, 99.99} {
		if percentileX(p) > xmax+1e-9 {
			continue
		}
		x := px(p)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", x, top, x, top+plotH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">p%s</text>`+"\n", x, top+plotH+16, trimFloat(p))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", left, top, plotW, plotH)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">percentile</text>`+"\n", left+plotW/2, height-12)
	fmt.Fprintf(&b, `<text x="16" y="%d" text-anchor="middle" transform="rotate(-90 16 %d)">latency (ms)</text>`+"\n", top+plotH/2, top+plotH/2)
	// One line per result.
	n := 0
	for _, r := range s.Results {
		if len(r.Curve) == 0 {
			continue
		}
		color := plotColors[n%len(plotColors)]
		pts := make([]string, 0, len(r.Curve))
		for _, p := range r.Curve {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p.Percentile), py(p.Value)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", color, strings.Join(pts, " "))
		ly := top + 10 + n*18
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>`+"\n", left+plotW+12, ly, left+plotW+32, ly, color)
		name := r.Proxy
		if r.Label != "" {
			name += " (" + r.Label + ")"
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", left+plotW+38, ly+4, esc(name))
		n++
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
