package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/cmd/sluice/internal/config"
	"github.com/sluice-mail/sluice/filters/filtertest"
)

// A broken file is reported at the line that is wrong, the one an
// administrator has to edit, and at the column of the mistake where the
// line shows it. yaml.v3 gives the line where the construct
// around the mistake starts (the mapping, the key), for some errors the
// line before that, and on the first line none at all.
func TestSyntaxErrorLines(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"tab indenting a key", "log:\n  level: info\n\tformat: text\n", "sluice.yml:3:1: "},
		{"tab as the only indentation", "metrics:\n  listen: \"\"\nlog:\n\tlevel: info\n", "sluice.yml:4:1: "},
		{"tab in a list", "state_dir: /x\nlisten:\n\t- address: inet:127.0.0.1:1\n", "sluice.yml:3:1: "},
		{"unclosed double quote", "log:\n  format: text\n  level: \"info\nstate_dir: /x\n", "sluice.yml:3:10: "},
		{"unclosed single quote", "log:\n  format: text\n  level: 'info\n", "sluice.yml:3:10: "},
		{"text after a quote", "log:\n  format: text\n  level: \"info\"x\n", "sluice.yml:3:16: "},
		{"key indented less", "log:\n  level: info\n format: text\n", "sluice.yml:3:2: "},
		{"key indented more", "log:\n  level: info\n   format: text\n", "sluice.yml:3:10: "},
		{"section indented less", "metrics:\n  listen: \"\"\nlog:\n    level: info\n  format: text\n", "sluice.yml:5:3: "},
		{"list item indented less", "filters:\n  - type: script\n  options:\n    header: X\n", "sluice.yml:3:10: "},
		{"unclosed flow list", "state_dir: /x\nlisten: [\n", "sluice.yml:2:9: "},
		{"unclosed flow mapping", "state_dir: /x\nlog: {level: info\n", "sluice.yml:2: "},
		{"two colons on line 1", "a: b: c\n", "sluice.yml:1:5: "},
		{"two colons later", "log:\n  level: info\n  format: a: b\n", "sluice.yml:3:12: "},
		{"unknown anchor", "log:\n  level: info\n  format: *fmt\n", "sluice.yml:3:14: "},
		{"duplicate key", "log:\n  level: info\n  level: debug\n", "sluice.yml:3: mapping key \"level\" already defined at line 2"},
		{"duplicate section", "log:\n  level: info\nstate_dir: /x\nlog:\n  format: text\n", "sluice.yml:4: mapping key \"log\" already defined at line 1"},
		{"duplicate key in a filter", "filters:\n  - type: script\n    name: a\n    name: b\n", "sluice.yml:4: mapping key \"name\" already defined at line 3"},
		// yaml.v3's messages for these two say little about the mistake.
		{"tab hint", "log:\n\tlevel: info\n", "sluice.yml:2:1: found character that cannot start any token (a tab: YAML indents with spaces only)"},
		{"quote hint", "log:\n  level: \"info\n", "sluice.yml:2:10: found unexpected end of stream (a quote on this line is not closed)"},
		{"broken second document", "log:\n  level: info\n---\nlog:\n\tlevel: x\n", "sluice.yml:5:1: "},
		// A byte that is no UTF-8 is one column: the search for the
		// column once sliced the line past its end there, and panicked.
		{"no UTF-8 at the end of line 1", "000000\x8a", "sluice.yml:1:7: invalid leading UTF-8 octet"},
		{"no UTF-8 in a value", "log:\n  level: \xe9\"info\n", "sluice.yml:2:"},
		// The mistakes of type and key, for completeness: these never
		// went through yaml.v3's syntax errors.
		{"string for a duration", "log:\n  level: info\nshutdown_timeout: soon\n", "sluice.yml:3: shutdown_timeout: "},
		{"list for a mapping", "state_dir: /x\nbody:\n  - memory_limit: 1MiB\n", "sluice.yml:3: body: want a mapping"},
		{"unknown key", "log:\n  level: info\n  formt: text\n", "sluice.yml:3: log.formt: unknown key, did you mean format? (known: format, level)"},
		{"unknown key swapped", "body:\n  memroy_limit: 1MiB\n", "sluice.yml:2: body.memroy_limit: unknown key, did you mean memory_limit? (known: memory_limit, temp_dir)"},
		{"unknown key far off", "log:\n  colour: red\n", "sluice.yml:2: log.colour: unknown key (known: format, level)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("sluice.yml", []byte(tc.src), filtertest.Registry())
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.src)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %q, want prefix %q\n%s", err, tc.want, tc.src)
			}
		})
	}
}

// A broken file nested deep in flow lists is reported within a second or
// so: yaml.v3 takes longer for each level open at every token, and the
// search for the place of the mistake, which decodes the file again up to
// each character of the line, took 80 seconds on these 50 KB, holding
// config check, the start, or a reload (and a stop signal behind it).
func TestSyntaxErrorDeepNestingBounded(t *testing.T) {
	src := "log: " + strings.Repeat("[", 9990) + strings.Repeat("1,", 20000) + "@\n"
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := config.Parse("deep.yml", []byte(src), filtertest.Registry())
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.HasPrefix(err.Error(), "deep.yml:1:") || !strings.Contains(err.Error(), "cannot start any token") {
			t.Errorf("error %v, want yaml.v3's at deep.yml:1", err)
		}
		t.Logf("reported after %v", time.Since(start))
	case <-time.After(10 * time.Second):
		t.Fatal("still looking for the place of the mistake after 10s")
	}
}

// A byte order mark past the start of the file (two files joined, the
// second saved with one) is reported as what it is, at its line: yaml.v3
// reads it as text, and the key after it was an "unknown key" whose
// name looked right. One at the very start is accepted.
func TestByteOrderMark(t *testing.T) {
	const second = "shutdown_timeout: 10s\n"
	for _, tc := range []struct {
		name, src, want string
	}{
		{"files joined", "log:\n  level: info\n\uFEFF" + second, "sluice.yml:3:1: a byte order mark (U+FEFF) in the middle of the file"},
		{"both files with one", "\uFEFFlog:\n  level: info\n\uFEFF" + second, "sluice.yml:3:1: a byte order mark (U+FEFF) in the middle of the file"},
		{"within a line", "log:\n  level: \uFEFFinfo\n", "sluice.yml:2:10: a byte order mark (U+FEFF) in the middle of the file"},
		{"at the start only", "\uFEFFlog:\n  level: debug\n" + second, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Parse("sluice.yml", []byte(tc.src), filtertest.Registry())
			if tc.want == "" {
				if err != nil || c.Log.Level != "debug" || c.ShutdownTimeout != 10*time.Second {
					t.Fatalf("Parse: %v, %+v; want the file read", err, c)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %v, want prefix %q", err, tc.want)
			}
		})
	}
}
