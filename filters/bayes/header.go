package bayes

import (
	"fmt"
	"strings"

	"github.com/sluice-mail/sluice/filters"
)

// template is a header format or reply text: literal text and {name}
// placeholders. It is parsed once, when the config is read, so that an
// unknown placeholder is a config error and never a surprise in the mail.
type template []templatePart

type templatePart struct {
	literal string
	field   string // placeholder name when literal is ""
}

func parseTemplate(s string) (template, error) {
	if err := printableASCII(s); err != nil {
		return nil, err
	}
	var t template
	for s != "" {
		i := strings.IndexByte(s, '{')
		j := strings.IndexByte(s[max(i, 0):], '}')
		if i >= 0 && j < 0 && i+1 < len(s) && isNameByte(s[i+1]) {
			// "{spamicity" is a placeholder with its brace missing, not
			// text to send as it is; a "{" before anything else is text.
			return nil, fmt.Errorf("unclosed placeholder %q", s[i:])
		}
		if i < 0 || j < 0 {
			t = append(t, templatePart{literal: s})
			break
		}
		if i > 0 {
			t = append(t, templatePart{literal: s[:i]})
		}
		name := s[i+1 : i+j]
		if !isPlaceholder(name) {
			return nil, fmt.Errorf("unknown placeholder {%s} (known: {%s})", name, strings.Join(placeholders, "}, {"))
		}
		t = append(t, templatePart{field: name})
		s = s[i+j+1:]
	}
	return t, nil
}

// isNameByte reports whether c may be in a placeholder's name.
func isNameByte(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }

func isPlaceholder(name string) bool {
	for _, p := range placeholders {
		if p == name {
			return true
		}
	}
	return false
}

// render expands the template, each value as placeholderValue gives it.
func (t template) render(values map[string]string) string {
	var b strings.Builder
	for _, p := range t {
		if p.field == "" {
			b.WriteString(p.literal)
			continue
		}
		b.WriteString(placeholderValue(p.field, values[p.field]))
	}
	return b.String()
}

// placeholderValue returns the value of a placeholder as the header and
// the reply carry it: printable ASCII, as a header or reply line carries
// nothing else (RFC 5322 2.2, RFC 5321 4.2), and cut to placeholderMax.
// The configuration was checked with each value at that length, so that
// no line of the header goes over RFC 5322's 998 characters; a queue id
// from the MTA or a version from the build longer than that would
// otherwise undo the check.
func placeholderValue(field, s string) string {
	s = asciiOnly(s)
	if n, ok := placeholderMax[field]; ok && len(s) > n {
		s = s[:n]
	}
	return s
}

func printableASCII(s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("byte 0x%02x at offset %d: only printable ASCII is allowed", c, i)
		}
	}
	return nil
}

// asciiOnly replaces every byte outside printable ASCII with '?'.
func asciiOnly(s string) string {
	if printableASCII(s) == nil {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}

// placeholderMax is the longest value each placeholder can take: the
// verdict word, six decimals, and for the queue id and version values
// that come from outside (the MTA, the build) a bound well above what
// Postfix, Sendmail and sluice's versions write (about 20 characters).
var placeholderMax = map[string]int{"verdict": len("Unsure"), "spamicity": len("0.000000"), "queue_id": 64, "version": 64}

// fixedWordMax is the longest word of the fixed values ("Skipped,
// size=...", "Unsure, store unavailable, ..."): "queue_id=" with the
// longest queue id and a comma.
var fixedWordMax = len("queue_id=,") + placeholderMax["queue_id"]

// longest is the length of the longest text the template can render,
// each placeholder counted at its longest, and those placeholders with
// their lengths, for an error: "{queue_id}: 64".
func (t template) longest() (int, []string) {
	n := 0
	var fields []string
	for _, p := range t {
		if p.field == "" {
			n += len(p.literal)
			continue
		}
		n += placeholderMax[p.field]
		fields = append(fields, fmt.Sprintf("{%s}: %d", p.field, placeholderMax[p.field]))
	}
	return n, fields
}

// longestWord is the length of the longest word (text between spaces)
// the template can render, and of its last word, each placeholder counted
// at its longest.
func (t template) longestWord() (longest, last int) {
	cur := 0
	for _, p := range t {
		if p.field != "" {
			cur += placeholderMax[p.field]
			longest = max(longest, cur)
			continue
		}
		words := strings.Split(p.literal, " ")
		for i, w := range words {
			if i > 0 {
				cur = 0
			}
			cur += len(w)
			longest = max(longest, cur)
		}
	}
	return longest, cur
}

// checkLineLimit checks that every word of the format fits on one line
// of filters.MaxLineLength characters, the first line's "Name: " counted,
// so that fold never writes a longer line: it breaks only at spaces, and
// a word too long for a line stays whole. The name itself is checked by
// Config.check, with room for the fixed values' words.
func checkLineLimit(name string, format template) error {
	room := filters.MaxLineLength - len(name) - len(": ")
	n, last := format.longestWord()
	if n > room {
		return fmt.Errorf("header.format: a word of %d characters (placeholders counted at their longest) does not fit on a line of %d after %q (RFC 5322 2.1.1); put spaces in it", n, filters.MaxLineLength, name+": ")
	}
	// The auto-learning note is appended as ", autolearn=spam": the
	// last word gets the comma.
	if last+len(",") > room {
		return fmt.Errorf("header.format: the last word, of %d characters (placeholders counted at their longest), and the comma of \", autolearn=...\" after it do not fit on a line of %d after %q (RFC 5322 2.1.1); put spaces in it", last, filters.MaxLineLength, name+": ")
	}
	return nil
}

// maxLine is the line length folding aims at: RFC 5322 2.1.1 asks for
// lines of at most 78 characters.
const maxLine = 78

// fold breaks a header value into lines of at most maxLine characters,
// counting the "Name: " in front of the first line, by turning the space
// before a word into a line break followed by that space. Unfolding (RFC
// 5322 2.2.3: removing the line breaks) gives back the value exactly. The
// break is a bare "\n": the milter protocol wants it so, and the MTA
// writes CRLF (libmilter's smfi_addheader). A word longer than a line
// stays whole. There is no break before an empty word (a trailing space,
// or one of several): the line after it would hold white space only,
// obsolete syntax (RFC 5322 4.2) that a generator must not write.
func fold(name, value string) string {
	var b strings.Builder
	col := len(name) + 2
	for i, word := range strings.Split(value, " ") {
		switch {
		case i > 0 && word != "" && col+1+len(word) > maxLine && col > 1:
			b.WriteString("\n ")
			col = 1
		case i > 0:
			b.WriteByte(' ')
			col++
		}
		b.WriteString(word)
		col += len(word)
	}
	return b.String()
}
