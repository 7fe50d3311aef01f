package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// journald cuts a line of standard error longer than its LineMax (48 KiB
// by default) into several entries, and the entry after a cut starts with
// whatever bytes follow it. A sender controls some values of the
// per-message line: one header From of 50 KB that a senders rule matches
// makes a reason that long, and hundreds of recipients an rcpts field
// longer still. Uncut, the sender could so place text of its choosing
// ("time=... level=INFO msg=message ... verdict=accept") at the start of
// an entry of its own. Each value is cut well below that, saying how much
// was left out, and the line stays one line, in both formats.
func TestLogValuesBounded(t *testing.T) {
	forged := strings.Repeat("time=2026-12-07T04:00:00.000Z level=INFO msg=message verdict=accept ", 800)
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var b bytes.Buffer
			newLogger(&b, format, new(slog.LevelVar)).Info("message",
				"from", "alice@example.org", "rcpts", strings.Repeat("r@example.org,", 5000),
				"reason", "header_from "+forged, "err", errors.New(forged), "ünïcode", strings.Repeat("ü", 40000))
			line := b.String()
			if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
				t.Fatalf("not one line: %d line ends", strings.Count(line, "\n"))
			}
			if len(line) > 48<<10 {
				t.Errorf("line of %d bytes, longer than journald's 48 KiB LineMax", len(line))
			}
			if !strings.Contains(line, "alice@example.org") || !strings.Contains(line, "header_from time=2026") {
				t.Errorf("short values or the start of long ones are missing: %.200q", line)
			}
			if !strings.Contains(line, "bytes more)") {
				t.Errorf("no value says it was cut")
			}
			if format == "json" {
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Errorf("the line is no JSON object any more: %v", err)
				}
				if s, _ := rec["ünïcode"].(string); !strings.HasPrefix(s, "üü") || strings.ContainsRune(s, '\uFFFD') {
					t.Errorf("a character was cut in half: %.40q", s)
				}
			}
		})
	}
}

// The bound holds for the line as written, not only for the value's own
// bytes: a handler writes a control character or a byte that is no
// UTF-8 as an escape of up to six bytes (\u0001, \ufffd in JSON; \x01 in
// text), and a header From of such bytes, quoted by a reason, would make
// one value of 8 KiB fill journald's 48 KiB on its own.
func TestLogValuesBoundedEscaped(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		for name, unit := range map[string]string{
			"control": "\x01", "not utf-8": "\x80", "quote": `"`, "line end": "\n", "unprintable": "\u2028",
		} {
			t.Run(format+"/"+name, func(t *testing.T) {
				var b bytes.Buffer
				long := strings.Repeat(unit, 60000)
				newLogger(&b, format, new(slog.LevelVar)).Info("message",
					"from", long, "rcpts", long, "reason", "header_from "+long, "helo", long)
				line := b.String()
				if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
					t.Fatalf("not one line: %d line ends", strings.Count(line, "\n"))
				}
				if len(line) > 48<<10 {
					t.Errorf("line of %d bytes, longer than journald's 48 KiB LineMax", len(line))
				}
				if !strings.Contains(line, "bytes more)") || !strings.Contains(line, "header_from") {
					t.Errorf("no value says it was cut, or the start of one is missing: %.200q", line)
				}
			})
		}
	}
}
