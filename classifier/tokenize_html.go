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
// The content of an inline element whose attributes hide it (see
// hidesContent) is read apart, after the visible text, so that it
// neither splits nor joins the visible words around it ("pay<span
// style=font-size:0>x</span>pal" reads "paypal"); a hidden preview line
// is still text its reader sees in the inbox list.
// Every loop advances through s, so the work is linear in its length.
func (w *walker) htmlText(s []byte) {
	text, hidden := w.html[:0], w.htmlHidden[:0]
	// hiding is the inline element whose content is hidden, "" outside
	// one; depth counts the elements of its name open inside it.
	var hiding string
	depth := 0
	for i := 0; i < len(s); {
		lt := bytes.IndexByte(s[i:], '<')
		if lt < 0 {
			lt = len(s) - i
		}
		if hiding == "" {
			text = appendHTMLText(text, s[i:i+lt])
		} else {
			hidden = appendHTMLText(hidden, s[i:i+lt])
		}
		i += lt
		if i == len(s) {
			break
		}
		next, tag := w.htmlTag(s, i)
		switch {
		case next == i:
			// Not markup: the "<" is text.
			if hiding == "" {
				text = append(text, '<')
			} else {
				hidden = append(hidden, '<')
			}
			i++
			continue
		case hiding == "" && tag.hides && !tag.end && tag.inline != "":
			hiding, depth = tag.inline, 1
			hidden = append(hidden, ' ')
		case hiding == "":
			text = append(text, tag.sep...)
		case tag.inline == hiding && tag.end:
			depth--
			if depth == 0 {
				hiding = ""
				hidden = append(hidden, ' ')
			}
		case tag.inline == hiding:
			depth++
		default:
			hidden = append(hidden, tag.sep...)
		}
		i = next
	}
	w.text(text)
	if len(hidden) > 0 {
		w.text(hidden)
	}
	if cap(text) <= maxPooledArena {
		w.html = text
	}
	if cap(hidden) <= maxPooledArena {
		w.htmlHidden = hidden
	}
}

// htmlTag describes the markup htmlTag read.
type htmlTag struct {
	// sep is what the markup adds to the text: a space for a tag that
	// separates words, nothing for the others.
	sep string
	// inline is the name of an inline formatting element (see
	// inlineElement), "" for other markup.
	inline string
	// end says the tag is an end tag; hides, that its attributes hide
	// the element's content (see hidesContent).
	end, hides bool
}

// htmlTag reads the markup that starts at s[i] == '<' and returns the
// index after it (i if it is not markup) and what it is.
func (w *walker) htmlTag(s []byte, i int) (int, htmlTag) {
	rest := s[i+1:]
	switch {
	case bytes.HasPrefix(rest, []byte("!--")):
		// A comment runs to "-->"; unterminated, to the end. "<!-->"
		// and "<!--->" are whole comments (HTML's abrupt closing of
		// an empty comment): browsers show the text after them.
		for _, empty := range []string{"!-->", "!--->"} {
			if bytes.HasPrefix(rest, []byte(empty)) {
				return i + 1 + len(empty), htmlTag{}
			}
		}
		if end := bytes.Index(rest[3:], []byte("-->")); end >= 0 {
			return i + 1 + 3 + end + 3, htmlTag{}
		}
		return len(s), htmlTag{}
	case len(rest) > 0 && (rest[0] == '!' || rest[0] == '?'):
		return skipPast(s, i+1, '>'), htmlTag{}
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
		return i, htmlTag{}
	}
	var nameBuf [32]byte
	name := appendLowerASCII(nameBuf[:0], rest[:n])
	j := i + 1 + n
	if end {
		j++
	}
	j, hides := w.htmlAttrs(s, j, end, string(name) == "meta")
	if string(name) == "script" || string(name) == "style" {
		if !end {
			// Raw text up to the end tag, which is not text a reader
			// sees, and may hold "<" that starts nothing.
			j = skipRawText(s, j, string(name))
		}
		return j, htmlTag{sep: " "}
	}
	if inline := inlineElement(name); inline != "" {
		// Inline formatting does not separate words: spammers write
		// "V<b></b>iagra" to split a word for filters that would see
		// two.
		return j, htmlTag{inline: inline, end: end, hides: hides}
	}
	return j, htmlTag{sep: " "}
}

// inlineElements are the elements of inline formatting, which do not
// separate words.
var inlineElements = [...]string{"b", "i", "u", "em", "strong", "font", "span", "a", "small", "big", "sub", "sup"}

// inlineElement returns the name of the inline formatting element name
// (lower-case), or "" if it is none.
func inlineElement(name []byte) string {
	for _, e := range inlineElements {
		if string(name) == e {
			return e
		}
	}
	return ""
}

// htmlAttrs reads the attributes of a tag from s[j] to the closing ">" and
// returns the index after it and whether the attributes hide the
// element's content (the hidden attribute, or a style that hidesContent).
// Link targets (href, src, action, background) of start tags are
// tokenised, and so is the target of a <meta> refresh (meta says the tag
// is a <meta> start tag).
func (w *walker) htmlAttrs(s []byte, j int, end, meta bool) (int, bool) {
	var refresh, hides, styled bool
	var content []byte
	j = w.eachAttr(s, j, func(key, val []byte) {
		switch {
		case end:
		case val == nil:
			// An attribute without a value.
			hides = hides || bytes.EqualFold(key, []byte("hidden"))
		case isLinkAttr(key):
			// Scratch of the walker: link keeps nothing of it.
			w.linkBuf = appendHTMLText(w.linkBuf[:0], val)
			w.link(w.linkBuf)
		case bytes.EqualFold(key, []byte("style")):
			// A browser takes an attribute's first value.
			if !styled {
				styled = true
				hides = hides || hidesContent(val)
			}
		case meta && bytes.EqualFold(key, []byte("http-equiv")):
			refresh = bytes.EqualFold(bytes.TrimSpace(val), []byte("refresh"))
		case meta && bytes.EqualFold(key, []byte("content")):
			content = val
		}
	})
	if refresh {
		w.refreshTarget(content)
	}
	return j, hides
}

// hidesContent reports whether an inline style hides the content of its
// element from the reader: display:none, visibility:hidden or collapse,
// a font size of zero or an opacity of zero. Of a property declared more
// than once, the last declaration counts, as in CSS (the difference
// between "!important" and not is not weighed). A hidden element's
// children could show again with a style of their own (visibility, font
// size); that is rare in mail and not followed.
func hidesContent(style []byte) bool {
	var display, visibility, fontSize, opacity bool
	for len(style) > 0 {
		decl := style
		if k := bytes.IndexByte(style, ';'); k >= 0 {
			decl, style = style[:k], style[k+1:]
		} else {
			style = nil
		}
		colon := bytes.IndexByte(decl, ':')
		if colon < 0 {
			continue
		}
		prop := bytes.TrimSpace(decl[:colon])
		val := bytes.TrimSpace(decl[colon+1:])
		if k := bytes.IndexByte(val, '!'); k >= 0 {
			val = bytes.TrimSpace(val[:k])
		}
		switch {
		case bytes.EqualFold(prop, []byte("display")):
			display = bytes.EqualFold(val, []byte("none"))
		case bytes.EqualFold(prop, []byte("visibility")):
			visibility = bytes.EqualFold(val, []byte("hidden")) || bytes.EqualFold(val, []byte("collapse"))
		case bytes.EqualFold(prop, []byte("font-size")):
			fontSize = isZeroLength(val)
		case bytes.EqualFold(prop, []byte("opacity")):
			opacity = isZeroLength(val)
		}
	}
	return display || visibility || fontSize || opacity
}

// isZeroLength reports whether a CSS value is a zero number with an
// optional unit: "0", "0px", "0.0em", "0%".
func isZeroLength(val []byte) bool {
	digits := 0
	k := 0
	for ; k < len(val) && (val[k] >= '0' && val[k] <= '9' || val[k] == '.'); k++ {
		switch {
		case val[k] == '.':
		case val[k] != '0':
			return false
		default:
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	for _, c := range val[k:] {
		if !isASCIILetter(c) && c != '%' {
			return false
		}
	}
	return true
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
// tag from s[j] to the closing ">" (a nil value for an attribute without
// one, an empty one for ""), and returns the index after it.
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
			if len(key) > 0 {
				fn(key, nil) // an attribute without a value
			}
			continue
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
