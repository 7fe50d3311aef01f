package main

import (
	"bufio"
	"fmt"
	"os"
	"sort"
)

// rocPoint is one point of an ROC curve: the share of ham called spam and
// the share of spam called spam at some threshold.
type rocPoint struct{ fpr, tpr float64 }

// rocCurve returns the ROC curve of scored results ordered by rank, with
// ties taken together (a tie moves the curve diagonally, as AUC counts it).
func rocCurve(res []scored) []rocPoint {
	s := append([]scored(nil), res...)
	sort.Slice(s, func(i, j int) bool { return s[i].rank > s[j].rank })
	var spam, ham float64
	for _, r := range s {
		if r.spam {
			spam++
		} else {
			ham++
		}
	}
	pts := []rocPoint{{0, 0}}
	var tp, fp float64
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j].rank == s[i].rank {
			if s[j].spam {
				tp++
			} else {
				fp++
			}
			j++
		}
		pts = append(pts, rocPoint{fp / max(ham, 1), tp / max(spam, 1)})
		i = j
	}
	return pts
}

type rocSeries struct {
	name   string
	colour string
	pts    []rocPoint
}

// writeROC draws the curves as an SVG file: the whole curve on the left and
// the top-left corner, where good classifiers differ, enlarged on the right.
func writeROC(path string, series []rocSeries) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("roc plot: %w", err)
	}
	w := bufio.NewWriter(f)
	const width, height, panel, margin = 860, 430, 340, 60
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	panels := []struct {
		x0                     float64
		title                  string
		fmin, fmax, tmin, tmax float64
	}{
		{margin, "ROC curve", 0, 1, 0, 1},
		{margin + panel + 2*margin, "Top-left corner", 0, 0.05, 0.95, 1},
	}
	for _, p := range panels {
		x0, y0 := p.x0, float64(margin)
		fmt.Fprintf(w, `<text x="%.0f" y="%.0f" font-weight="bold">%s</text>`+"\n", x0, y0-20, p.title)
		fmt.Fprintf(w, `<rect x="%.0f" y="%.0f" width="%d" height="%d" fill="none" stroke="#444"/>`+"\n", x0, y0, panel, panel)
		for i := 0; i <= 4; i++ {
			fx := p.fmin + (p.fmax-p.fmin)*float64(i)/4
			ty := p.tmin + (p.tmax-p.tmin)*float64(i)/4
			gx := x0 + float64(panel)*float64(i)/4
			gy := y0 + float64(panel) - float64(panel)*float64(i)/4
			fmt.Fprintf(w, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#ddd"/>`+"\n", gx, y0, gx, y0+panel)
			fmt.Fprintf(w, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/>`+"\n", x0, gy, x0+panel, gy)
			fmt.Fprintf(w, `<text x="%.1f" y="%.0f" text-anchor="middle">%g</text>`+"\n", gx, y0+panel+16, round3(fx))
			fmt.Fprintf(w, `<text x="%.0f" y="%.1f" text-anchor="end">%g</text>`+"\n", x0-6, gy+4, round3(ty))
		}
		fmt.Fprintf(w, `<text x="%.0f" y="%.0f" text-anchor="middle">false positive rate (ham called spam)</text>`+"\n", x0+panel/2, y0+panel+34)
		fmt.Fprintf(w, `<text transform="translate(%.0f,%.0f) rotate(-90)" text-anchor="middle">true positive rate</text>`+"\n", x0-42, y0+panel/2)
		clip := fmt.Sprintf("clip%.0f", x0)
		fmt.Fprintf(w, `<clipPath id="%s"><rect x="%.0f" y="%.0f" width="%d" height="%d"/></clipPath>`+"\n", clip, x0, y0, panel, panel)
		for _, s := range series {
			fmt.Fprintf(w, `<polyline clip-path="url(#%s)" fill="none" stroke="%s" stroke-width="2" points="`, clip, s.colour)
			for _, pt := range s.pts {
				x := x0 + float64(panel)*(pt.fpr-p.fmin)/(p.fmax-p.fmin)
				y := y0 + float64(panel) - float64(panel)*(pt.tpr-p.tmin)/(p.tmax-p.tmin)
				fmt.Fprintf(w, "%.2f,%.2f ", x, y)
			}
			fmt.Fprintln(w, `"/>`)
		}
	}
	for i, s := range series {
		y := float64(height - 18 - 16*(len(series)-1-i))
		fmt.Fprintf(w, `<line x1="%d" y1="%.0f" x2="%d" y2="%.0f" stroke="%s" stroke-width="3"/>`+"\n", margin, y-4, margin+24, y-4, s.colour)
		fmt.Fprintf(w, `<text x="%d" y="%.0f">%s</text>`+"\n", margin+30, y, s.name)
	}
	fmt.Fprintln(w, "</svg>")
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("roc plot: %w", err)
	}
	return f.Close()
}

func round3(v float64) float64 {
	return float64(int64(v*1000+0.5)) / 1000
}
