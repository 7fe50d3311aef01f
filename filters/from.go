package filters

import (
	"io"
	"iter"
	"mime"
	"net/mail"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// FromAddresses returns the addresses (addr-specs, "local@domain") of a
// From: field value, in order, as a mail reader finds them: RFC 5322
// section 3.6.2 allows a list, with display names, groups and encoded
// words. The caller stops reading when it has enough, so that a value of
// thousands of addresses costs it no more than it wants to spend.
//
// Every filter that judges the author reads the field with this one
// function, so that no syntax trick hides an address from one filter
// that another one sees. The value is read in three steps:
//
//  1. net/mail's parser, with any charset of an encoded word accepted
//     (display names do not matter here, and an unknown charset must
//     not make the field unreadable);
//  2. if it refuses the value, the parser again on the value without
//     comments and without the blanks next to "@" and "." (see
//     WithoutCFWS), which RFC 5322 allows inside an address and net/mail
//     does not;
//  3. if it refuses that too, a search of that form for addresses in
//     angle brackets, then for words holding "@", then the same search
//     of it with its encoded words decoded, as a mail reader shows
//     them ("=?utf-8?q?ceo=40bank.example?="): a forged or broken
//     field must not be a way around a check. Each address found is
//     returned once.
//
// A parsed address comes as net/mail gives it, its local part unquoted:
// that may hold '"', '@' and blanks, and start with "@", so its domain is
// what follows its last "@"; it is followed by the addresses an encoded
// word in it shows (see encodedWords). An address found in a broken
// field comes as written there, quotes and source route included.
func FromAddresses(value string) iter.Seq[string] {
	return func(yield func(string) bool) {
		value = lineBreaks.Replace(value)
		dec := &mime.WordDecoder{
			CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
		}
		p := mail.AddressParser{WordDecoder: dec}
		list, err := p.ParseList(value)
		if err != nil {
			value = WithoutCFWS(value)
			list, err = p.ParseList(value)
		}
		if err == nil {
			for _, a := range list {
				if !yield(a.Address) || !encodedWords(a.Address, dec, yield) {
					return
				}
			}
			return
		}
		seen := map[string]bool{}
		found := func(a string) bool {
			if a == "" || seen[a] {
				return true
			}
			seen[a] = true
			return yield(a)
		}
		if !searchAddresses(value, found) {
			return
		}
		// Then the field with its encoded words decoded. RFC 2047
		// section 5 allows none in an address, but a mail reader
		// decodes them wherever they stand and shows the text, so
		// that "=?utf-8?q?ceo=40bank.example?=", which holds no
		// address as written, shows as ceo@bank.example.
		if d, err := dec.DecodeHeader(value); err == nil && d != value {
			searchAddresses(WithoutCFWS(lineBreaks.Replace(d)), found)
		}
	}
}

// encodedWords gives to yield the addresses that encoded words in addr
// show, and reports whether yield always returned true. RFC 2047
// section 5 allows no encoded word in an address, but mail readers have
// decoded them and shown the text, cut at a NUL ("Mailsploit", 2017):
// the address
// "=?utf-8?b?Y2VvQGJhbmsuZXhhbXBsZQ==?==?utf-8?q?=00?=@sender.example"
// is at sender.example and shows as ceo@bank.example, and
// "ceo@=?utf-8?q?bank.example?=" as ceo@bank.example; so does
// "=?utf-8?q?ceo@bank.example?=", an address (at "bank.example?=") whose
// "@" is inside the encoded word. A rule on the domain shown must see it.
func encodedWords(addr string, dec *mime.WordDecoder, yield func(string) bool) bool {
	if !strings.Contains(addr, "=?") {
		return true
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return true
	}
	if inEncodedWord(addr, at) {
		// The "@" is part of an encoded word, as Q encoding lets it
		// stand ("=?utf-8?q?ceo@bad.example?="): split there, neither
		// half is a whole word, and neither decodes. The reader shows
		// what the whole address decodes to.
		if d, err := dec.DecodeHeader(addr); err == nil && d != addr {
			return searchAddresses(WithoutCFWS(lineBreaks.Replace(d)), func(a string) bool {
				return a == "" || yield(a)
			})
		}
		return true
	}
	local, domain := addr[:at], addr[at+1:]
	if d, err := dec.DecodeHeader(local); err == nil && d != local {
		if !searchAddresses(WithoutCFWS(lineBreaks.Replace(d)), func(a string) bool {
			return a == "" || yield(a)
		}) {
			return false
		}
	}
	if d, err := dec.DecodeHeader(domain); err == nil && d != domain {
		// The domain as shown ends where a word of a broken field
		// would.
		if f := strings.FieldsFunc(lineBreaks.Replace(d), isFromSeparator); len(f) > 0 {
			return yield(local + "@" + f[0])
		}
	}
	return true
}

// inEncodedWord reports whether the byte at i of s lies inside an encoded
// word ("=?charset?encoding?text?="), found as mime.WordDecoder finds
// them: from each "=?" to the first "?=" after its charset and encoding.
func inEncodedWord(s string, i int) bool {
	for pos := 0; pos < len(s); {
		k := strings.Index(s[pos:], "=?")
		if k < 0 {
			return false
		}
		start := pos + k
		end := encodedWordEnd(s, start)
		if end < 0 {
			pos = start + len("=?")
			continue
		}
		if start < i && i < end {
			return true
		}
		pos = end
	}
	return false
}

// encodedWordEnd returns the index after the encoded word that starts
// at start in s (s[start:] begins with "=?"), or -1 when none does.
func encodedWordEnd(s string, start int) int {
	cur := start + len("=?")
	q := strings.IndexByte(s[cur:], '?')
	if q < 0 {
		return -1
	}
	cur += q + 1 // after the charset and its "?"
	if cur+2 > len(s) || s[cur+1] != '?' {
		return -1
	}
	cur += 2 // after the encoding and its "?"
	e := strings.Index(s[cur:], "?=")
	if e < 0 {
		return -1
	}
	return cur + e + len("?=")
}

// lineBreaks removes the line breaks of a folded field value.
var lineBreaks = strings.NewReplacer("\r\n", "", "\n", "", "\r", "")

// searchAddresses searches a From: field value that does not parse for
// addresses and gives each to found, until found returns false; it
// reports whether found always returned true.
func searchAddresses(value string, found func(string) bool) bool {
	// Angle-bracketed addresses first: they are what a mail reader
	// shows as the sender, and decoy addresses in the display name
	// must not crowd them out of what the caller reads.
	rest := value
	for {
		i := strings.IndexByte(rest, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '>')
		if j < 0 {
			break
		}
		if !found(strings.TrimSpace(rest[i+1 : i+j])) {
			return false
		}
		rest = rest[i+j+1:]
	}
	// Then every word with an "@": an angle-bracketed decoy, say in a
	// quoted display name, must not hide a bare address after it.
	for _, w := range strings.FieldsFunc(value, isFromSeparator) {
		if w = strings.Trim(w, "'"); strings.Contains(w, "@") && !found(w) {
			return false
		}
	}
	// Then the words of the value without its quotes: a quote is a
	// separator above, and "bob@spam.\"example\"", which RFC 5322
	// does not allow and a reader may show without its quotes, would
	// give only bob@spam.
	if strings.Contains(value, `"`) {
		for _, w := range strings.FieldsFunc(strings.ReplaceAll(value, `"`, ""), isFromSeparator) {
			if w = strings.Trim(w, "'"); strings.Contains(w, "@") && !found(w) {
				return false
			}
		}
	}
	return true
}

// isFromSeparator reports whether r ends a word in the search of a
// broken From: field: blanks, list and group separators, angle brackets,
// quotes and parentheses, and control characters, at which a mail
// reader may stop showing the text (a NUL from an encoded word). ':' is
// not one, so that a source route ("@relay:user@domain") stays whole.
func isFromSeparator(r rune) bool {
	switch r {
	case ' ', '\t', ',', ';', '<', '>', '"', '(', ')', 0x7f:
		return true
	}
	return r < ' '
}

// WithoutCFWS returns value with its comments replaced by a blank and
// the blanks next to "@" and "." removed, outside quoted strings. RFC
// 5322 allows both inside an address: comments and folding white space
// around the atoms of a local part and a domain (section 3.4.1), and
// around their dots in the obsolete syntax (section 4.4). A mail reader
// shows "bob@(x)spammer.example" and "bob @ spammer . example" as
// bob@spammer.example; net/mail refuses them, and split into words they
// hold no address. A "(" never closed is no comment, and stays.
//
// Comments nest and may hold quoted pairs (section 3.2.2). They are
// matched in one pass with a stack before a second pass writes the
// result, so that a value of many unclosed parentheses costs linear
// time too.
func WithoutCFWS(value string) string {
	if !strings.ContainsAny(value, "( \t") {
		return value
	}
	// end[i] is the index of the ")" that closes the "(" at i.
	end := map[int]int{}
	var open []int
	quoted := false
	for i := 0; i < len(value); i++ {
		switch c := value[i]; {
		case c == '\\':
			i++
		case c == '"' && len(open) == 0:
			quoted = !quoted
		case quoted:
		case c == '(':
			open = append(open, i)
		case c == ')' && len(open) > 0:
			end[open[len(open)-1]] = i
			open = open[:len(open)-1]
		}
	}
	var b strings.Builder
	b.Grow(len(value))
	var last byte // the last byte written, 0 before the first
	quoted = false
	blank := false // blanks left out, to be written unless next to "@" or "."
	for i := 0; i < len(value); i++ {
		c := value[i]
		if !quoted {
			if j, ok := end[i]; ok {
				i, blank = j, true
				continue
			}
			if c == ' ' || c == '\t' {
				blank = true
				continue
			}
		}
		if blank {
			if c != '@' && c != '.' && last != '@' && last != '.' && last != 0 {
				b.WriteByte(' ')
			}
			blank = false
		}
		b.WriteByte(c)
		last = c
		switch {
		case c == '\\' && i+1 < len(value):
			i++
			b.WriteByte(value[i])
			last = value[i]
		case c == '"':
			quoted = !quoted
		}
	}
	return b.String()
}

// AsShown returns header text as mail readers show it: unchanged if it is
// UTF-8, else read as windows-1252 (of which ISO-8859-1's printable
// characters are a part), as the classifier reads 8-bit header text. A
// domain written in Latin-1 ("b\xfccher.example") is then the one the
// reader sees (bücher.example); read as UTF-8 each such byte would be
// U+FFFD, a name no rule or list holds.
func AsShown(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	t, err := charmap.Windows1252.NewDecoder().String(s)
	if err != nil {
		return s
	}
	return t
}
