package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every result line of --format json has the fields the documented line
// shows, tokens and used, even at 0: a message none of whose tokens
// counted (new words only) is common, and a script reading
// line["used"] must not fail on it. A line of a message that could not
// be read has neither, nor a spamicity: it has no result.
func TestClassifyJSONResultAlwaysHasCounts(t *testing.T) {
	db := trainedDB(t)
	dir := t.TempDir()
	unknown := filepath.Join(dir, "unknown.eml")
	os.WriteFile(unknown, []byte("Subject: zqxjv\n\nqwzrtp vbnmkl\n"), 0o644)
	blank := filepath.Join(dir, "blank.eml")
	os.WriteFile(blank, []byte("\n\n"), 0o644)
	for _, explain := range []bool{false, true} {
		args := []string{"classify", "--db", db, "--format", "json", unknown, blank}
		if explain {
			args = append(args, "--explain")
		}
		r := runCLI(t, "", args...)
		lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if r.code != statusError || len(lines) != 2 {
			t.Fatalf("explain %v: %+v", explain, r)
		}
		var result, failed map[string]any
		if err := json.Unmarshal([]byte(lines[0]), &result); err != nil {
			t.Fatalf("%q: %v", lines[0], err)
		}
		if err := json.Unmarshal([]byte(lines[1]), &failed); err != nil {
			t.Fatalf("%q: %v", lines[1], err)
		}
		if result["verdict"] == "error" || failed["verdict"] != "error" {
			t.Fatalf("explain %v: verdicts %v and %v", explain, result["verdict"], failed["verdict"])
		}
		for _, key := range []string{"spamicity", "tokens", "used"} {
			if _, ok := result[key].(float64); !ok {
				t.Errorf("explain %v: result line %s: %q is %v, want a number", explain, lines[0], key, result[key])
			}
		}
		if result["used"] != 0.0 {
			t.Errorf("explain %v: %s: want used 0 (no token of the message was learned)", explain, lines[0])
		}
		for _, key := range []string{"spamicity", "tokens", "used"} {
			if _, ok := failed[key]; ok {
				t.Errorf("explain %v: error line %s has %q", explain, lines[1], key)
			}
		}
	}
}
