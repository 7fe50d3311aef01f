package classifier

import (
	"bytes"
	"fmt"
	"strings"

	"golang.org/x/net/html"
)

// Dialect selects how text becomes tokens. Counts learned with one dialect
// are useless to the other, so a store records its dialect (MetaDialect)
// and NewForStore picks the matching one.
type Dialect string

// Dialects.
const (
	// DialectSluice is this package's own tokenizer (the default).
	DialectSluice Dialect = "sluice"
	// DialectBogofilter reproduces the tokens of bogofilter 1.2's lexer
	// closely enough that a word list imported from bogofilter
	// (ImportBogoutil) classifies as it did there: case is kept, header
	// words are tagged head:, subj:, from:, to:, rtrn:, rcvd:, tokens
	// start with a letter and are 3 to 30 bytes long, IPv4 addresses and
	// dollar amounts are kept whole.
	DialectBogofilter Dialect = "bogofilter"
)

// ParseDialect parses a dialect name; "" is DialectSluice.
func ParseDialect(s string) (Dialect, error) {
	switch Dialect(s) {
	case "", DialectSluice:
		return DialectSluice, nil
	case DialectBogofilter:
		return DialectBogofilter, nil
	}
	return "", fmt.Errorf("unknown tokenizer dialect %q", s)
}

// bogoDropBoundary returns a header value without its boundary
// parameters, which bogofilter's lexer takes as MIME boundaries and makes
// no token of (observed with bogolexer 1.2.5, in any field): "boundary="
// in any case, not inside a word, then a quoted value up to its closing
// quote, or an unquoted one with the rest of its line. v is not changed.
func bogoDropBoundary(v []byte) []byte {
	const key = "boundary="
	var out []byte
	rest := v
	for {
		i := indexFoldASCII(rest, key)
		if i < 0 {
			break
		}
		if i > 0 && bogoMid(rest[i-1]) {
			out = append(out, rest[:i+len(key)]...)
			rest = rest[i+len(key):]
			continue
		}
		out = append(out, rest[:i]...)
		out = append(out, ' ')
		rest = rest[i+len(key):]
		if len(rest) > 0 && rest[0] == '"' {
			if e := bytes.IndexByte(rest[1:], '"'); e >= 0 {
				rest = rest[e+2:]
				continue
			}
		}
		if e := bytes.IndexByte(rest, '\n'); e >= 0 {
			rest = rest[e:]
		} else {
			rest = nil
		}
	}
	if out == nil {
		return v
	}
	return append(out, rest...)
}

// indexFoldASCII is bytes.Index with the ASCII letters of s compared in
// any case with sep, which is lower-case ASCII.
func indexFoldASCII(s []byte, sep string) int {
next:
	for i := 0; i+len(sep) <= len(s); i++ {
		for j := 0; j < len(sep); j++ {
			c := s[i+j]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != sep[j] {
				continue next
			}
		}
		return i
	}
	return -1
}

// bogoMaxToken is bogofilter's default max_token_len.
const bogoMaxToken = 30

// bogoHeader tokenises one header field as bogofilter's lexer does. Fields
// of MIME part headers are all tagged "mime:".
func (w *walker) bogoHeader(f field, part bool) {
	f.value = bogoDropBoundary(f.value)
	if part {
		w.bogoWords(f.rawName, "mime:")
		w.bogoWords(decodeHeaderValue(f.value), "mime:")
		return
	}
	switch name := string(f.name); name {
	case "to", "cc", "from", "return-path", "subject", "received":
		tag := ""
		switch name {
		case "to":
			tag = "to:"
		case "from":
			tag = "from:"
		case "cc":
			tag = "to:"
		case "return-path":
			tag = "rtrn:"
		case "subject":
			tag = "subj:"
		case "received":
			tag = "rcvd:"
		}
		v := decodeHeaderValue(f.value)
		if name == "received" {
			v = dropReceivedIDs(v)
		}
		w.bogoWords(v, tag)
	case "date", "delivery-date", "message-id", "resent-message-id", "in-reply-to", "references", "mime-version":
		// The value is a date or a unique ID: only the name counts. But
		// bogofilter's lexer skips only the field's first line and reads
		// its continuation lines as any header text (observed with
		// bogolexer 1.2.5), such as the second id of a References field.
		w.bogoWords(f.rawName, "head:")
		if f.folded1st {
			w.bogoWords(f.value, "head:")
		} else if i := bytes.IndexByte(f.value, '\n'); i >= 0 {
			w.bogoWords(f.value[i+1:], "head:")
		}
	default:
		w.bogoWords(f.rawName, "head:")
		w.bogoWords(decodeHeaderValue(f.value), "head:")
	}
}

// dropReceivedIDs removes the "id XXX" queue IDs of a Received field: they
// never repeat (bogofilter drops them too).
func dropReceivedIDs(v []byte) []byte {
	fs := bytes.Fields(v)
	out := fs[:0]
	for i := 0; i < len(fs); i++ {
		if string(fs[i]) == "id" && i+1 < len(fs) {
			i++
			continue
		}
		out = append(out, fs[i])
	}
	return bytes.Join(out, []byte(" "))
}

// Byte classes of bogofilter's token grammar (in the C locale, where bytes
// >= 0x80 are neither punctuation nor control characters).
func bogoFront(c byte) bool {
	if c >= 0x80 {
		return true
	}
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func bogoMid(c byte) bool {
	if c >= 0x80 {
		return true
	}
	if c <= ' ' || c == 0x7f {
		return false
	}
	return !strings.ContainsRune(`<>;=():&%$#@+|/\{}^"?*,[]`, rune(c))
}

// bogoBack reports whether a token may end in c. bogofilter's lexer
// (lexer_v3.l, TOKENBACK) ends a token in no punctuation but '!': of the
// punctuation bogoMid lets in, ' ` ~ . _ and - are dropped from the end
// ("Users' Group" gives "Users"), "now!" stays whole.
func bogoBack(c byte) bool {
	return bogoMid(c) && !strings.ContainsRune("'`~._-", rune(c))
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// bogoWords splits s into bogofilter tokens with the given tag.
func (w *walker) bogoWords(s []byte, tag string) {
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '$' && i+1 < len(s) && isDigit(s[i+1]):
			j := i + 1
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			if j+1 < len(s) && s[j] == '.' && isDigit(s[j+1]) {
				j++
				for j < len(s) && isDigit(s[j]) {
					j++
				}
			}
			w.bogoAdd(tag, s[i:j])
			i = j
		case isDigit(c):
			if n := ipv4Len(s[i:]); n > 0 {
				w.bogoAdd(tag, s[i:i+n])
				i += n
				continue
			}
			// Numbers are dropped, one character at a time as a lexer
			// that matches nothing would.
			i++
		case bogoFront(c):
			j := i + 1
			for j < len(s) && bogoMid(s[j]) {
				j++
			}
			// Longest match whose last byte may end a token.
			k := j
			for k > i+2 && !bogoBack(s[k-1]) {
				k--
			}
			if k-i >= 3 && bogoBack(s[k-1]) {
				w.bogoAdd(tag, s[i:k])
				i = k
				continue
			}
			i++
		default:
			i++
		}
	}
}

func (w *walker) bogoAdd(tag string, tok []byte) {
	if len(tok) > bogoMaxToken {
		return
	}
	w.buf = append(append(w.buf[:0], tag...), tok...)
	w.add(w.buf)
}

// ipv4Len returns the length of a dotted-quad IPv4 address at the start of
// s, or 0.
func ipv4Len(s []byte) int {
	i := 0
	for part := 0; part < 4; part++ {
		if part > 0 {
			if i >= len(s) || s[i] != '.' {
				return 0
			}
			i++
		}
		n, v := 0, 0
		for i < len(s) && isDigit(s[i]) && n < 3 {
			v = v*10 + int(s[i]-'0')
			i++
			n++
		}
		if n == 0 || v > 255 {
			return 0
		}
	}
	return i
}

// bogoHTML tokenises HTML as bogofilter does: visible text, plus the inside
// of <a>, <img> and <font> tags (where link targets are); other tags and
// comments are dropped.
func (w *walker) bogoHTML(s []byte) {
	z := html.NewTokenizer(bytes.NewReader(s))
	z.SetMaxBuf(len(s) + 4096)
	var text []byte
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			w.bogoWords(text, "")
			return
		case html.TextToken:
			// Raw, not unescaped: bogofilter sees "&nbsp;" as the
			// word "nbsp".
			text = append(text, z.Raw()...)
		case html.StartTagToken, html.SelfClosingTagToken:
			name, _ := z.TagName()
			// An HTML parser reads the content of <iframe>, <script>,
			// <textarea> and the like as text up to the end tag;
			// bogofilter's lexer knows no such elements and reads the
			// tags in there as tags.
			z.NextIsNotRawText()
			switch string(name) {
			case "a", "img", "font":
				raw := z.Raw()
				if i := bytes.IndexAny(raw, " \t\r\n"); i >= 0 {
					w.bogoWords(bytes.TrimSuffix(raw[i:], []byte(">")), "")
				}
			case "p", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "title", "table",
				"center", "dd", "dt", "iframe", "input", "select", "td", "textarea", "th",
				"div", "blockquote", "pre", "dir", "dl", "fieldset", "legend", "form", "menu", "ol", "ul":
				text = append(text, ' ')
			}
		}
	}
}
