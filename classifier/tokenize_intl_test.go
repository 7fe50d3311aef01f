package classifier

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// Internationalised mail (RFC 6532): raw UTF-8 in Subject and From, the
// UTF-8 address of an SMTPUTF8 sender, a UTF-8 body, with and without a
// MIME charset. Tokens are the UTF-8 words, lower-cased, never
// windows-1252 mojibake or replacement characters.
func TestTokenizeRawUTF8Header(t *testing.T) {
	for _, mime := range []string{
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n",
		"", // no MIME declaration at all
	} {
		raw := "From: José Müller <jösé@exämple.org>\r\nTo: <ü@lab.example>\r\nSubject: Grüße aus Köln – 日本語のテスト\r\n" +
			mime + "\r\nHallo Jürgen, die Bücher über Köln sind angekommen.\r\n"
		m, err := NewTokenizer(TokenizerOptions{}).Tokenize(bytes.NewReader([]byte(raw)))
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range m.Tokens {
			if !utf8.ValidString(tok) || strings.ContainsRune(tok, utf8.RuneError) || strings.Contains(tok, "Ã") {
				t.Errorf("token %q is not clean UTF-8", tok)
			}
		}
		for _, w := range []string{"subj:grüße", "subj:köln", "subj:日本", "from:josé", "from:müller", "from:jösé@exämple.org", "from:exämple.org", "to:ü@lab.example", "jürgen", "bücher", "über", "köln"} {
			if !slices.Contains(m.Tokens, w) {
				t.Errorf("mime %q: missing token %q", mime, w)
			}
		}
	}
}
