package dnsbl

import (
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDocOptions keeps docs/dnsbl.md true: every option of Config has a
// row in its options table and every row is an option, and the documented
// defaults are the code's.
func TestDocOptions(t *testing.T) {
	raw, err := os.ReadFile("../../docs/dnsbl.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := optionRows(string(raw))
	if len(rows) == 0 {
		t.Fatal("docs/dnsbl.md has no options table (a table whose first column is Option)")
	}
	keys := map[string]bool{}
	optionKeys(reflect.TypeOf(Config{}), "", keys)
	for _, k := range []string{"servers", "score.threshold", "zones", "zones[].codes"} {
		if !keys[k] {
			t.Fatalf("walking Config did not find %s: %v", k, keys)
		}
	}
	for k := range keys {
		if _, ok := rows[k]; !ok {
			t.Errorf("docs/dnsbl.md does not document option %s", k)
		}
	}
	for k := range rows {
		if !keys[k] {
			t.Errorf("docs/dnsbl.md documents %s, which is not an option", k)
		}
	}
	want := map[string]string{
		"timeout":            DefaultTimeout.String(),
		"attempts":           strconv.Itoa(DefaultAttempts),
		"transport":          "udp",
		"max_in_flight":      strconv.Itoa(DefaultMaxInFlight),
		"cache_size":         strconv.Itoa(DefaultCacheSize),
		"max_ttl":            "1h",
		"failure_ttl":        "30s",
		"probe_interval":     "5m",
		"skip_private":       "true",
		"skip_authenticated": "true",
		"ip_stage":           "connect",
		"header":             DefaultHeader,
		"score.header":       DefaultScoreHeader,
		"score.threshold":    "0",
		"score.action":       "reject",
		"score.reply":        DefaultScoreReply,
		"zones[].type":       "ip",
		"zones[].family":     "any",
		"zones[].action":     "reject",
		"zones[].reply":      DefaultIPRejectReply,
		"zones[].txt":        "false",
		"zones[].score":      "1",
		"zones[].probe":      "true",
	}
	// The short forms the table uses for durations.
	if DefaultMaxTTL.String() != "1h0m0s" || DefaultFailureTTL.String() != "30s" || DefaultProbeInterval.String() != "5m0s" {
		t.Fatal("a duration default changed; update the table and this test")
	}
	for k, v := range want {
		spans := codeSpans(rows[k])
		if len(spans) == 0 || spans[0] != v {
			t.Errorf("docs/dnsbl.md: the default of %s is documented as %q, the code has %q", k, rows[k], v)
		}
	}
	// Every default reply is quoted in the text.
	for _, r := range []string{DefaultIPRejectReply, DefaultDomainReject, DefaultScoreReply} {
		if !strings.Contains(strings.Join(strings.Fields(string(raw)), " "), r) {
			t.Errorf("docs/dnsbl.md does not quote the default reply %q", r)
		}
	}
}

// optionKeys walks the yaml tags of a config type: "timeout",
// "score.header", "zones", "zones[].zone"...
func optionKeys(t reflect.Type, prefix string, keys map[string]bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		if prefix != "" {
			name = prefix + "." + name
		}
		switch ft := f.Type; {
		case ft.Kind() == reflect.Struct:
			optionKeys(ft, name, keys)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			keys[name] = true
			optionKeys(ft.Elem(), name+"[]", keys)
		default:
			keys[name] = true
		}
	}
}

var codeSpan = regexp.MustCompile("`([^`]*)`")

func codeSpans(s string) []string {
	var out []string
	for _, m := range codeSpan.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// optionRows maps the option of each row of the options table to its
// Default cell.
func optionRows(text string) map[string]string {
	rows := map[string]string{}
	inTable, defCol := false, -1
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			inTable = false
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		switch {
		case !inTable:
			inTable, defCol = cells[0] == "Option", -1
			for i, c := range cells {
				if c == "Default" {
					defCol = i
				}
			}
			if !inTable {
				inTable = true
				defCol = -2 // another table: skip its rows
			}
		case defCol < 0 || strings.HasPrefix(cells[0], "---"):
		default:
			if spans := codeSpans(cells[0]); len(spans) == 1 && len(cells) > defCol {
				rows[spans[0]] = cells[defCol]
			}
		}
	}
	return rows
}
