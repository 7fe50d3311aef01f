package classifier

import (
	"bytes"
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
