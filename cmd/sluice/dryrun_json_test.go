package main

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The report of a message that could not be tested says only that: its
// message and the error. headers_sent and body_sent false there would
// tell a script that the pipeline has the MTA send neither.
func TestDryRunJSONErrorReport(t *testing.T) {
	cfg := dryRunConfig(t, "state_dir: "+t.TempDir()+"\nfilters:\n  - type: headerfix\n")
	dir := t.TempDir()
	good := filepath.Join(dir, "a-good.eml")
	norcpt := filepath.Join(dir, "b-norcpt.eml")
	os.WriteFile(good, []byte(dryRunMessage("bob@lab.example")), 0o644)
	os.WriteFile(norcpt, []byte("From: alice@example.org\nSubject: to nobody\n\nHello.\n"), 0o644)
	r := runCLI(t, "", "test", "--config", cfg, "--format", "json", good, norcpt)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if r.code != testExitError || len(lines) != 2 {
		t.Fatalf("exit %d, want %d and two lines:\n%s%s", r.code, testExitError, r.stdout, r.stderr)
	}
	var tested, failed map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &tested); err != nil {
		t.Fatalf("%q: %v", lines[0], err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &failed); err != nil {
		t.Fatalf("%q: %v", lines[1], err)
	}
	if tested["headers_sent"] != true || tested["body_sent"] != false {
		t.Errorf("tested message: headers_sent %v, body_sent %v, want true and false: %s", tested["headers_sent"], tested["body_sent"], lines[0])
	}
	keys := slices.Sorted(maps.Keys(failed))
	if !slices.Equal(keys, []string{"error", "message"}) {
		t.Errorf("report of a message not tested has %q, want only error and message: %s", keys, lines[1])
	}
}

// Every field --format json can print is described where the docs
// describe the output, so that a script's author knows what it holds.
func TestDryRunJSONFieldsDocumented(t *testing.T) {
	doc := readDoc(t, "docs/install.md")
	start := strings.Index(doc, "- `--format json` prints")
	if start < 0 {
		t.Fatal("docs/install.md: no description of sluice test --format json")
	}
	section := doc[start:]
	if end := strings.Index(section, "\n- "); end > 0 {
		section = section[:end]
	}
	var fields []string
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct {
			return
		}
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			fields = append(fields, name)
			walk(f.Type)
		}
	}
	walk(reflect.TypeFor[testReport]())
	for _, name := range fields {
		if !strings.Contains(section, "`"+name+"`") {
			t.Errorf("docs/install.md does not describe the field %q of sluice test --format json", name)
		}
	}
}
