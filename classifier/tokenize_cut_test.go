package classifier

import (
	"bytes"
	"encoding/base64"
	"mime/quotedprintable"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// A message longer than MaxBytes is cut after its last whole line under
// the cap, or, in a line longer than maxCutBack, at the start of the
// character the cap falls in. Cut inside a character, the text of the
// part it fell in was no valid UTF-8 and was read as windows-1252 as a
// whole: every word of a long 8-bit UTF-8 part came out as mojibake. The
// same holds for a message read from a file (Tokenize), which is cut as
// one held in memory is.
func TestCutInsideCharacterKeepsText(t *testing.T) {
	const maxBytes = 4096
	head := "Subject: x\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
	for _, tc := range []struct {
		name, body string
	}{
		{"lines", strings.Repeat("привет мир\n", 1000)},
		{"one line", strings.Repeat("привет мир ", 1000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := []byte(head + tc.body)
			// The cap falls inside a character (each is 2 bytes).
			if utf8.RuneStart(raw[maxBytes]) {
				raw = append([]byte("X: 1\n"), raw...)
			}
			if utf8.RuneStart(raw[maxBytes]) {
				t.Fatal("the test's cap does not fall inside a character")
			}
			tk := NewTokenizer(TokenizerOptions{MaxBytes: maxBytes})
			fromFile, err := tk.Tokenize(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range []Message{tk.TokenizeBytes(raw), fromFile} {
				if !m.Truncated || !slices.Contains(m.Tokens, "привет") || !slices.Contains(m.Tokens, "мир") {
					t.Errorf("truncated %v, tokens %q; want привет and мир", m.Truncated, m.Tokens)
				}
			}
			if !slices.Equal(fromFile.Tokens, tk.TokenizeBytes(raw).Tokens) {
				t.Errorf("read from a file: %q; held in memory: %q", fromFile.Tokens, tk.TokenizeBytes(raw).Tokens)
			}
		})
	}
}

func TestCutAtCharacter(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		n    int
		want string
	}{
		{"abcdef", 4, "abcd"},
		{"ab\u00e9", 3, "ab"},                   // é is 2 bytes: the cap splits it
		{"ab\u00e9", 4, "ab\u00e9"},             // whole
		{"a\u20acb", 2, "a"},                    // € is 3 bytes
		{"a\u20acb", 3, "a"},                    //
		{"a\u20acb", 4, "a\u20ac"},              // whole
		{"a\U0001F600b", 4, "a"},                // 4 bytes
		{"a\U0001F600b", 5, "a\U0001F600"},      // whole
		{"\xff\xfe\xfd\xfc", 3, "\xff\xfe\xfd"}, // no UTF-8: cut as it falls
		{"\x80\x80\x80\x80\x80", 4, "\x80\x80\x80\x80"},
	} {
		if got := string(cutAtCharacter([]byte(tc.raw), tc.n)); got != tc.want {
			t.Errorf("cutAtCharacter(%q, %d) = %q, want %q", tc.raw, tc.n, got, tc.want)
		}
	}
}

// Text in base64 or quoted-printable that is cut inside a character (at
// max_bytes, or by a sender whose message was cut short) is UTF-8 but for
// its last, incomplete character: it is read as UTF-8, not as
// windows-1252 throughout.
func TestEncodedTextCutInsideCharacterKeepsText(t *testing.T) {
	text := strings.Repeat("привет мир\n", 300)
	for _, tc := range []struct {
		name, cte, body string
	}{
		// A line of text is 20 bytes: 3003 bytes end on the first byte
		// of its "р".
		{"base64", "base64", base64.StdEncoding.EncodeToString([]byte(text))[:4*1001]},
		{"quoted-printable", "quoted-printable", qpCutInsideLastR(text)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := "Subject: x\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n" +
				"Content-Transfer-Encoding: " + tc.cte + "\n\n" + tc.body
			m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(raw))
			if !slices.Contains(m.Tokens, "привет") || !slices.Contains(m.Tokens, "мир") {
				t.Errorf("tokens %q; want привет and мир", m.Tokens)
			}
		})
	}
}

// qpCutInsideLastR encodes s as quoted-printable and cuts the encoding
// between the two bytes of its last "р" (=D1=80).
func qpCutInsideLastR(s string) string {
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	enc := strings.ReplaceAll(b.String(), "\r\n", "\n")
	return enc[:strings.LastIndex(enc, "=80")]
}

func TestCutIncompleteRune(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"ab\xd1", "ab", true},
		{"ab\xe2\x82", "ab", true},
		{"ab\xf0\x9f\x98", "ab", true},
		{"\xd1", "", true},
		{"ab\xe2\x82\xac", "ab\xe2\x82\xac", false}, // whole
		{"ab\x80", "ab\x80", false},                 // a continuation byte alone
		{"a\xffb\xd1", "a\xffb\xd1", false},         // invalid before the tail
		{"ab\xd1A", "ab\xd1A", false},               // not at the end
		{"ab\xc0", "ab\xc0", false},                 // never a start
	} {
		got, ok := cutIncompleteRune([]byte(tc.in))
		if string(got) != tc.want || ok != tc.ok {
			t.Errorf("cutIncompleteRune(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
