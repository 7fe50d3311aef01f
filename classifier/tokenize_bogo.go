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
	// start with a letter and are 3 to 30 bytes long, the tag counted,
	// IPv4 addresses and dollar amounts are kept whole.
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
		w.bogoWords(bogoDropQueueIDs(decodeHeaderValue(f.value)), "mime:")
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
		w.bogoWords(bogoDropQueueIDs(decodeHeaderValue(f.value)), tag)
	case "date", "delivery-date", "message-id", "resent-message-id", "in-reply-to", "references":
		// The value is a date or a unique ID: only the name counts. But
		// bogofilter's lexer skips only the field's first line and reads
		// its continuation lines as any header text (observed with
		// bogolexer 1.2.5), such as the second id of a References field.
		// MIME-Version is not one of these: bogolexer 1.2.5 makes
		// tokens of its comment ("Apple Message framework v482").
		w.bogoWords(f.rawName, "head:")
		if f.folded1st {
			w.bogoWords(bogoDropQueueIDs(f.value), "head:")
		} else if i := bytes.IndexByte(f.value, '\n'); i >= 0 {
			w.bogoWords(bogoDropQueueIDs(f.value[i+1:]), "head:")
		}
	default:
		w.bogoWords(f.rawName, "head:")
		w.bogoWords(bogoDropQueueIDs(decodeHeaderValue(f.value)), "head:")
	}
}

// bogoDropQueueIDs returns a header value without its "id XXX" queue IDs,
// which never repeat. bogofilter's lexer drops them in any header field,
// not only in Received (an "X-MIME-Autoconverted: ... id gB37qp826485"
// gives no token of the id): "id" in any case after a blank (or at the
// start of the value, which follows the blank after the colon), white
// space, then an optional '<', letters, digits, '.' and '-', and an
// optional '>'; the rest of an "id <q@host>" is text. v is not changed.
func bogoDropQueueIDs(v []byte) []byte {
	var out []byte
	last := 0
	for i := 0; i < len(v); i++ {
		// The "id" starts at p: after the blank at i, or at the start.
		p := i + 1
		if v[i] != ' ' && v[i] != '\t' {
			if i > 0 {
				continue
			}
			p = 0
		}
		if p+2 >= len(v) || v[p]|0x20 != 'i' || v[p+1]|0x20 != 'd' || !isHeaderSpace(v[p+2]) {
			continue
		}
		j := p + 2
		for j < len(v) && isHeaderSpace(v[j]) {
			j++
		}
		if j < len(v) && v[j] == '<' {
			j++
		}
		for j < len(v) && (isAlnumASCII(v[j]) || v[j] == '.' || v[j] == '-') {
			j++
		}
		if j < len(v) && v[j] == '>' {
			j++
		}
		out = append(append(out, v[last:i]...), ' ')
		last = j
		i = j - 1
	}
	if out == nil {
		return v
	}
	return append(out, v[last:]...)
}

func isHeaderSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func isAlnumASCII(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || isDigit(c)
}

// Byte classes of bogofilter's token grammar (in the C locale, where bytes
// >= 0x80 are neither punctuation nor control characters).
func bogoFront(c byte) bool {
	if c >= 0x80 {
		return true
	}
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func bogoMid(c byte) bool { return bogoMidBytes[c] }

// bogoMidBytes holds bogoMid for each byte: it is asked for every byte of
// header text, several times over (see verpLen).
var bogoMidBytes = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= 0x80 || c > ' ' && c != 0x7f && !strings.ContainsRune(`<>;=():&%$#@+|/\{}^"?*,[]`, rune(c))
	}
	return t
}()

// bogoBack reports whether a token may end in c. bogofilter's lexer
// (lexer_v3.l, TOKENBACK) ends a token in no punctuation but '!': of the
// punctuation bogoMid lets in, ' ` ~ . _ and - are dropped from the end
// ("Users' Group" gives "Users"), "now!" stays whole.
func bogoBack(c byte) bool {
	return bogoMid(c) && !strings.ContainsRune("'`~._-", rune(c))
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// bogoWords splits s into bogofilter tokens with the given tag. A tag
// means s is header text (bogoHeader tags every field, the body has no
// tag), where the lexer also rewrites VERP addresses (see verpLen).
func (w *walker) bogoWords(s []byte, tag string) {
	w.bogoScan(s, tag, true)
}

// bogoDiscarded adds the tokens bogofilter's lexer makes of text it
// otherwise discards, the inside of an HTML tag other than <a>, <img> and
// <font> or of a comment: its rules for IPv4 addresses and dollar amounts
// apply in every state, so an IP address link in a <form action=...>
// counts (observed with bogolexer 1.2.5), while words are dropped.
func (w *walker) bogoDiscarded(s []byte) {
	w.bogoScan(s, "", false)
}

// bogoScan is bogoWords, adding words only if words is set.
func (w *walker) bogoScan(s []byte, tag string, words bool) {
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
			if n := bogoIPv4Len(s[i:]); n > 0 {
				w.bogoAdd(tag, s[i:i+n])
				i += n
				continue
			}
			// Numbers are dropped, one character at a time as a lexer
			// that matches nothing would.
			i++
		case bogoFront(c):
			if tag != "" {
				if w.verpWork < maxVerpWork {
					n, work := verpLen(s[i:])
					w.verpWork += work
					if n > 0 {
						w.bogoAdd(tag, verpToken(s[i:i+n]))
						i += n
						continue
					}
				}
				if n := fileNameParamLen(s[i:]); n > 0 {
					i += n
					continue
				}
			}
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
				if words {
					w.bogoAdd(tag, s[i:k])
				}
				i = k
				continue
			}
			i++
		default:
			i++
		}
	}
}

// verpLen returns the length of the part before the '=' of a VERP
// address at the start of s, as bogofilter's lexer finds one in header
// text: a list's bounce address that carries a message number and the
// subscriber's address ("sentto-2242572-52726-1030016790-zzzz=
// spamassassin.taint.org@returns.groups.yahoo.com"). Its grammar
// (lexer_v3.l, VERP) is word '-' id '-' word '=' word '@' word, where a
// word is as in bogoScan but of any length and the id is of ASCII letters,
// digits, '#' and '-' with a digit inside (not first or last). 0 if there
// is none, or if the part before the '=' is longer than maxVerpLen.
// work is about how many bytes it looked at (see maxVerpWork).
func verpLen(s []byte) (n, work int) {
	if len(s) == 0 || !bogoFront(s[0]) {
		return 0, 1
	}
	e := 0
	for e < len(s) && e <= maxVerpLen && (bogoMid(s[e]) || s[e] == '#') {
		e++
	}
	if e > maxVerpLen {
		return 0, e
	}
	// After the '=': a word, '@' and the start of a word.
	j := e + 1
	if e == len(s) || s[e] != '=' || j >= len(s) || !bogoFront(s[j]) {
		return 0, j
	}
	k := j + 1
	for k < len(s) && bogoMid(s[k]) {
		k++
	}
	// The part before the '=' is looked at twice more below.
	work = k + 2*e
	if k+1 >= len(s) || s[k] != '@' || k > j+1 && !bogoBack(s[k-1]) || !bogoFront(s[k+1]) {
		return 0, work
	}
	// Before it: the first word ends at the dash x, the last starts
	// after the dash y, and the id between them lies in one run of id
	// bytes. The words hold no '#'. The widest pair of a run is the
	// best: its id has the most places for the digit inside.
	p := s[:e]
	firstHash, lastHash := bytes.IndexByte(p, '#'), bytes.LastIndexByte(p, '#')
	if firstHash < 0 {
		firstHash = len(p)
	}
	lastWordOK := bogoBack(p[len(p)-1])
	for a := 0; a < len(p); {
		if !verpIDByte(p[a]) {
			a++
			continue
		}
		b := a
		for b < len(p) && verpIDByte(p[b]) {
			b++
		}
		x, y := -1, -1
		for i := a; i < b; i++ {
			if p[i] != '-' {
				continue
			}
			if x < 0 && i >= 1 && i <= firstHash && (i == 1 || bogoBack(p[i-1])) {
				x = i
			}
			if i > lastHash && i+1 < len(p) && bogoFront(p[i+1]) && (lastWordOK || i+2 == len(p)) {
				y = i
			}
		}
		if x >= 0 && y-x >= 4 {
			for d := x + 2; d <= y-2; d++ {
				if isDigit(p[d]) {
					return e, work
				}
			}
		}
		a = b
	}
	return 0, work
}

// fileNameParamLen returns the length of a "name=" or "filename=" (in any
// case) at the start of s, with the '"' after it if there is one, or 0.
// bogofilter's lexer makes no token of these names of a file parameter
// in header text (observed with bogolexer 1.2.5), as it makes none of
// boundary parameters (see bogoDropBoundary); the file's name is text.
func fileNameParamLen(s []byte) int {
	n := 0
	for _, key := range []string{"filename=", "name="} {
		if len(s) >= len(key) && indexFoldASCII(s[:len(key)], key) == 0 {
			n = len(key)
			break
		}
	}
	if n > 0 && n < len(s) && s[n] == '"' {
		n++
	}
	return n
}

// maxVerpLen bounds the part before the '=' that verpLen looks at. Real
// ones are well under 100 bytes; the bound keeps a header of "a#a#a#..."
// from costing a scan of the rest of it at every word (a '#' ends a word
// but not the part before the '='), which bogofilter's lexer does not
// bound.
const maxVerpLen = 256

// maxVerpWork bounds the bytes verpLen looks at in one message, all
// header fields together. Each start of a word in header text may be the
// start of a VERP address, and verpLen looks at up to maxVerpLen bytes
// and then at the word after the '=' from each: a header of
// "a#a#a#...", or of such runs before an '=' and a long word, cost a
// second a megabyte. A real header is looked at a few times over; past
// the bound, which only a header built for it reaches, the rest of the
// message's header text is read without VERP addresses, where
// bogofilter's lexer would find one.
const maxVerpWork = 1 << 20

func verpIDByte(c byte) bool { return isAlnumASCII(c) || c == '#' || c == '-' }

// verpToken returns the token bogofilter makes of the part of a VERP
// address before the '=': all from its first dash to its last becomes
// "-#", so that "sentto-2242572-52726-1030016790-zzzz" is "sentto-#-zzzz"
// in every message of the list.
func verpToken(p []byte) []byte {
	first, last := bytes.IndexByte(p, '-'), bytes.LastIndexByte(p, '-')
	out := make([]byte, 0, first+2+len(p)-last)
	out = append(append(out, p[:first]...), "-#"...)
	return append(out, p[last:]...)
}

func (w *walker) bogoAdd(tag string, tok []byte) {
	if len(tag)+len(tok) > bogoMaxToken {
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

// bogoText tokenises plain text as bogofilter's lexer does. A "<!DOCTYPE
// HTML PUBLIC ...>" in it (in any case) makes the lexer read the rest as
// HTML (lexer_v3.l; observed with bogolexer 1.2.5): a mailer that sends
// an HTML page as text/plain. The declaration runs to the last '>' on its
// line.
func (w *walker) bogoText(s []byte) {
	d := indexFoldASCII(s, "<!doctype html public ")
	end := len(s)
	if d >= 0 {
		if n := bytes.IndexByte(s[d:], '\n'); n >= 0 {
			end = d + n
		}
	}
	if d < 0 || bytes.IndexByte(s[d:end], '>') < 0 {
		w.bogoPlain(s)
		return
	}
	w.bogoPlain(s[:d])
	w.bogoHTML(s[d+bytes.LastIndexByte(s[d:end], '>')+1:])
}

// bogoPlain tokenises plain text without a DOCTYPE (see bogoText). The
// lexer skips the words of an inline PGP signature (lexer_v3.l, PGP_BODY; observed
// with bogolexer 1.2.5): after a line "-----BEGIN PGP SIGNATURE-----"
// (in any case), its armour header lines up to the first empty line are
// text, the rest is not, but for IP addresses and dollar amounts (see
// bogoDiscarded), up to a line "-----END PGP SIGNATURE-----", which is
// text again. Without that line the rest of s is signature.
func (w *walker) bogoPlain(s []byte) {
	const (
		text = iota
		armourHeader
		signature
	)
	state := text
	start := 0 // where the text not yet tokenised starts
	for i := 0; i < len(s); {
		end, next := len(s), len(s)
		if n := bytes.IndexByte(s[i:], '\n'); n >= 0 {
			end, next = i+n, i+n+1
		}
		line := bytes.TrimSuffix(s[i:end], []byte("\r"))
		switch {
		case bytes.EqualFold(line, []byte("-----BEGIN PGP SIGNATURE-----")):
			if state == signature {
				w.bogoDiscarded(s[start:i])
				start = i
			}
			state = armourHeader
		case state == armourHeader && len(line) == 0:
			w.bogoWords(s[start:i], "")
			start = i
			state = signature
		case state != text && bytes.EqualFold(line, []byte("-----END PGP SIGNATURE-----")):
			if state == signature {
				w.bogoDiscarded(s[start:i])
				start = i
			}
			state = text
		}
		i = next
	}
	if state == signature {
		w.bogoDiscarded(s[start:])
	} else {
		w.bogoWords(s[start:], "")
	}
}

// bogoIPv4Len is ipv4Len as bogofilter's lexer matches an address: the
// longest start of s that is one, so that "9.0.1.3108" (a version number)
// gives "9.0.1.31" (observed with bogolexer 1.2.5).
func bogoIPv4Len(s []byte) int {
	for n := min(len(s), len("255.255.255.255")); n >= len("0.0.0.0"); n-- {
		if ipv4Len(s[:n]) == n {
			return n
		}
	}
	return 0
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
				w.bogoDiscarded(z.Raw())
			default:
				w.bogoDiscarded(z.Raw())
			}
		case html.EndTagToken, html.CommentToken, html.DoctypeToken:
			w.bogoDiscarded(z.Raw())
		}
	}
}
