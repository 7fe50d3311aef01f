package bayes

import (
	"strings"
	"testing"
)

// FuzzParseTemplate checks the header formats and reply texts of the
// config: a template taken is its source again when its placeholders are
// written back in braces, and renders to printable ASCII whatever the
// values hold.
func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{
		"{verdict}, spamicity={spamicity}, version={version}",
		"550 5.7.1 spam ({spamicity}) queue {queue_id}",
		"{spamicity", "{ not a placeholder", "}{verdict}", "{}", "{nope}", "a{{verdict}}", "\x7f", "",
	} {
		f.Add(s, "Spam\r\n\xff")
	}
	f.Fuzz(func(t *testing.T, s, value string) {
		tmpl, err := parseTemplate(s)
		if err != nil {
			return
		}
		var src strings.Builder
		values := map[string]string{}
		for _, p := range tmpl {
			if p.field == "" {
				src.WriteString(p.literal)
				continue
			}
			src.WriteString("{" + p.field + "}")
			values[p.field] = value
		}
		if src.String() != s {
			t.Fatalf("%q parsed as %+v, which is %q", s, tmpl, src.String())
		}
		if out := tmpl.render(values); printableASCII(out) != nil {
			t.Fatalf("%q with %q renders to %q", s, value, out)
		}
	})
}

// FuzzFoldHeader checks the folding of the verdict field, as fold's
// comment promises: unfolded, it is the value exactly; no line is longer
// than maxLine unless it holds one word that is, or ends in the value's
// trailing spaces; and no line after a break is white space only.
func FuzzFoldHeader(f *testing.F) {
	f.Add("X-Sluice-Bayes", "spam, spamicity=0.999, version=sluice 1.2.3 "+strings.Repeat("word ", 20))
	f.Add("X", "trailing spaces   ")
	f.Add("X-A-Very-Long-Field-Name-That-Is-Longer-Than-A-Line-Of-Seventy-Eight-Characters", "a b")
	f.Add("X", strings.Repeat("y", 100)+" z")
	f.Fuzz(func(t *testing.T, name, value string) {
		if strings.ContainsAny(value, "\r\n") || strings.ContainsAny(name, "\r\n") {
			return // render makes values printable ASCII; names are
		}
		out := fold(name, value)
		if got := strings.ReplaceAll(out, "\n", ""); got != value {
			t.Fatalf("%q folded as %q unfolds to %q", value, out, got)
		}
		for i, line := range strings.Split(name+": "+out, "\n") {
			if i > 0 && strings.TrimLeft(line, " ") == "" {
				t.Fatalf("%q folded as %q: line %d is white space only", value, out, i)
			}
			words := line
			if i == 0 {
				words = line[len(name)+2:]
			}
			// Spaces at the end of the value, which fold does not break
			// before (see above), may pass the bound.
			if len(strings.TrimRight(line, " ")) > maxLine && strings.Contains(strings.TrimSpace(words), " ") {
				t.Fatalf("%q folded as %q: line %d of %d bytes has more than one word", value, out, i, len(line))
			}
		}
	})
}
