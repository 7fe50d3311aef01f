package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-mail/sluice/cmd/sluice/internal/config"
)

// The sample configuration that `make run` serves is valid, and every
// filter in it builds with the shipped registry.
func TestSampleConfig(t *testing.T) {
	path := filepath.Join("..", "..", "testdata", "sluice.yml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(path, data, registry())
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Filters) == 0 {
		t.Fatal("the sample config has no filters")
	}
	// make run creates var/lib; here a temp dir stands in for it.
	cfg.StateDir = t.TempDir()
	p, err := config.Build(cfg, registry(), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}
