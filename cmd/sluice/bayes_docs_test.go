package main

// These tests keep docs/bayes.md and docs/training.md true, in the manner
// of docs_test.go: every option of bayes.Config has a row in the options
// table of bayes.md and every row is an option; the documented defaults of
// the scoring parameters and limits are the code's; and every
// configuration example ("# sluice.yml" blocks) builds a working pipeline.

import (
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/cmd/sluice/internal/config"
	"github.com/sluice-mail/sluice/filters/bayes"
	"github.com/sluice-mail/sluice/filters/dnsbl"
	"github.com/sluice-mail/sluice/filters/headerfix"
)

// bayesOptionKeys walks the yaml tags of bayes.Config: "robx",
// "header.name", "spam.action"...
func bayesOptionKeys(t reflect.Type, prefix string, keys map[string]bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		if prefix != "" {
			name = prefix + "." + name
		}
		ft := f.Type
		if ft.Kind() == reflect.Struct {
			bayesOptionKeys(ft, name, keys)
			continue
		}
		keys[name] = true
	}
}

// docOptionRows returns the options table of a filter's doc page (the
// table whose first column is "Option"): option to Default cell.
func docOptionRows(t *testing.T, path string) map[string]string {
	t.Helper()
	rows := map[string]string{}
	for _, tbl := range mdTables(readDoc(t, path)) {
		if tbl.column("Option") != 0 {
			continue
		}
		def := tbl.column("Default")
		for _, r := range tbl.rows {
			k, ok := onlyCode(r.cell(0))
			if !ok {
				t.Errorf("%s:%d: option cell %q is not one code span", path, r.line, r.cell(0))
				continue
			}
			rows[k] = r.cell(def)
		}
	}
	if len(rows) == 0 {
		t.Fatalf("%s has no options table", path)
	}
	return rows
}

func TestDocBayesOptions(t *testing.T) {
	keys := map[string]bool{}
	bayesOptionKeys(reflect.TypeOf(bayes.Config{}), "", keys)
	for _, k := range []string{"db", "robx", "header.format", "spam.reply", "autolearn.ham", "max_size"} {
		if !keys[k] {
			t.Fatalf("walking bayes.Config did not find %s: %v", k, keys)
		}
	}
	rows := docOptionRows(t, "docs/bayes.md")
	for k := range keys {
		if _, ok := rows[k]; !ok {
			t.Errorf("docs/bayes.md does not document option %s", k)
		}
	}
	for k := range rows {
		if !keys[k] {
			t.Errorf("docs/bayes.md documents %s, which is not an option of bayes.Config", k)
		}
	}

	p := classifier.DefaultParams()
	want := map[string]string{
		"robx":          strconv.FormatFloat(p.RobX, 'g', -1, 64),
		"robs":          strconv.FormatFloat(p.RobS, 'g', -1, 64),
		"min_dev":       strconv.FormatFloat(p.MinDev, 'g', -1, 64),
		"spam_cutoff":   strconv.FormatFloat(p.SpamCutoff, 'g', -1, 64),
		"ham_cutoff":    strconv.FormatFloat(p.HamCutoff, 'g', -1, 64),
		"min_spam":      strconv.Itoa(p.MinSpam),
		"min_ham":       strconv.Itoa(p.MinHam),
		"max_bytes":     strconv.Itoa(classifier.DefaultMaxBytes),
		"max_tokens":    strconv.Itoa(classifier.DefaultMaxTokens),
		"max_size":      strconv.Itoa(bayes.DefaultMaxSize),
		"header.name":   bayes.DefaultHeaderName,
		"header.format": bayes.DefaultHeaderFormat,
	}
	for k, v := range want {
		spans := codeSpans(rows[k])
		if len(spans) == 0 || spans[0] != v {
			t.Errorf("docs/bayes.md: the default of %s is documented as %q, the code has %q", k, rows[k], v)
		}
	}
	if spans := codeSpans(rows["refit"]); len(spans) == 0 {
		t.Errorf("docs/bayes.md: no default for refit")
	} else if d, err := time.ParseDuration(spans[0]); err != nil || d != bayes.DefaultRefit {
		t.Errorf("docs/bayes.md: the default of refit is documented as %q, the code has %v", spans[0], bayes.DefaultRefit)
	}
}

// Every configuration example of the Bayes docs builds a pipeline.
func TestDocBayesExamples(t *testing.T) {
	n := 0
	for _, f := range []string{"docs/bayes.md", "docs/training.md"} {
		for _, b := range yamlBlocks(f, readDoc(t, f)) {
			b.text = dedent(b.text)
			if !strings.HasPrefix(b.text, "# sluice.yml") {
				continue
			}
			n++
			// The examples name the usual places; build them in a
			// scratch directory instead.
			dir := t.TempDir()
			text := strings.ReplaceAll(b.text, "/var/lib/sluice", dir)
			if !strings.Contains(text, "state_dir:") {
				text += "state_dir: " + dir + "\n"
			}
			cfg, err := config.Parse(f, []byte(text), registry())
			if err != nil {
				t.Errorf("%s:%d: %v", f, b.line, err)
				continue
			}
			p, err := config.Build(cfg, registry(), slog.New(slog.DiscardHandler), nil)
			if err != nil {
				t.Errorf("%s:%d: %v", f, b.line, err)
				continue
			}
			p.Close()
			if _, err := os.Stat(filepath.Join(dir, "bayes.db")); err != nil {
				t.Errorf("%s:%d: the example did not open its store: %v", f, b.line, err)
			}
		}
	}
	if n < 2 {
		t.Errorf("found %d configuration examples in the Bayes docs", n)
	}
}

// dedent removes the indentation of a block nested in a list item.
func dedent(text string) string {
	indent := len(text) - len(strings.TrimLeft(text, " "))
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if len(l) >= indent && strings.TrimSpace(l[:indent]) == "" {
			lines[i] = l[indent:]
		}
	}
	return strings.Join(lines, "\n")
}

// The options tables of docs/dnsbl.md and docs/headerfix.md list exactly
// the options of the filters' Config: every key a user can write is
// documented, and every documented key is one the filter reads (a key
// only in the docs would be refused as unknown).
func TestDocFilterOptions(t *testing.T) {
	pages := []struct {
		path string
		cfg  any
		some string // a key the walk must find, so that it checks something
	}{
		{"docs/dnsbl.md", dnsbl.Config{}, "zones[].zone"},
		{"docs/headerfix.md", headerfix.Config{}, "trace_header"},
	}
	for _, p := range pages {
		t.Run(p.path, func(t *testing.T) {
			keys := map[string]string{}
			configKeys(reflect.TypeOf(p.cfg), "", keys)
			if _, ok := keys[p.some]; !ok {
				t.Fatalf("walking %T did not find %s: %v", p.cfg, p.some, sortedKeys(keys))
			}
			rows := docOptionRows(t, p.path)
			for _, k := range sortedKeys(keys) {
				// A mapping is documented through its keys.
				if _, ok := rows[k]; !ok && keys[k] != kindMapping {
					t.Errorf("%s does not document option %s", p.path, k)
				}
			}
			for _, k := range sortedKeys(rows) {
				if _, ok := keys[k]; !ok {
					t.Errorf("%s documents %s, which is not an option of %T", p.path, k, p.cfg)
				}
			}
		})
	}
}
