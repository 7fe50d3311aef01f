package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestROCCurve(t *testing.T) {
	res := []scored{
		{spam: true, rank: 0.9}, {spam: true, rank: 0.8}, {spam: false, rank: 0.8}, {spam: false, rank: 0.1},
	}
	pts := rocCurve(res)
	want := []rocPoint{{0, 0}, {0, 0.5}, {0.5, 1}, {1, 1}}
	if len(pts) != len(want) {
		t.Fatalf("points %v, want %v", pts, want)
	}
	for i := range want {
		if pts[i] != want[i] {
			t.Errorf("point %d: %v, want %v", i, pts[i], want[i])
		}
	}
	path := filepath.Join(t.TempDir(), "roc.svg")
	if err := writeROC(path, []rocSeries{{name: "test", colour: "#000", pts: pts}}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), "<svg") || !strings.Contains(string(b), "<polyline") || !strings.HasSuffix(strings.TrimSpace(string(b)), "</svg>") {
		t.Errorf("not an SVG with a curve:\n%.300s", b)
	}
}
