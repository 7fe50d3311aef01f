package classifier

import (
	"encoding/base64"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// A base64 body made of pieces encoded one by one, each with its own
// padding (as some mailers join encoded pieces, a line or a block each,
// or in one run that is then wrapped), is decoded piece by piece, as
// mail clients decode it; before, the first padding ended the data and
// only the first piece's words were read. What follows the last padding
// and is not base64 (a footer a list appended) is still not decoded.
func TestBase64PaddedChunks(t *testing.T) {
	// "Our cheapest pills. ", "Order onlinepharmacy now. ", "Fast
	// shipping worldwide" and "Regards, signaturename", each encoded by
	// itself.
	const (
		p1 = "T3VyIGNoZWFwZXN0IHBpbGxzLiA="
		p2 = "T3JkZXIgb25saW5lcGhhcm1hY3kgbm93LiA="
		p3 = "RmFzdCBzaGlwcGluZyB3b3JsZHdpZGU="
		p4 = "UmVnYXJkcywgc2lnbmF0dXJlbmFtZQ=="
	)
	cases := map[string]string{
		"a line each":   p1 + "\n" + p2 + "\r\n" + p3 + "\n",
		"one line":      p1 + p2 + p3 + "\n",
		"wrapped":       p1 + p2[:10] + "\n" + p2[10:] + p3 + "\n",
		"blank between": p1 + "\n\n" + p2 + "\n" + p3 + "\n\n" + p4 + "\n",
	}
	for name, body := range cases {
		raw := "Subject: x\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\n" + body
		m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(raw))
		for _, w := range []string{"cheapest", "onlinepharmacy", "shipping"} {
			if !slices.Contains(m.Tokens, w) {
				t.Errorf("%s: missing %q; got %q", name, w, m.Tokens)
			}
		}
	}

	// Text after the padding is a footer, not more base64.
	for _, footer := range []string{"-- \nfooterword list info\n", "Thanks, footerword\n", "_______\nMailing list\n"} {
		got := string(decodeBase64Lenient([]byte(p1 + "\n" + footer)))
		if got != "Our cheapest pills. " {
			t.Errorf("footer %q: decoded %q", footer, got)
		}
	}
}

// An encoded word labelled us-ascii whose bytes are 8-bit is read as
// an encoded word labelled UTF-8 is: valid UTF-8 as such, other bytes as
// windows-1252, as mail clients show them. mime.WordDecoder made each
// such byte U+FFFD, which split the word.
func TestEncodedWordASCII8Bit(t *testing.T) {
	for _, subject := range []string{
		"=?us-ascii?q?caf=E9_d=E9j=E0?=",
		"=?US-ASCII?B?Y2Fm6SBk6Wrg?=",
		"=?us-ascii?q?caf=C3=A9_d=C3=A9j=C3=A0?=",
		"=?us-ascii?q?caf=E9_?= =?utf-8?q?d=C3=A9j=C3=A0?=",
	} {
		m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte("Subject: " + subject + "\n\nhello\n"))
		if !slices.Contains(m.Tokens, "subj:café déjà") {
			t.Errorf("%q: missing %q; got %q", subject, "subj:café déjà", m.Tokens)
		}
	}
}

// Adjacent encoded words in one charset are decoded together, as mail
// clients decode them, so a character whose bytes a mailer split
// between two words is read whole; before, only the label "utf-8"
// (which mime.WordDecoder copies byte for byte) got this right.
func TestEncodedWordsSplitCharacter(t *testing.T) {
	cases := []struct{ subject, want string }{
		{"=?utf-8?b?0J/R?= =?utf-8?b?gNC40LLQtdGC?=", "subj:привет"},
		{"=?utf8?b?0J/R?= =?UTF8?b?gNC40LLQtdGC?=", "subj:привет"},
		{"=?utf8?q?=D0=9F=D1?=\n =?utf8?q?=80=D0=B8=D0=B2=D0=B5=D1=82?=", "subj:привет"},
		{"=?utf8?q?=D0=9F=D1?= =?utf8?b?gNC40LLQtdGC?=", "subj:привет"},
		{"=?shift_jis?b?k/qW?= =?shift_jis?b?e4zq?=", "subj:本語"},
		// A bad byte in a word labelled utf8 is read as windows-1252
		// by itself, as for the label utf-8, not the whole run.
		{"=?utf8?q?caf=C3=A9?= =?utf8?q?_d=E9j=E0?=", "subj:café déjà"},
	}
	for _, tc := range cases {
		m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte("Subject: " + tc.subject + "\n\nhello\n"))
		if !slices.Contains(m.Tokens, tc.want) {
			t.Errorf("%q: missing %q; got %q", tc.subject, tc.want, m.Tokens)
		}
	}
	// Words in other charsets, or with text between them, are each
	// decoded by themselves, also after a word that was rewritten.
	for subject, want := range map[string]string{
		"=?koi8-r?B?8NLJ18XU?= =?iso-8859-5?B?v+DY0tXi?=":       "subj:приветпривет",
		"=?utf-8?q?caf=C3=A9?= and =?x-unknown?Q?pills?=":       "subj:café",
		"=?utf-8?b?Y2hlYXAgcGlsbHM?= and =?koi8-r?B?8NLJ18XU?=": "subj:pills and",
	} {
		m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte("Subject: " + subject + "\n\nhello\n"))
		if !slices.Contains(m.Tokens, want) {
			t.Errorf("%q: missing %q; got %q", subject, want, m.Tokens)
		}
	}
	// A "Q" word that mime.WordDecoder refuses stays as it is, and so
	// joins no other.
	for _, v := range []string{"=?utf-8?q?caf=C3=A9?= =?utf-8?q?bad=ZZ?=", "=?koi8-r?q?=F0?= =?koi8-r?q?\x01?="} {
		if got := repairWords(v); got != v {
			t.Errorf("repairWords(%q) = %q", v, got)
		}
	}
}

// x-user-defined is read as the WHATWG encoding standard reads it (see
// charsetEncoding): ASCII words are kept, and an 8-bit byte is the
// private-use character U+F780 plus its value less 0x80, no letter.
func TestCharsetXUserDefined(t *testing.T) {
	if got := string(toUTF8([]byte("caf\xe9"), "x-user-defined")); got != "caf\uf7e9" {
		t.Errorf("toUTF8 = %q", got)
	}
	raw := "Content-Type: text/plain; charset=x-user-defined\n\ncheap pills caf\xe9\n"
	m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(raw))
	for _, w := range []string{"cheap pills", "charset:x-user-defined", "caf"} {
		if !slices.Contains(m.Tokens, w) {
			t.Errorf("missing %q; got %q", w, m.Tokens)
		}
	}
}

// Labels that mail programs wrote but no registry lists: Microsoft's code
// page numbers ("cp932", "win-1251") and the names of Windows's font
// charset constants ("CHINESEBIG5", "RUSSIAN_CHARSET"). Each must decode
// as the code page it names, not as windows-1252 guesswork.
func TestCharsetMicrosoftLabels(t *testing.T) {
	cases := []struct {
		label string
		in    string // bytes in that code page
		want  string
	}{
		{"cp932", "\x93\xfa\x96\x7b", "日本"},
		{"CP-932", "\x93\xfa\x96\x7b", "日本"},
		{"shiftjis_charset", "\x93\xfa\x96\x7b", "日本"},
		{"cp949", "\xc7\xd1\xb1\xb9", "한국"},
		{"hangeul_charset", "\xc7\xd1\xb1\xb9", "한국"},
		{"hangul_charset", "\xc7\xd1\xb1\xb9", "한국"},
		{"chinesebig5", "\xa4\xa4\xa4\xe5", "中文"},
		{"chinesebig5_charset", "\xa4\xa4\xa4\xe5", "中文"},
		{"gb2312_charset", "\xd6\xd0\xce\xc4", "中文"},
		{"win-1251", "\xcf\xf0\xe8\xe2\xe5\xf2", "Привет"},
		{"win1251", "\xcf\xf0\xe8\xe2\xe5\xf2", "Привет"},
		{"cp-1251", "\xcf\xf0\xe8\xe2\xe5\xf2", "Привет"},
		{"russian_charset", "\xcf\xf0\xe8\xe2\xe5\xf2", "Привет"},
		{"win-1250", "\xb9\xe1k", "ąák"},
		{"easteurope_charset", "\xb9\xe1k", "ąák"},
		{"win-1252", "caf\xe9 \x93x\x94", "café “x”"},
		{"ansi_charset", "caf\xe9", "café"},
		{"greek_charset", "\xe1\xe2", "αβ"},
		{"turkish_charset", "\xfe\xf0", "şğ"},
		{"hebrew_charset", "\xf9\xec", "של"},
		{"arabic_charset", "\xd3\xe1", "سل"},
		{"baltic_charset", "\xe0\xfe", "ąž"},
		{"vietnamese_charset", "\xc3", "Ă"},
		{"cp874", "\xa1\xd2", "กา"},
		{"thai_charset", "\xa1\xd2", "กา"},
		{"mac_charset", "caf\x8e", "café"},
	}
	for _, c := range cases {
		got := string(toUTF8([]byte(c.in), strings.ToLower(c.label)))
		if got != c.want {
			t.Errorf("%s: toUTF8(%q) = %q, want %q", c.label, c.in, got, c.want)
		}
	}
	// Through the tokenizer, with the label as a mail program wrote it.
	raw := "Content-Type: text/plain; charset=\"WIN-1251\"\n\n\xcf\xf0\xe8\xe2\xe5\xf2 \xec\xe8\xf0\n"
	m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(raw))
	for _, w := range []string{"привет", "мир", "charset:win-1251"} {
		if !slices.Contains(m.Tokens, w) {
			t.Errorf("missing %q; got %q", w, m.Tokens)
		}
	}
	// DEFAULT_CHARSET names no code page (the sender's own), and
	// "win-9999" none that exists: both stay best effort.
	for _, label := range []string{"default_charset", "win-9999", "cp-"} {
		if e := charsetEncoding(label); e != nil {
			t.Errorf("charsetEncoding(%q) = %v, want none", label, e)
		}
	}
}

// encodedMultipart returns a message whose top-level multipart body,
// holding the given parts, is in the transfer encoding cte ("base64" or
// "quoted-printable", which RFC 2045 section 6.4 does not allow for a
// multipart).
func encodedMultipart(cte, boundary string, parts ...string) string {
	var body strings.Builder
	for _, p := range parts {
		body.WriteString("--" + boundary + "\n" + p + "\n")
	}
	body.WriteString("--" + boundary + "--\n")
	enc := body.String()
	switch cte {
	case "base64":
		b64 := base64.StdEncoding.EncodeToString([]byte(enc))
		var lines strings.Builder
		for len(b64) > 76 {
			lines.WriteString(b64[:76] + "\n")
			b64 = b64[76:]
		}
		enc = lines.String() + b64 + "\n"
	case "quoted-printable":
		// A quoted-printable encoder may write any byte as "=XX":
		// the hyphens of the delimiter lines are hidden so.
		enc = strings.ReplaceAll(strings.ReplaceAll(enc, "=", "=3D"), "--", "=2D=2D")
	}
	return "Subject: x\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=" + boundary +
		"\nContent-Transfer-Encoding: " + cte + "\n\n" + enc
}

// A multipart body in base64 or quoted-printable (which RFC 2045 does
// not allow, and spam uses to hide its text from filters; some mail
// clients decode it) is decoded before it is split into parts, marked
// "mime:encoded". Before, its parts were never read: the body was
// "mime:broken" and read as text, one long base64 word.
func TestMultipartTransferEncoded(t *testing.T) {
	plain := "Content-Type: text/plain\n\ncheap viagra pills"
	html := "Content-Type: text/html\nContent-Transfer-Encoding: quoted-printable\n\n<a href=3D\"http://pills.example/\">order</a>"
	for _, cte := range []string{"base64", "quoted-printable"} {
		raw := encodedMultipart(cte, "b", plain, html)
		m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(raw))
		for _, w := range []string{"cheap viagra", "pills", "order", "url:pills.example", "ctype:text/plain",
			"ctype:text/html", "mime:encoded", "cte:" + cte} {
			if !slices.Contains(m.Tokens, w) {
				t.Errorf("%s: missing %q; got %q", cte, w, m.Tokens)
			}
		}
		if slices.Contains(m.Tokens, "mime:broken") || m.Truncated {
			t.Errorf("%s: broken or truncated: %q", cte, m.Tokens)
		}
	}

	// Nested: a part of a multipart is an encoded multipart, whose
	// part is one again.
	inner := encodedMultipart("base64", "in", "Content-Type: text/plain\n\ndeepinnerword")
	inner = inner[strings.Index(inner, "Content-Type:"):]
	middle := encodedMultipart("quoted-printable", "mid", inner)
	middle = middle[strings.Index(middle, "Content-Type:"):]
	raw := "Subject: x\nContent-Type: multipart/mixed; boundary=top\n\n--top\n" + middle + "\n--top--\n"
	if m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(raw)); !slices.Contains(m.Tokens, "deepinnerword") {
		t.Errorf("nested: missing %q; got %q", "deepinnerword", m.Tokens)
	}
}

// A multipart labelled base64 or quoted-printable whose parts can be
// read as they are (the mailer declared an encoding it did not apply) is
// read as before, not decoded: decoding it as quoted-printable would
// join a base64 part's padded last line ("...=") to the delimiter line
// after it and lose the parts after it.
func TestMultipartTransferMislabelled(t *testing.T) {
	body := "--b\nContent-Type: text/plain\n\nplainpartword here\n" +
		"--b\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\n" +
		base64.StdEncoding.EncodeToString([]byte("paddedpartword a")) + "\n" +
		"--b\nContent-Type: text/plain\n\nlastpartword\n--b--\n"
	for _, cte := range []string{"base64", "quoted-printable", "7bit"} {
		raw := "Subject: x\nContent-Type: multipart/mixed; boundary=b\nContent-Transfer-Encoding: " + cte + "\n\n" + body
		m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(raw))
		for _, w := range []string{"plainpartword", "paddedpartword", "lastpartword"} {
			if !slices.Contains(m.Tokens, w) {
				t.Errorf("%s: missing %q; got %q", cte, w, m.Tokens)
			}
		}
		for _, w := range []string{"mime:encoded", "mime:broken"} {
			if slices.Contains(m.Tokens, w) {
				t.Errorf("%s: unexpected %q", cte, w)
			}
		}
	}
}

// The decoded multipart bodies of a message are bounded as the parts
// are: MaxParts and MaxDepth hold on the decoded parts, and all the
// bodies decoded in one message together are at most MaxBytes, so
// multiparts encoded inside encoded multiparts are not decoded level
// after level past it.
func TestMultipartTransferEncodedBounded(t *testing.T) {
	parts := make([]string, 300)
	for i := range parts {
		parts[i] = "Content-Type: text/plain\n\nword" + strconv.Itoa(i)
	}
	raw := encodedMultipart("base64", "b", parts...)
	m := NewTokenizer(TokenizerOptions{MaxParts: 50}).TokenizeBytes([]byte(raw))
	if !m.Truncated || !slices.Contains(m.Tokens, "word10") || slices.Contains(m.Tokens, "word60") {
		t.Errorf("MaxParts 50: truncated %v, tokens %q", m.Truncated, m.Tokens)
	}

	// Each level a quoted-printable multipart of the next, the text at
	// the bottom.
	level := "Content-Type: text/plain\n\n" + strings.Repeat("deepword and more words\n", 2000)
	for i := range 6 {
		level = encodedMultipart("quoted-printable", "b"+strconv.Itoa(i), level)
		level = level[strings.Index(level, "Content-Type:"):]
	}
	raw = "Subject: x\n" + level
	m = NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(raw))
	if m.Truncated || !slices.Contains(m.Tokens, "deepword") || !slices.Contains(m.Tokens, "mime:encoded") {
		t.Errorf("within the bounds: truncated %v, tokens %q", m.Truncated, m.Tokens)
	}
	if m := NewTokenizer(TokenizerOptions{MaxDepth: 3}).TokenizeBytes([]byte(raw)); !m.Truncated || slices.Contains(m.Tokens, "deepword") {
		t.Errorf("MaxDepth 3: truncated %v, tokens %q", m.Truncated, m.Tokens)
	}
	w := newWalker(TokenizerOptions{MaxBytes: len(raw) + 10}.withDefaults())
	w.message([]byte(raw), 0, true)
	if w.decoded > len(raw)+10 || !w.truncated {
		t.Errorf("%d bytes of multipart bodies decoded (MaxBytes %d), truncated %v", w.decoded, len(raw)+10, w.truncated)
	}
}
