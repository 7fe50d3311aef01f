package classifier

import (
	"bytes"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/text/encoding/charmap"
)

// htmlText tokenises an HTML body: the visible text, plus the hosts of link
// targets and image sources, which a reader never sees but which are the
// most stable part of a spam run.
//
// It is a scanner, not a parser: it needs only text, tag names and a few
// attributes, and it must take any garbage. Text outside tags is kept with
// its character references decoded; the content of <script> and <style>
// is skipped; comments, declarations (<!DOCTYPE>, <![CDATA[...]]>) and
// processing instructions are dropped. A "<" that starts no tag is text.
// Every loop advances through s, so the work is linear in its length.
func (w *walker) htmlText(s []byte) {
	text := w.html[:0]
	for i := 0; i < len(s); {
		lt := bytes.IndexByte(s[i:], '<')
		if lt < 0 {
			text = appendHTMLText(text, s[i:])
			break
		}
		text = appendHTMLText(text, s[i:i+lt])
		i += lt
		next, tagText := w.htmlTag(s, i)
		if next == i {
			// Not markup: the "<" is text.
			text = append(text, '<')
			i++
			continue
		}
		text = append(text, tagText...)
		i = next
	}
	if cap(text) <= maxPooledArena {
		w.html = text
	}
	w.text(text)
}

// htmlTag reads the markup that starts at s[i] == '<' and returns the
// index after it (i if it is not markup) and what it adds to the text: a
// space for a tag that separates words, nothing for the others.
func (w *walker) htmlTag(s []byte, i int) (int, string) {
	rest := s[i+1:]
	switch {
	case bytes.HasPrefix(rest, []byte("!--")):
		// A comment runs to "-->"; unterminated, to the end. "<!-->"
		// and "<!--->" are whole comments (HTML's abrupt closing of
		// an empty comment): browsers show the text after them.
		for _, empty := range []string{"!-->", "!--->"} {
			if bytes.HasPrefix(rest, []byte(empty)) {
				return i + 1 + len(empty), ""
			}
		}
		if end := bytes.Index(rest[3:], []byte("-->")); end >= 0 {
			return i + 1 + 3 + end + 3, ""
		}
		return len(s), ""
	case len(rest) > 0 && (rest[0] == '!' || rest[0] == '?'):
		return skipPast(s, i+1, '>'), ""
	}
	end := len(rest) > 0 && rest[0] == '/'
	if end {
		rest = rest[1:]
	}
	n := 0
	for n < len(rest) && n < 32 && isASCIILetterDigit(rest[n]) {
		n++
	}
	if n == 0 || !isASCIILetter(rest[0]) {
		return i, ""
	}
	var nameBuf [32]byte
	name := appendLowerASCII(nameBuf[:0], rest[:n])
	j := i + 1 + n
	if end {
		j++
	}
	j = w.htmlAttrs(s, j, end, string(name) == "meta")
	switch string(name) {
	case "script", "style":
		if !end {
			// Raw text up to the end tag, which is not text a reader
			// sees, and may hold "<" that starts nothing.
			j = skipRawText(s, j, string(name))
		}
		return j, " "
	case "b", "i", "u", "em", "strong", "font", "span", "a", "small", "big", "sub", "sup":
		// Inline formatting does not separate words: spammers write
		// "V<b></b>iagra" to split a word for filters that would see
		// two.
		return j, ""
	}
	return j, " "
}

// htmlAttrs reads the attributes of a tag from s[j] to the closing ">" and
// returns the index after it. Link targets (href, src, action, background)
// of start tags are tokenised, and so is the target of a <meta> refresh
// (meta says the tag is a <meta> start tag).
func (w *walker) htmlAttrs(s []byte, j int, end, meta bool) int {
	var refresh bool
	var content []byte
	j = w.eachAttr(s, j, func(key, val []byte) {
		switch {
		case end:
		case isLinkAttr(key):
			// Scratch of the walker: link keeps nothing of it.
			w.linkBuf = appendHTMLText(w.linkBuf[:0], val)
			w.link(w.linkBuf)
		case meta && bytes.EqualFold(key, []byte("http-equiv")):
			refresh = bytes.EqualFold(bytes.TrimSpace(val), []byte("refresh"))
		case meta && bytes.EqualFold(key, []byte("content")):
			content = val
		}
	})
	if refresh {
		w.refreshTarget(content)
	}
	return j
}

// refreshTarget tokenises the target of a <meta http-equiv="refresh">,
// whose content is "SECONDS; url=TARGET" (the target may be quoted): a
// browser goes there by itself, as redirecting spam wants.
func (w *walker) refreshTarget(content []byte) {
	w.linkBuf = appendHTMLText(w.linkBuf[:0], content)
	c := w.linkBuf
	i := bytes.IndexByte(c, ';')
	if i < 0 {
		i = bytes.IndexByte(c, ',')
	}
	if i < 0 {
		return
	}
	c = bytes.TrimLeft(c[i+1:], " \t\n\r\f")
	if len(c) < 4 || !bytes.EqualFold(c[:3], []byte("url")) {
		return
	}
	c = bytes.TrimLeft(c[3:], " \t\n\r\f")
	if len(c) == 0 || c[0] != '=' {
		return
	}
	c = bytes.TrimSpace(c[1:])
	if len(c) > 0 && (c[0] == '\'' || c[0] == '"') {
		if e := bytes.IndexByte(c[1:], c[0]); e >= 0 {
			c = c[1 : 1+e]
		} else {
			c = c[1:]
		}
	}
	w.link(c)
}

// eachAttr calls fn with the name and raw value of each attribute of a
// tag from s[j] to the closing ">", and returns the index after it.
func (w *walker) eachAttr(s []byte, j int, fn func(key, val []byte)) int {
	for j < len(s) {
		for j < len(s) && (isHTMLSpace(s[j]) || s[j] == '/') {
			j++
		}
		if j >= len(s) {
			return j
		}
		if s[j] == '>' {
			return j + 1
		}
		k := j
		for k < len(s) && !isHTMLSpace(s[k]) && s[k] != '=' && s[k] != '>' && s[k] != '/' {
			k++
		}
		key := s[j:k]
		if k == j {
			k++ // a stray "=": skip it
		}
		j = k
		for j < len(s) && isHTMLSpace(s[j]) {
			j++
		}
		if j >= len(s) || s[j] != '=' {
			continue // an attribute without a value
		}
		j++
		for j < len(s) && isHTMLSpace(s[j]) {
			j++
		}
		var val []byte
		switch {
		case j < len(s) && (s[j] == '"' || s[j] == '\''):
			q := s[j]
			e := bytes.IndexByte(s[j+1:], q)
			if e < 0 {
				val, j = s[j+1:], len(s)
			} else {
				val, j = s[j+1:j+1+e], j+1+e+1
			}
		default:
			k := j
			for k < len(s) && !isHTMLSpace(s[k]) && s[k] != '>' {
				k++
			}
			val, j = s[j:k], k
		}
		fn(key, val)
	}
	return j
}

// isLinkAttr reports whether an attribute holds a URL worth tokenising.
func isLinkAttr(key []byte) bool {
	var buf [16]byte
	if len(key) > len(buf) {
		return false
	}
	switch string(appendLowerASCII(buf[:0], key)) {
	case "href", "src", "action", "background":
		return true
	}
	return false
}

// skipPast returns the index after the first c at or after s[j], or len(s).
func skipPast(s []byte, j int, c byte) int {
	if e := bytes.IndexByte(s[j:], c); e >= 0 {
		return j + e + 1
	}
	return len(s)
}

// skipRawText returns the index of the end tag "</name" (ASCII case
// insensitive) at or after s[j], or len(s).
func skipRawText(s []byte, j int, name string) int {
	for j < len(s) {
		e := bytes.Index(s[j:], []byte("</"))
		if e < 0 {
			return len(s)
		}
		j += e
		if t := s[j+2:]; len(t) >= len(name) && bytes.EqualFold(t[:len(name)], []byte(name)) {
			return j
		}
		j += 2
	}
	return len(s)
}

// appendHTMLText appends text with its character references ("&amp;",
// "&#233;", "&nbsp") decoded.
func appendHTMLText(dst, t []byte) []byte {
	for {
		amp := bytes.IndexByte(t, '&')
		if amp < 0 {
			return append(dst, t...)
		}
		dst = append(dst, t[:amp]...)
		t = t[amp:]
		n := 1
		if n < len(t) && t[n] == '#' {
			// A numeric reference ends where its digits do, ";" or
			// not, as browsers read it: "V&#105agra" shows "Viagra".
			n++
			hex := n < len(t) && (t[n] == 'x' || t[n] == 'X')
			if hex {
				n++
			}
			for n < len(t) && n < 32 && (t[n] >= '0' && t[n] <= '9' || hex && isHexLetter(t[n])) {
				n++
			}
		} else {
			for n < len(t) && n < 32 && isASCIILetterDigit(t[n]) {
				n++
			}
		}
		if n < len(t) && t[n] == ';' {
			n++
		}
		if n == 1 {
			dst = append(dst, '&')
			t = t[1:]
			continue
		}
		dst = appendReference(dst, t[:n])
		t = t[n:]
	}
}

// appendReference appends the decoded character reference ref.
func appendReference(dst, ref []byte) []byte {
	switch string(ref) {
	case "&nbsp;", "&nbsp":
		return append(dst, ' ')
	case "&amp;", "&amp":
		return append(dst, '&')
	case "&lt;", "&lt":
		return append(dst, '<')
	case "&gt;", "&gt":
		return append(dst, '>')
	case "&quot;", "&quot":
		return append(dst, '"')
	}
	if len(ref) > 2 && ref[1] == '#' {
		r, ok := parseCharRef(bytes.TrimSuffix(ref[2:], []byte(";")))
		if ok {
			return utf8.AppendRune(dst, r)
		}
		return append(dst, ref...)
	}
	// Other named references are rare; the html package knows them all.
	return append(dst, html.UnescapeString(string(ref))...)
}

// parseCharRef parses the digits of a numeric character reference ("233"
// or "xE9"). Invalid code points become U+FFFD, as browsers show them.
func parseCharRef(d []byte) (rune, bool) {
	base := 10
	if len(d) > 0 && (d[0] == 'x' || d[0] == 'X') {
		base, d = 16, d[1:]
	}
	if len(d) == 0 || len(d) > 8 {
		return 0, false
	}
	v := 0
	for _, c := range d {
		var x int
		switch {
		case c >= '0' && c <= '9':
			x = int(c - '0')
		case base == 16 && c >= 'a' && c <= 'f':
			x = int(c-'a') + 10
		case base == 16 && c >= 'A' && c <= 'F':
			x = int(c-'A') + 10
		default:
			return 0, false
		}
		v = v*base + x
	}
	if v == 0 || v > utf8.MaxRune || v >= 0xd800 && v <= 0xdfff {
		return utf8.RuneError, true
	}
	if v >= 0x80 && v <= 0x9f {
		// A C1 control is the windows-1252 character of that byte
		// (HTML's numeric character reference end state), as
		// Windows tools wrote "&#146;" for "’".
		return charmap.Windows1252.DecodeByte(byte(v)), true
	}
	return rune(v), true
}

func isHTMLSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
}

func isHexLetter(c byte) bool { return c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func isASCIILetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isASCIILetterDigit(c byte) bool { return isASCIILetter(c) || c >= '0' && c <= '9' }

// link adds the tokens of a link target or resource URL.
func (w *walker) link(u []byte) {
	u = bytes.TrimSpace(u)
	switch {
	case len(u) > 7 && bytes.EqualFold(u[:7], []byte("mailto:")):
		w.words(u[7:], "mailto:")
	case len(u) > 2 && u[0] == '/' && u[1] == '/':
		// A network-path reference (RFC 3986 section 4.2), which takes
		// the page's scheme: "//host/path" goes to host as
		// "http://host/path" does.
		p := afterUserinfo(u, 2)
		w.host(u[p:hostEnd(u, p, false)])
	default:
		w.linkURLs(u)
	}
}
