package bayes

import (
	"fmt"
	"strings"
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

// render expands the template. Values are made printable ASCII first: a
// header or reply line carries nothing else (RFC 5322 2.2, RFC 5321 4.2).
func (t template) render(values map[string]string) string {
	var b strings.Builder
	for _, p := range t {
		if p.field == "" {
			b.WriteString(p.literal)
			continue
		}
		b.WriteString(asciiOnly(values[p.field]))
	}
	return b.String()
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
