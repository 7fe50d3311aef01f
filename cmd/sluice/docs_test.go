package main

// These tests keep the administrator documentation true. They read the
// Markdown files and compare them with the code they describe: every
// configuration key of config.Config with docs/configuration.md (and the
// documented defaults with config.Default), every metric that metrics.New
// registers with docs/metrics.md, and every relative link of README.md and
// docs/ with the files and headings it points at. Conventions the tests
// rely on:
//
//   - configuration.md documents each key in a table row whose first cell is
//     the key's dotted path in backticks (`listen[].address`), and whose
//     "Default" cell starts with the default as a literal in backticks;
//   - metrics.md documents each metric in a table row whose first cell is
//     the metric name in backticks, with "Type" and "Labels" cells;
//   - a YAML block of sluice configuration is any yaml block in
//     configuration.md, or one whose first line is "# sluice.yml".

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/cmd/sluice/internal/config"
	"github.com/sluice-mail/sluice/cmd/sluice/internal/metrics"
	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/bayes"
	"github.com/sluice-mail/sluice/filters/dnsbl"
	"github.com/sluice-mail/sluice/filters/headerfix"
	"github.com/sluice-mail/sluice/milter"
)

// repoRoot is the repository root as seen from this package's directory,
// where go test runs.
const repoRoot = "../.."

func readDoc(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatalf("read %s: %v", rel, err)
	}
	return string(b)
}

// mdTable is one Markdown table: its header cells and its rows.
type mdTable struct {
	header []string
	rows   []mdRow
}

type mdRow struct {
	line  int
	cells []string
}

// column returns the index of the header cell named name, or -1.
func (t mdTable) column(name string) int {
	for i, h := range t.header {
		if strings.EqualFold(h, name) {
			return i
		}
	}
	return -1
}

// cell returns cell i of the row, or "" when the row is shorter.
func (r mdRow) cell(i int) string {
	if i < 0 || i >= len(r.cells) {
		return ""
	}
	return r.cells[i]
}

// mdTables returns the tables of a Markdown text, outside code blocks.
func mdTables(text string) []mdTable {
	var tables []mdTable
	var cur *mdTable
	inFence := false
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(trimmed, "|") {
			cur = nil
			continue
		}
		cells := splitRow(trimmed)
		if cur == nil {
			tables = append(tables, mdTable{header: cells})
			cur = &tables[len(tables)-1]
			continue
		}
		if isSeparator(cells) {
			continue
		}
		cur.rows = append(cur.rows, mdRow{line: i + 1, cells: cells})
	}
	return tables
}

func splitRow(line string) []string {
	line = strings.ReplaceAll(line, `\|`, "\x00")
	line = strings.TrimSuffix(strings.TrimPrefix(line, "|"), "|")
	cells := strings.Split(line, "|")
	for i, c := range cells {
		cells[i] = strings.TrimSpace(strings.ReplaceAll(c, "\x00", "|"))
	}
	return cells
}

func isSeparator(cells []string) bool {
	for _, c := range cells {
		if strings.Trim(c, "-: ") != "" {
			return false
		}
	}
	return true
}

var codeSpan = regexp.MustCompile("`([^`]+)`")

// onlyCode returns the content of a cell that is exactly one code span.
func onlyCode(cell string) (string, bool) {
	m := codeSpan.FindStringSubmatch(cell)
	if m == nil || m[0] != cell {
		return "", false
	}
	return m[1], true
}

// codeSpans returns the contents of every code span in s.
func codeSpans(s string) []string {
	var out []string
	for _, m := range codeSpan.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// Key kinds found by configKeys.
const (
	kindValue   = "value"   // a single value: string, number, duration, options mapping
	kindList    = "list"    // a list of mappings, e.g. listen
	kindMapping = "mapping" // a mapping of keys, e.g. log
)

var (
	yamlNodeType    = reflect.TypeOf(yaml.Node{})
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
)

// isMapping reports whether the config decoder treats t as a mapping of
// keys it checks one by one (see config's strict key walk). yaml.Node
// (filter options) and types that decode themselves are single values.
func isMapping(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && t != yamlNodeType && !reflect.PointerTo(t).Implements(unmarshalerType)
}

// configKeys walks the yaml tags of t and records every key path with its
// kind: "log.level", "listen[].address", "filters[].options".
func configKeys(t reflect.Type, prefix string, keys map[string]string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Slice && isMapping(ft.Elem()):
			keys[path] = kindList
			configKeys(ft.Elem(), path+"[]", keys)
		case isMapping(ft):
			keys[path] = kindMapping
			configKeys(ft, path, keys)
		default:
			keys[path] = kindValue
		}
	}
}

func allConfigKeys(t *testing.T) map[string]string {
	t.Helper()
	keys := map[string]string{}
	configKeys(reflect.TypeOf(config.Config{}), "", keys)
	// Guard against a walk that finds nothing and so checks nothing.
	for _, k := range []string{"listen[].address", "body.memory_limit", "filters[].options", "log.level"} {
		if _, ok := keys[k]; !ok {
			t.Fatalf("walking config.Config did not find %s; found %v", k, sortedKeys(keys))
		}
	}
	return keys
}

var keyPath = regexp.MustCompile(`^[a-z0-9_]+(\[\])?(\.[a-z0-9_]+(\[\])?)*$`)

// docKey is one key documented in a table of configuration.md.
type docKey struct {
	line    int
	def     string // the Default cell
	hasDef  bool   // the table has a Default column
	present bool
}

func documentedKeys(t *testing.T, text string) map[string]docKey {
	t.Helper()
	doc := map[string]docKey{}
	for _, tbl := range mdTables(text) {
		defCol := tbl.column("Default")
		for _, r := range tbl.rows {
			k, ok := onlyCode(r.cell(0))
			if !ok || !keyPath.MatchString(k) {
				continue
			}
			if prev, dup := doc[k]; dup {
				t.Errorf("docs/configuration.md:%d: %s is documented twice (also line %d)", r.line, k, prev.line)
			}
			doc[k] = docKey{line: r.line, def: r.cell(defCol), hasDef: defCol >= 0, present: true}
		}
	}
	return doc
}

// TestDocConfigKeys: every key of config.Config is documented, and every
// documented key exists. Mappings that only group keys (log, body) need
// no row of their own; lists (listen, filters) do.
func TestDocConfigKeys(t *testing.T) {
	keys := allConfigKeys(t)
	doc := documentedKeys(t, readDoc(t, "docs/configuration.md"))
	for _, k := range sortedKeys(keys) {
		if keys[k] != kindMapping && !doc[k].present {
			t.Errorf("docs/configuration.md does not document config key %s (%s): add a table row with `%s` in the first column", k, keys[k], k)
		}
	}
	for _, k := range sortedKeys(doc) {
		if _, ok := keys[k]; !ok {
			t.Errorf("docs/configuration.md:%d documents %s, which is not a key of config.Config", doc[k].line, k)
		}
	}
}

// TestDocConfigDefaults: the documented default of every single-value key
// outside lists, set explicitly in a config file, gives exactly
// config.Default(): the docs cannot claim a default the code does not have.
func TestDocConfigDefaults(t *testing.T) {
	keys := allConfigKeys(t)
	doc := documentedKeys(t, readDoc(t, "docs/configuration.md"))
	checked := 0
	for _, k := range sortedKeys(keys) {
		if keys[k] != kindValue || strings.Contains(k, "[]") || !doc[k].present {
			continue // missing rows are TestDocConfigKeys' business
		}
		d := doc[k]
		spans := codeSpans(d.def)
		if !d.hasDef || len(spans) == 0 || !strings.HasPrefix(d.def, "`") {
			t.Errorf("docs/configuration.md:%d: the Default cell of %s must start with the default in backticks, got %q", d.line, k, d.def)
			continue
		}
		text := yamlFor(k, spans[0])
		got, err := config.Parse("default of "+k, []byte(text), registry())
		if err != nil {
			t.Errorf("docs/configuration.md:%d: documented default of %s does not parse: %v\n%s", d.line, k, err, text)
			continue
		}
		if want := config.Default(); !reflect.DeepEqual(normalize(got), normalize(want)) {
			t.Errorf("docs/configuration.md:%d: documented default of %s is `%s`, but config.Default() differs:\n doc: %+v\ncode: %+v", d.line, k, spans[0], normalize(got), normalize(want))
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no documented default was checked")
	}
}

// yamlFor writes a config file setting the dotted key to the raw YAML
// scalar value.
func yamlFor(key, value string) string {
	var b strings.Builder
	parts := strings.Split(key, ".")
	for i, p := range parts {
		b.WriteString(strings.Repeat("  ", i))
		b.WriteString(p)
		b.WriteString(":")
		if i == len(parts)-1 {
			b.WriteString(" ")
			b.WriteString(value)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func normalize(c *config.Config) *config.Config {
	n := *c
	n.File = ""
	if len(n.Filters) == 0 {
		n.Filters = nil
	}
	return &n
}

// yamlBlock is a fenced ```yaml block of a Markdown file.
type yamlBlock struct {
	file string
	line int
	text string
}

func yamlBlocks(file, text string) []yamlBlock {
	var blocks []yamlBlock
	var cur *yamlBlock
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```yaml"):
			cur = &yamlBlock{file: file, line: i + 1}
		case cur != nil && strings.HasPrefix(trimmed, "```"):
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
	}
	return blocks
}

// TestDocConfigExamples: the sluice configuration examples in the docs
// are valid, and a complete example (one that sets every top-level key)
// shows exactly the built-in defaults.
func TestDocConfigExamples(t *testing.T) {
	blocks := yamlBlocks("docs/configuration.md", readDoc(t, "docs/configuration.md"))
	for _, f := range []string{"README.md", "docs/postfix.md", "docs/sendmail.md", "docs/filters.md", "docs/metrics.md"} {
		for _, b := range yamlBlocks(f, readDoc(t, f)) {
			if strings.HasPrefix(b.text, "# sluice.yml") {
				blocks = append(blocks, b)
			}
		}
	}
	var top []string
	for k := range allConfigKeys(t) {
		if !strings.ContainsAny(k, ".[") {
			top = append(top, k)
		}
	}
	sort.Strings(top)
	complete := 0
	for _, b := range blocks {
		cfg, err := config.Parse(fmt.Sprintf("%s, example at line %d, line", b.file, b.line), []byte(b.text), registry())
		if err != nil {
			t.Errorf("%s: the example at line %d is not a valid configuration: %v", b.file, b.line, err)
			continue
		}
		var m map[string]any
		if err := yaml.Unmarshal([]byte(b.text), &m); err != nil {
			t.Errorf("%s:%d: %v", b.file, b.line, err)
			continue
		}
		all := true
		for _, k := range top {
			if _, ok := m[k]; !ok {
				all = false
			}
		}
		if !all {
			continue
		}
		complete++
		if want := config.Default(); !reflect.DeepEqual(normalize(cfg), normalize(want)) {
			t.Errorf("%s: the complete example at line %d is not the built-in defaults:\n doc: %+v\ncode: %+v", b.file, b.line, normalize(cfg), normalize(want))
		}
	}
	if complete == 0 {
		t.Errorf("docs/configuration.md has no example that sets every top-level key (%s)", strings.Join(top, ", "))
	}
}

// docReloadLists reads the section on SIGHUP of configuration.md: the
// keys listed after "applies at once" (kind "reload") and after "need a
// restart" (kind "restart").
// docListed reports whether key k is in list, itself or under one of its
// entries (a mapping's keys, a sequence's items).
func docListed(list map[string]bool, k string) bool {
	for l := range list {
		if k == l || strings.HasPrefix(k, l+".") || strings.HasPrefix(k, l+"[]") {
			return true
		}
	}
	return false
}

func docReloadLists(t *testing.T, keys map[string]string) map[string]map[string]bool {
	t.Helper()
	text := readDoc(t, "docs/configuration.md")
	_, section, ok := strings.Cut(text, "\n## Signals, reload and shutdown\n")
	if !ok {
		t.Fatal("docs/configuration.md has no section \"Signals, reload and shutdown\"")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	// A list belongs to the paragraph before it.
	lists := map[string]map[string]bool{"reload": {}, "restart": {}}
	var para strings.Builder
	kind, inList := "", false
	for _, line := range strings.Split(section, "\n") {
		switch {
		case strings.HasPrefix(line, "- "):
			if !inList {
				inList = true
				kind = ""
				if strings.Contains(para.String(), "applies at once") {
					kind = "reload"
				} else if strings.Contains(para.String(), "need a restart") {
					kind = "restart"
				}
			}
			for _, k := range codeSpans(line) {
				if _, isKey := keys[k]; isKey && kind != "" {
					lists[kind][k] = true
				}
			}
		case strings.HasPrefix(line, "  ") && inList:
			// the continuation of an item
		case strings.TrimSpace(line) == "":
			if inList {
				inList = false
				para.Reset()
			}
		default:
			inList = false
			para.WriteString(line + " ")
		}
	}
	if len(lists["reload"]) == 0 || len(lists["restart"]) == 0 {
		t.Fatalf("found no list of keys a reload applies or of keys that need a restart: %v", lists)
	}
	return lists
}

// TestDocReloadKeys: the section on SIGHUP puts every key either in the
// list of those a reload applies or in the list of those that need a
// restart, so that an administrator knows what a reload does with it.
func TestDocReloadKeys(t *testing.T) {
	keys := allConfigKeys(t)
	lists := docReloadLists(t, keys)
	listed := func(kind, k string) bool { return docListed(lists[kind], k) }
	for _, k := range sortedKeys(keys) {
		if keys[k] == kindMapping {
			continue
		}
		reload, restart := listed("reload", k), listed("restart", k)
		switch {
		case !reload && !restart:
			t.Errorf("docs/configuration.md, Signals, reload and shutdown: %s is neither among the keys a reload applies nor among those that need a restart", k)
		case reload && restart:
			t.Errorf("docs/configuration.md, Signals, reload and shutdown: %s is both among the keys a reload applies and among those that need a restart", k)
		}
	}
}

// TestDocReloadBehaviour: what the section on SIGHUP says of each key is
// what the daemon does: a reload that changes a key listed as needing a
// restart warns with that key (restartOnly), and one that changes a key
// listed as applied at once does not.
func TestDocReloadBehaviour(t *testing.T) {
	keys := allConfigKeys(t)
	lists := docReloadLists(t, keys)
	base := func() *config.Config {
		c := config.Default()
		c.Filters = []config.Filter{{Type: "headerfix"}}
		return c
	}
	// One change per key; a key without one fails the test, so that a
	// new key gets one.
	change := map[string]func(c *config.Config){
		"listen":                     func(c *config.Config) { c.Listen = append(c.Listen, config.Listener{Address: "inet:127.0.0.1:7359"}) },
		"listen[].address":           func(c *config.Config) { c.Listen[0].Address = "inet:127.0.0.1:7359" },
		"listen[].mode":              func(c *config.Config) { c.Listen[0] = config.Listener{Address: "unix:/run/s.sock", Mode: 0o600} },
		"listen[].group":             func(c *config.Config) { c.Listen[0] = config.Listener{Address: "unix:/run/s.sock", Group: "postfix"} },
		"log.format":                 func(c *config.Config) { c.Log.Format = "json" },
		"log.level":                  func(c *config.Config) { c.Log.Level = "debug" },
		"metrics.listen":             func(c *config.Config) { c.Metrics.Listen = "127.0.0.1:7359" },
		"shutdown_timeout":           func(c *config.Config) { c.ShutdownTimeout = time.Second },
		"max_connections":            func(c *config.Config) { c.MaxConnections = 2000 },
		"state_dir":                  func(c *config.Config) { c.StateDir = "/srv/sluice" },
		"body.memory_limit":          func(c *config.Config) { c.Body.MemoryLimit = 0 },
		"body.temp_dir":              func(c *config.Config) { c.Body.TempDir = "/srv/tmp" },
		"filter_defaults.timeout":    func(c *config.Config) { c.FilterDefaults.Timeout = time.Second },
		"filter_defaults.on_failure": func(c *config.Config) { c.FilterDefaults.OnFailure = "tempfail" },
		"filters":                    func(c *config.Config) { c.Filters = nil },
		"filters[].type":             func(c *config.Config) { c.Filters[0].Type = "senders" },
		"filters[].name":             func(c *config.Config) { c.Filters[0].Name = "repair" },
		"filters[].timeout":          func(c *config.Config) { c.Filters[0].Timeout = time.Second },
		"filters[].on_failure":       func(c *config.Config) { c.Filters[0].OnFailure = "tempfail" },
		"filters[].options":          func(c *config.Config) { c.Filters[0].Options = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"} },
	}
	listed := func(kind, k string) bool { return docListed(lists[kind], k) }
	for _, k := range sortedKeys(keys) {
		if keys[k] == kindMapping {
			continue
		}
		f, ok := change[k]
		if !ok {
			t.Errorf("no change for config key %s: add one to this test", k)
			continue
		}
		old, cur := base(), base()
		f(cur)
		if reflect.DeepEqual(old, cur) {
			t.Errorf("the change for %s changes nothing", k)
			continue
		}
		warned := restartOnly(old, cur)
		switch {
		case listed("restart", k) && len(warned) == 0:
			t.Errorf("docs/configuration.md says %s needs a restart, but a reload that changes it applies it without a warning", k)
		case listed("reload", k) && len(warned) > 0:
			t.Errorf("docs/configuration.md says a reload applies %s at once, but a reload that changes it warns that %v need a restart", k, warned)
		}
		for _, w := range warned {
			if !lists["restart"][w] {
				t.Errorf("a reload warns that %s needs a restart, a key docs/configuration.md does not list as such", w)
			}
		}
	}
}

// describingRegisterer records the name of every metric described by the
// collectors registered through it, so that metrics without any series
// yet (a vector never used) are known too, then registers them for real.
type describingRegisterer struct {
	reg   *prometheus.Registry
	names []string
	help  map[string]string // metric name to help text
	err   error
}

var (
	descName = regexp.MustCompile(`fqName: "([^"]+)"`)
	descHelp = regexp.MustCompile(`help: ("(?:[^"\\]|\\.)*")`)
)

func (r *describingRegisterer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	for d := range ch {
		m := descName.FindStringSubmatch(d.String())
		if m == nil {
			r.err = fmt.Errorf("cannot read the metric name from %s", d)
			continue
		}
		r.names = append(r.names, m[1])
		if h := descHelp.FindStringSubmatch(d.String()); h != nil {
			help, err := strconv.Unquote(h[1])
			if err != nil {
				r.err = fmt.Errorf("cannot read the help text from %s: %v", d, err)
				continue
			}
			if r.help == nil {
				r.help = map[string]string{}
			}
			r.help[m[1]] = help
		}
	}
	return r.reg.Register(c)
}

func (r *describingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *describingRegisterer) Unregister(c prometheus.Collector) bool { return r.reg.Unregister(c) }

// registeredMetric is what the registry knows of one sluice metric.
type registeredMetric struct {
	typ      string          // "counter", "gauge", "histogram"; "" if no series
	labels   map[string]bool // label names of its series
	help     string
	gathered bool
}

// sluiceMetrics creates the daemon's metrics on a fresh registry, feeds
// every observer method once so that vectors have series, and returns
// what was registered, without the Go runtime and process metrics.
func sluiceMetrics(t *testing.T) map[string]*registeredMetric {
	t.Helper()
	rec := &describingRegisterer{reg: prometheus.NewRegistry()}
	m := metrics.New(rec, "test", runtime.Version())
	if rec.err != nil {
		t.Fatal(rec.err)
	}
	m.SessionOpened()
	m.SessionClosed()
	m.SessionPanic()
	m.ConnectionDropped(milter.DropMaxSessions)
	m.MessageDone(milter.Summary{Action: filters.Accept, Duration: time.Millisecond})
	m.FilterDecided(filters.Decision{Filter: "f", Stage: filters.StageEOM, Verdict: filters.Verdict{Action: filters.Continue}, Duration: time.Millisecond, Failure: filters.FailureTimeout})
	m.Reloaded(false)
	m.BayesClassified("bayes", "spam", 0.99, time.Millisecond)
	m.BayesSkipped("bayes", bayes.SkipSize)
	m.BayesSkipped("bayes", bayes.SkipAuthenticated)
	m.BayesAutolearned("bayes", "spam")
	m.BayesAutolearnFailed("bayes", "ham")
	m.BayesStore("bayes", classifier.Stats{Tokens: 10, Bytes: 4096})
	m.BayesStoreUnavailable("bayes")
	m.BayesRedisRoundTrip("bayes", "lookup", time.Millisecond, errors.New("redis down"))
	m.BayesRedisPool("bayes", classifier.RedisPoolStats{Hits: 1, Total: 2, Idle: 1})
	m.ArchiveAppended("archive", "spam", 4096, time.Millisecond)
	m.ArchiveFailed("archive", "spam")
	m.BayesNgram("bayes", 3, 4)
	m.BayesImportIncomplete("bayes", true)
	m.DNSBLLookup("dnsbl", "zen.example", "listed")
	m.DNSBLListed("dnsbl", "zen.example", "127.0.0.2")
	m.DNSBLError("dnsbl", "zen.example", dnsbl.KindTimeout)
	m.DNSBLCacheHit("dnsbl", "zen.example")
	m.DNSBLQuery("dnsbl", "zen.example", time.Millisecond)
	m.DNSBLHealth("dnsbl", "zen.example", true)
	m.HeaderfixFound("headerfix", "split_cr", 1)
	m.HeaderfixMessage("headerfix", "fix")
	m.SenderRulesLoaded("senders", 2, []string{"*.example"})
	m.SenderRulesReloaded("senders", false)
	m.SenderWatchNewDomain("senders", "*.example")

	out := map[string]*registeredMetric{}
	for _, n := range rec.names {
		if strings.HasPrefix(n, "go_") || strings.HasPrefix(n, "process_") {
			continue
		}
		out[n] = &registeredMetric{labels: map[string]bool{}, help: rec.help[n]}
	}
	families, err := rec.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		rm, ok := out[fam.GetName()]
		if !ok {
			continue
		}
		rm.gathered = true
		rm.typ = strings.ToLower(fam.GetType().String())
		for _, s := range fam.GetMetric() {
			for _, lp := range s.GetLabel() {
				rm.labels[lp.GetName()] = true
			}
		}
	}
	if _, ok := out["sluice_messages_total"]; !ok {
		t.Fatalf("metrics.New registered no sluice_messages_total; registered: %v", rec.names)
	}
	return out
}

// TestDocMetrics: every metric metrics.New registers is documented in
// docs/metrics.md with its type and labels, every documented metric is
// registered, and every sluice_* name mentioned in README.md or docs/
// exists.
func TestDocMetrics(t *testing.T) {
	reg := sluiceMetrics(t)
	text := readDoc(t, "docs/metrics.md")

	type docMetric struct {
		line         int
		typ, labels  string
		typCol, lCol bool
	}
	doc := map[string]docMetric{}
	for _, tbl := range mdTables(text) {
		if tbl.column("Metric") != 0 {
			continue
		}
		tc, lc := tbl.column("Type"), tbl.column("Labels")
		for _, r := range tbl.rows {
			name, ok := onlyCode(r.cell(0))
			if !ok {
				t.Errorf("docs/metrics.md:%d: first cell %q is not a metric name in backticks", r.line, r.cell(0))
				continue
			}
			if prev, dup := doc[name]; dup {
				t.Errorf("docs/metrics.md:%d: %s is documented twice (also line %d)", r.line, name, prev.line)
			}
			doc[name] = docMetric{line: r.line, typ: r.cell(tc), labels: r.cell(lc), typCol: tc >= 0, lCol: lc >= 0}
		}
	}

	for _, name := range sortedKeys(reg) {
		d, ok := doc[name]
		if !ok {
			t.Errorf("docs/metrics.md does not document %s: add a row to a table whose first column is Metric", name)
			continue
		}
		rm := reg[name]
		if !rm.gathered {
			// Without a series its type and labels cannot be compared
			// with the doc: feed it in sluiceMetrics.
			t.Errorf("%s has no series after feeding the observer methods in sluiceMetrics; call the method that sets it there", name)
			continue
		}
		if !d.typCol || d.typ != rm.typ {
			t.Errorf("docs/metrics.md:%d: %s is a %s, the doc says %q", d.line, name, rm.typ, d.typ)
		}
		docLabels := map[string]bool{}
		for _, l := range codeSpans(d.labels) {
			docLabels[l] = true
		}
		if !d.lCol || !reflect.DeepEqual(docLabels, rm.labels) {
			t.Errorf("docs/metrics.md:%d: %s has labels %v, the doc lists %v", d.line, name, sortedKeys(rm.labels), sortedKeys(docLabels))
		}
	}
	for _, name := range sortedKeys(doc) {
		if _, ok := reg[name]; !ok {
			t.Errorf("docs/metrics.md:%d documents %s, which metrics.New does not register", doc[name].line, name)
		}
	}

	// Names in prose, queries and alert rules, anywhere in the docs.
	mention := regexp.MustCompile(`\bsluice_[a-z0-9_]+`)
	for _, f := range docFiles(t) {
		for i, line := range strings.Split(readDoc(t, f), "\n") {
			for _, n := range mention.FindAllString(line, -1) {
				if !knownSeries(reg, n) {
					t.Errorf("%s:%d mentions %s, which metrics.New does not register", f, i+1, n)
				}
			}
		}
	}
}

// docMetricMeanings returns the Meaning cell of every metric row of
// docs/metrics.md.
func docMetricMeanings(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, tbl := range mdTables(readDoc(t, "docs/metrics.md")) {
		if tbl.column("Metric") != 0 {
			continue
		}
		mc := tbl.column("Meaning")
		for _, r := range tbl.rows {
			if name, ok := onlyCode(r.cell(0)); ok {
				out[name] = r.cell(mc)
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("docs/metrics.md has no metric with a Meaning cell")
	}
	return out
}

// helpValues matches a list of label values in a help text, such as
// "(ok, failed)" or "kind (error, panic, timeout)".
var helpValues = regexp.MustCompile(`\(([a-z_]+(?:, [a-z_]+)+)\)`)

// TestDocMetricValues: the label values a metric's help text lists, and
// those the code defines for the metrics of the pipeline, are each named
// in backticks in the metric's row of docs/metrics.md.
func TestDocMetricValues(t *testing.T) {
	reg := sluiceMetrics(t)
	meaning := docMetricMeanings(t)
	values := map[string][]string{}
	for _, name := range sortedKeys(reg) {
		for _, m := range helpValues.FindAllStringSubmatch(reg[name].help, -1) {
			values[name] = append(values[name], strings.Split(m[1], ", ")...)
		}
	}
	code := codeLabelValues(t)
	decisions := code["sluice_filter_decisions_total"]
	values["sluice_filter_decisions_total"] = append(decisions["stage"], decisions["verdict"]...)
	values["sluice_filter_failures_total"] = append(values["sluice_filter_failures_total"], code["sluice_filter_failures_total"]["kind"]...)
	values["sluice_dnsbl_errors_total"] = code["sluice_dnsbl_errors_total"]["kind"]
	if len(values) < 10 {
		t.Fatalf("found label values for only %d metrics: %v", len(values), values)
	}
	for _, name := range sortedKeys(values) {
		named := map[string]bool{}
		for _, v := range codeSpans(meaning[name]) {
			named[v] = true
		}
		for _, v := range values[name] {
			if !named[v] {
				t.Errorf("docs/metrics.md: the row of %s does not name its label value `%s` (help: %q)", name, v, reg[name].help)
			}
		}
	}
}

// labelValue matches what may be a label value in the Meaning cell of a
// metric, as opposed to a signal name or a query.
var labelValue = regexp.MustCompile(`^[a-z_]+$`)

// TestDocMetricsAtStart: the series that docs/metrics.md says exist from
// start-up, at 0, are exactly those a fresh metrics.New has, and none of
// them is labelled with a filter ("series labelled with a filter appear
// at the filter's first call").
func TestDocMetricsAtStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics.New(reg, "test", runtime.Version())
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{} // metric to the values of its one label
	for _, fam := range families {
		name := fam.GetName()
		if !strings.HasPrefix(name, "sluice_") {
			continue
		}
		for _, s := range fam.GetMetric() {
			for _, lp := range s.GetLabel() {
				if lp.GetName() == "filter" {
					t.Errorf("%s{filter=%q} exists at start-up; docs/metrics.md says series with a filter appear at its first call", name, lp.GetValue())
				}
			}
			if c := s.GetCounter(); c != nil && c.GetValue() != 0 {
				t.Errorf("%s starts at %v, not 0", name, c.GetValue())
			}
			if len(s.GetLabel()) == 1 && name != "sluice_build_info" {
				got[name] = append(got[name], s.GetLabel()[0].GetValue())
			}
		}
	}
	text := readDoc(t, "docs/metrics.md")
	para := regexp.MustCompile("Series for every `verdict` of `sluice_messages_total`, both `result`s of\\s+`sluice_config_reloads_total` and both `reason`s of\\s+`sluice_connections_dropped_total` exist from\\s+start-up with value 0")
	if !para.MatchString(text) {
		t.Fatal("docs/metrics.md no longer says which series exist from start-up; update this test with it")
	}
	meaning := docMetricMeanings(t)
	for _, name := range []string{"sluice_messages_total", "sluice_config_reloads_total", "sluice_connections_dropped_total"} {
		var doc []string
		for _, v := range codeSpans(meaning[name]) {
			if labelValue.MatchString(v) && !strings.HasPrefix(v, "sluice_") {
				doc = append(doc, v)
			}
		}
		sort.Strings(doc)
		// A value may be named twice ("max_connections" is a reason
		// and the key it stands for).
		doc = slices.Compact(doc)
		sort.Strings(got[name])
		if !reflect.DeepEqual(doc, got[name]) {
			t.Errorf("docs/metrics.md names the values %v for %s, but the series at start-up are %v", doc, name, got[name])
		}
		delete(got, name)
	}
	for _, name := range sortedKeys(got) {
		t.Errorf("%s has series at start-up (%v), which docs/metrics.md does not say", name, got[name])
	}
}

// codeLabelValues returns the values the code gives the labels of the
// metrics that have a fixed set of them, by metric and label: those of
// the series a fresh metrics.New has from start-up, and those the
// pipeline, the dnsbl and the headerfix filters define.
func codeLabelValues(t *testing.T) map[string]map[string][]string {
	t.Helper()
	out := map[string]map[string][]string{}
	add := func(metric, label string, values ...string) {
		if out[metric] == nil {
			out[metric] = map[string][]string{}
		}
		for _, v := range values {
			if !slices.Contains(out[metric][label], v) {
				out[metric][label] = append(out[metric][label], v)
			}
		}
	}
	reg := prometheus.NewRegistry()
	metrics.New(reg, "test", runtime.Version())
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		if !strings.HasPrefix(fam.GetName(), "sluice_") || fam.GetName() == "sluice_build_info" {
			continue
		}
		for _, s := range fam.GetMetric() {
			for _, lp := range s.GetLabel() {
				add(fam.GetName(), lp.GetName(), lp.GetValue())
			}
		}
	}
	for st := filters.Stage(0); !strings.HasPrefix(st.String(), "stage("); st++ {
		add("sluice_filter_decisions_total", "stage", st.String())
		add("sluice_filter_duration_seconds", "stage", st.String())
	}
	for _, a := range filters.Actions() {
		add("sluice_filter_decisions_total", "verdict", a.String())
	}
	add("sluice_filter_failures_total", "kind", filters.FailureError, filters.FailurePanic, filters.FailureTimeout)
	add("sluice_dnsbl_errors_total", "kind", dnsbl.KindTimeout, dnsbl.KindNetwork, dnsbl.KindServfail, dnsbl.KindRefused, dnsbl.KindRcode, dnsbl.KindListRefused, dnsbl.KindBadAnswer, dnsbl.KindBusy, dnsbl.KindListsAll)
	for _, k := range headerfix.Kinds() {
		add("sluice_headerfix_repairs_total", "kind", k.String())
	}
	if len(out["sluice_messages_total"]["verdict"]) < 5 || len(out["sluice_dnsbl_errors_total"]["kind"]) < 5 {
		t.Fatalf("found too few label values: %v", out)
	}
	return out
}

var groupedBy = regexp.MustCompile(`\bby\s*\(([^)]*)\)`)

// TestDocMonitoringLabelValues: a dashboard panel or an alert rule that
// groups by a label and lists that label's values in its description
// ("by list and kind: timeout, network, ...") lists all of them, so that
// the text does not leave out series the panel shows or the alert
// fires on.
func TestDocMonitoringLabelValues(t *testing.T) {
	values := codeLabelValues(t)
	type described struct{ where, text, expr string }
	var all []described
	for _, p := range loadDashboard(t).Panels {
		for _, tg := range p.Targets {
			all = append(all, described{"docs/grafana-dashboard.json, panel " + p.Title, p.Description, tg.Expr})
		}
	}
	for _, file := range monitoringRules {
		for _, r := range monitoringRuleList(t, file) {
			all = append(all, described{filepath.Base(file) + ", alert " + r.Alert, r.Annotations["summary"] + " " + r.Annotations["description"], r.Expr})
		}
	}
	checked := 0
	for _, d := range all {
		var labels []string
		for _, m := range groupedBy.FindAllStringSubmatch(d.expr, -1) {
			for _, l := range strings.Split(m[1], ",") {
				labels = append(labels, strings.TrimSpace(l))
			}
		}
		for _, metric := range regexp.MustCompile(`\bsluice_[a-z0-9_]+`).FindAllString(d.expr, -1) {
			metric = strings.TrimSuffix(strings.TrimSuffix(metric, "_bucket"), "_count")
			for _, label := range labels {
				vs := values[metric][label]
				// "by kind: ..." introduces the list of values.
				if len(vs) == 0 || !regexp.MustCompile(`\b`+regexp.QuoteMeta(label)+`:`).MatchString(d.text) {
					continue
				}
				var named, missing []string
				for _, v := range vs {
					if regexp.MustCompile(`(^|[^a-z_])` + regexp.QuoteMeta(v) + `($|[^a-z_])`).MatchString(d.text) {
						named = append(named, v)
					} else {
						missing = append(missing, v)
					}
				}
				checked++
				if len(missing) > 0 {
					t.Errorf("%s: the description lists the values %v of %s of %s, but not %v: %q", d.where, named, label, metric, missing, d.text)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no description lists the values of a label it groups by; is the pattern broken?")
	}
}

// knownSeries reports whether name is a registered metric or one of the
// series a registered histogram exposes.
func knownSeries(reg map[string]*registeredMetric, name string) bool {
	if _, ok := reg[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if rm, ok := reg[strings.TrimSuffix(name, suffix)]; ok && strings.HasSuffix(name, suffix) && rm.typ == "histogram" {
			return true
		}
	}
	return false
}

// docFiles lists README.md and the Markdown files of docs/, relative to
// the repository root.
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md"}
	matches, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range matches {
		rel, err := filepath.Rel(repoRoot, m)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, filepath.ToSlash(rel))
	}
	return files
}

// TestDocReadme: the README names the two commands a newcomer needs.
func TestDocReadme(t *testing.T) {
	readme := readDoc(t, "README.md")
	for _, want := range []string{"make run", "make test"} {
		if !regexp.MustCompile(`\b` + want + `\b`).MatchString(readme) {
			t.Errorf("README.md does not mention %q", want)
		}
	}
	// The commands it names must exist in the Makefile.
	makefile := readDoc(t, "Makefile")
	for _, target := range []string{"run", "test"} {
		if !regexp.MustCompile(`(?m)^` + target + `:`).MatchString(makefile) {
			t.Errorf("Makefile has no %q target, but README.md tells people to run it", target)
		}
	}
}

var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestDocLinks: every relative link in README.md and docs/ points at a
// file that exists, and a link with a #fragment into a Markdown file at a
// heading that exists.
func TestDocLinks(t *testing.T) {
	links := 0
	for _, f := range docFiles(t) {
		text := readDoc(t, f)
		for i, line := range strings.Split(stripCode(text), "\n") {
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				links++
				path, frag, _ := strings.Cut(target, "#")
				file := f
				if path != "" {
					file = filepath.ToSlash(filepath.Join(filepath.Dir(f), path))
				}
				if _, err := os.Stat(filepath.Join(repoRoot, file)); err != nil {
					t.Errorf("%s:%d: link %q: %s does not exist", f, i+1, target, file)
					continue
				}
				if frag == "" || !strings.HasSuffix(file, ".md") {
					continue
				}
				if !headingSlugs(readDoc(t, file))[frag] {
					t.Errorf("%s:%d: link %q: %s has no heading #%s", f, i+1, target, file, frag)
				}
			}
		}
	}
	if links == 0 {
		t.Fatal("no links found in README.md and docs/; is the link pattern broken?")
	}
}

// TestDocLinksInPackage: the Debian package installs the documentation in
// /usr/share/doc/sluice (testdata/deb/build.sh), and every relative link
// of the pages it installs points at a file it installs too.
func TestDocLinksInPackage(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("bash", filepath.Join(repoRoot, "testdata/deb/build.sh"), "--docs-only", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build.sh --docs-only: %v\n%s", err, out)
	}
	pages, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil || len(pages) < 5 {
		t.Fatalf("staged pages: %v, %v", pages, err)
	}
	links := 0
	for _, page := range pages {
		text, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(stripCode(string(text)), "\n") {
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				path, _, _ := strings.Cut(m[1], "#")
				if path == "" || strings.Contains(path, "://") || strings.HasPrefix(path, "mailto:") {
					continue
				}
				links++
				if _, err := os.Stat(filepath.Join(dir, path)); err != nil {
					t.Errorf("%s:%d: link %q: the package does not install %s", filepath.Base(page), i+1, m[1], path)
				}
			}
		}
	}
	if links == 0 {
		t.Fatal("no links found in the staged pages; is the link pattern broken?")
	}
}

// stripCode blanks fenced code blocks and code spans, which may contain
// text that only looks like a link, keeping line numbers.
func stripCode(text string) string {
	lines := strings.Split(text, "\n")
	inFence := false
	for i, line := range lines {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			lines[i] = ""
			continue
		}
		if inFence {
			lines[i] = ""
			continue
		}
		lines[i] = codeSpan.ReplaceAllString(line, "``")
	}
	return strings.Join(lines, "\n")
}

// headingSlugs returns the anchors GitHub generates for the headings of a
// Markdown text: lower case, punctuation dropped, spaces as hyphens, and
// -1, -2... for repeats.
func headingSlugs(text string) map[string]bool {
	slugs := map[string]bool{}
	seen := map[string]int{}
	inFence := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			continue
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b bytes.Buffer
		for _, r := range strings.ToLower(title) {
			switch {
			case r == ' ':
				b.WriteByte('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 0x7f:
				b.WriteRune(r)
			}
		}
		slug := b.String()
		if n := seen[slug]; n > 0 {
			slugs[fmt.Sprintf("%s-%d", slug, n)] = true
		} else {
			slugs[slug] = true
		}
		seen[slug]++
	}
	return slugs
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestDocAlertTable: the alert table of docs/install.md ("Monitoring")
// lists every alert of the rule files in docs/alerts/, and no other.
func TestDocAlertTable(t *testing.T) {
	rules := map[string]bool{}
	for _, file := range monitoringRules {
		for _, r := range monitoringRuleList(t, file) {
			rules[r.Alert] = true
		}
	}
	if len(rules) < 10 {
		t.Fatalf("found only %d alerts in docs/alerts/", len(rules))
	}
	_, section, ok := strings.Cut(readDoc(t, "docs/install.md"), "\n## Monitoring\n")
	if !ok {
		t.Fatal(`docs/install.md has no section "Monitoring"`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	table := map[string]bool{}
	for _, tbl := range mdTables(section) {
		if tbl.column("Alert") != 0 {
			continue
		}
		for _, r := range tbl.rows {
			name, ok := onlyCode(r.cell(0))
			if !ok {
				t.Errorf("docs/install.md:%d: alert cell %q is not one code span", r.line, r.cell(0))
				continue
			}
			table[name] = true
		}
	}
	for _, a := range sortedKeys(rules) {
		if !table[a] {
			t.Errorf("docs/install.md: the alert table does not list %s, which docs/alerts/ has", a)
		}
	}
	for _, a := range sortedKeys(table) {
		if !rules[a] {
			t.Errorf("docs/install.md: the alert table lists %s, which no file of docs/alerts/ has", a)
		}
	}
}
