package headerfix

// These tests keep docs/headerfix.md true: its options table lists exactly
// the options of Config with the code's defaults, its metrics table names
// every kind and action the filter reports, and its configuration example
// builds a filter.

import (
	"bytes"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-mail/sluice/filters"
)

func readHeaderfixDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/headerfix.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// docRows returns the rows of the Markdown tables whose first header cell
// is first, as cells, outside code blocks.
func docRows(text, first string) [][]string {
	var rows [][]string
	inFence, inTable, header := false, false, false
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(line, "|") {
			inTable = false
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if !inTable {
			inTable, header = true, cells[0] == first
			continue
		}
		if header && !strings.HasPrefix(cells[0], "---") {
			rows = append(rows, cells)
		}
	}
	return rows
}

var docCode = regexp.MustCompile("`([^`]*)`")

func TestDocOptions(t *testing.T) {
	rows := docRows(readHeaderfixDoc(t), "Option")
	doc := map[string]string{}
	for _, r := range rows {
		m := docCode.FindStringSubmatch(r[0])
		if m == nil || len(r) < 3 {
			t.Fatalf("option row %q: want a name in backticks and a default", r)
		}
		def := docCode.FindStringSubmatch(r[2])
		if def == nil {
			t.Fatalf("option %s: default %q is not in backticks", m[1], r[2])
		}
		doc[m[1]] = def[1]
	}
	var keys []string
	ct := reflect.TypeFor[Config]()
	for i := 0; i < ct.NumField(); i++ {
		keys = append(keys, ct.Field(i).Tag.Get("yaml"))
	}
	docKeys := slices.Sorted(func(yield func(string) bool) {
		for k := range doc {
			if !yield(k) {
				return
			}
		}
	})
	slices.Sort(keys)
	if !reflect.DeepEqual(keys, docKeys) {
		t.Errorf("docs/headerfix.md documents options %v, Config has %v", docKeys, keys)
	}
	for key, want := range map[string]string{
		"policy":       DefaultPolicy.String(),
		"reply":        DefaultReply,
		"trace_header": DefaultTraceHeader,
	} {
		if doc[key] != want {
			t.Errorf("docs/headerfix.md: default of %s is %q, the code's is %q", key, doc[key], want)
		}
	}
}

func TestDocMetricValues(t *testing.T) {
	rows := docRows(readHeaderfixDoc(t), "Metric")
	meaning := map[string]string{}
	for _, r := range rows {
		if m := docCode.FindStringSubmatch(r[0]); m != nil && len(r) >= 4 {
			meaning[m[1]] = r[3]
		}
	}
	words := func(metric string) []string {
		var out []string
		for _, m := range docCode.FindAllStringSubmatch(meaning[metric], -1) {
			out = append(out, m[1])
		}
		return out
	}
	kinds := words("sluice_headerfix_repairs_total")
	for _, k := range Kinds() {
		if !slices.Contains(kinds, k.String()) {
			t.Errorf("docs/headerfix.md: sluice_headerfix_repairs_total does not name kind %s", k)
		}
	}
	actions := words("sluice_headerfix_messages_total")
	for _, a := range []string{"fix", "tag", "reject", "too_many"} {
		if !slices.Contains(actions, a) {
			t.Errorf("docs/headerfix.md: sluice_headerfix_messages_total does not name action %s", a)
		}
	}
}

// The "# sluice.yml" examples configure filters that New accepts, with no
// option it does not know.
func TestDocExample(t *testing.T) {
	text := readHeaderfixDoc(t)
	n := 0
	for _, block := range strings.Split(text, "```yaml\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		if !strings.HasPrefix(block, "# sluice.yml") {
			continue
		}
		var doc struct {
			Filters []struct {
				Type    string    `yaml:"type"`
				Options yaml.Node `yaml:"options"`
			} `yaml:"filters"`
		}
		if err := yaml.Unmarshal([]byte(block), &doc); err != nil {
			t.Fatalf("example: %v", err)
		}
		for _, f := range doc.Filters {
			if f.Type != "headerfix" {
				continue
			}
			n++
			var buf bytes.Buffer
			if err := yaml.NewEncoder(&buf).Encode(&f.Options); err != nil {
				t.Fatal(err)
			}
			dec := yaml.NewDecoder(&buf)
			dec.KnownFields(true)
			var cfg Config
			if err := dec.Decode(&cfg); err != nil {
				t.Errorf("example options: %v", err)
				continue
			}
			if _, err := New(filters.Env{}, cfg); err != nil {
				t.Errorf("example options: %v", err)
			}
		}
	}
	if n == 0 {
		t.Error("docs/headerfix.md has no \"# sluice.yml\" example with a headerfix filter")
	}
}
