package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/cmd/sluice/internal/config"
)

// sampleConfig parses the sample configuration that `make run` serves.
func sampleConfig(t *testing.T) *config.Config {
	t.Helper()
	path := filepath.Join(repoRoot, "testdata", "sluice.yml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(path, data, registry())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// The sample configuration that `make run` serves is valid, and every
// filter in it builds with the shipped registry.
func TestSampleConfig(t *testing.T) {
	cfg := sampleConfig(t)
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

// What README.md and docs/configuration.md say of the sample and of
// `make run` is true: it listens on the addresses the README gives,
// keeps state and spilled bodies under ./var/, which `make run` creates
// and git ignores, sets the other keys to their defaults, and runs the
// filters configuration.md lists, in that order.
func TestSampleConfigDocs(t *testing.T) {
	cfg := sampleConfig(t)
	readme := readDoc(t, "README.md")
	_, twoCommands, _ := strings.Cut(readme, "\n## Two commands\n")
	twoCommands, _, _ = strings.Cut(twoCommands, "\n## ")
	for _, l := range cfg.Listen {
		if !strings.Contains(twoCommands, "`"+l.Address+"`") {
			t.Errorf("README.md, Two commands, does not name the milter listener %s of testdata/sluice.yml", l.Address)
		}
	}
	if want := "`http://" + cfg.Metrics.Listen + "/metrics`"; !strings.Contains(twoCommands, want) {
		t.Errorf("README.md, Two commands, does not name the metrics address %s of testdata/sluice.yml", want)
	}
	if !strings.Contains(twoCommands, "`./var/`") {
		t.Fatal("README.md, Two commands, no longer says where make run keeps its state; update this test")
	}
	makefile := readDoc(t, "Makefile")
	run := regexp.MustCompile(`(?m)^run:.*\n((?:\t.*\n)+)`).FindStringSubmatch(makefile)
	if run == nil {
		t.Fatal("Makefile has no run target")
	}
	if !strings.Contains(run[1], "--config testdata/sluice.yml") {
		t.Errorf("make run does not serve testdata/sluice.yml:\n%s", run[1])
	}
	for key, dir := range map[string]string{"state_dir": cfg.StateDir, "body.temp_dir": cfg.Body.TempDir} {
		if !strings.HasPrefix(dir, "var/") {
			t.Errorf("testdata/sluice.yml: %s is %q, not under ./var/ as README.md says", key, dir)
		}
		if !regexp.MustCompile(`mkdir -p .*\b` + regexp.QuoteMeta(dir) + `\b`).MatchString(run[1]) {
			t.Errorf("make run does not create %s (%s), which sluice serve needs:\n%s", dir, key, run[1])
		}
	}
	if !regexp.MustCompile(`(?m)^/?var/?$`).MatchString(readDoc(t, ".gitignore")) {
		t.Error(".gitignore does not ignore var/, which README.md says it does")
	}

	// "the same defaults, with state and temporary files under ./var/,
	// and three filters: `headerfix`, `bayes` ... and `archive`".
	text := readDoc(t, "docs/configuration.md")
	m := regexp.MustCompile("`testdata/sluice.yml` is the sample `make run` uses: the same defaults,\\s+with state and temporary files under `./var/`, and (\\w+) filters:\\s+([^\\n]+(?:\\n[^\\n]+)*)").FindStringSubmatch(text)
	if m == nil {
		t.Fatal("docs/configuration.md no longer describes testdata/sluice.yml in the words this test reads; update it")
	}
	var types []string
	for _, f := range cfg.Filters {
		types = append(types, f.Type)
	}
	var named []string
	known := registry()
	for _, s := range codeSpans(m[2]) {
		if _, ok := known[s]; ok {
			named = append(named, s)
		}
	}
	if !reflect.DeepEqual(named, types) {
		t.Errorf("docs/configuration.md names the filters %v for testdata/sluice.yml, which has %v", named, types)
	}
	words := map[string]int{"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
	if words[m[1]] != len(types) {
		t.Errorf("docs/configuration.md says testdata/sluice.yml has %s filters, it has %d", m[1], len(types))
	}
	rest := *cfg
	rest.File, rest.StateDir, rest.Body.TempDir, rest.Filters = "", config.Default().StateDir, "", nil
	if !reflect.DeepEqual(&rest, config.Default()) {
		t.Errorf("testdata/sluice.yml sets keys other than state_dir, body.temp_dir and filters away from their defaults:\n got %+v\nwant %+v", rest, *config.Default())
	}
}
