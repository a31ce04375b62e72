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

// LatencySVG writes a latency-versus-percentile plot of the scenario's
// results that have a curve: one line per proxy, a legend, and axes. The
// latency axis is logarithmic (decades), so that the median and the tail
// are both readable.
func (s *Scenario) LatencySVG(w io.Writer) error {
	const (
		width, height         = 720, 400
		left, right, top, bot = 70, 170, 40, 50
		plotW, plotH          = width - left - right, height - top - bot
	)
	ymin, ymax := math.Inf(1), 0.0
	xmin, xmax := math.Inf(1), 0.0
	for _, r := range s.Results {
		for _, p := range r.Curve {
			if p.Value > 0 {
				ymin = math.Min(ymin, p.Value)
			}
			ymax = math.Max(ymax, p.Value)
			xmin = math.Min(xmin, percentileX(p.Percentile))
			xmax = math.Max(xmax, percentileX(p.Percentile))
		}
	}
	if math.IsInf(ymin, 1) {
		ymin, ymax = 0.01, 1
	}
	lo := math.Floor(math.Log10(ymin) + 1e-9)
	hi := math.Max(math.Ceil(math.Log10(ymax)-1e-9), lo+1)
	xmax = math.Max(math.Ceil(xmax-1e-9), 1)
	if math.IsInf(xmin, 1) || xmin >= xmax {
		xmin = 0
	}
	px := func(p float64) float64 { return left + (percentileX(p)-xmin)/(xmax-xmin)*plotW }
	py := func(v float64) float64 {
		v = math.Max(v, math.Pow(10, lo))
		return top + plotH - (math.Log10(v)-lo)/(hi-lo)*plotH
	}

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", left, esc("Scenario "+s.ID+": latency by percentile"))
	// Axes and grid: a line per decade, lighter ones at 2 and 5.
	for e := lo; e <= hi+1e-9; e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if math.Log10(v) > hi+1e-9 {
				break
			}
			y := py(v)
			stroke := "#ddd"
			if m != 1 {
				stroke = "#f0f0f0"
			}
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", left, y, left+plotW, y, stroke)
			if m == 1 {
				fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y+4, trimFloat(v))
			}
		}
	}
	for _, p := range []float64{0, 50, 75, 90, 99, 99.9, 99.99} {
		x := percentileX(p)
		if x < xmin-1e-9 || x > xmax+1e-9 {
			continue
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", px(p), top, px(p), top+plotH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">p%s</text>`+"\n", px(p), top+plotH+16, trimFloat(p))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", left, top, plotW, plotH)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">percentile</text>`+"\n", left+plotW/2, height-12)
	fmt.Fprintf(&b, `<text x="16" y="%d" text-anchor="middle" transform="rotate(-90 16 %d)">latency (ms, log scale)</text>`+"\n", top+plotH/2, top+plotH/2)
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
