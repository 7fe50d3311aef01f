package classifier

import (
	"slices"
	"testing"
)

// TestCharsetASCIIAliases checks that text labelled ASCII under another of
// its names (ANSI_X3.4-1968 is what glibc's C locale calls it, so mail
// from scripts and cron jobs carries it) keeps the words of its 8-bit
// bytes, as under the name us-ascii: UTF-8 as UTF-8, other bytes as
// windows-1252. The ASCII decoder made each such byte U+FFFD, which split
// "café" into "caf".
func TestCharsetASCIIAliases(t *testing.T) {
	for _, cs := range []string{"ANSI_X3.4-1968", "ascii", "iso646-us", "csASCII", "us"} {
		raw := "Subject: =?" + cs + "?Q?cr=C3=A8me?= =?" + cs + "?Q?_br=FBl=E9e?=\n" +
			"Content-Type: text/plain; charset=" + cs + "\n\n" +
			"caf\xc3\xa9 na\xc3\xafve\n"
		m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(raw))
		for _, w := range []string{"café", "naïve", "subj:crème", "subj:brûlée"} {
			if !slices.Contains(m.Tokens, w) {
				t.Errorf("charset %s: missing %q in %q", cs, w, m.Tokens)
			}
		}
		raw = "Content-Type: text/plain; charset=" + cs + "\n\ncaf\xe9 na\xefve\n"
		m = NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(raw))
		for _, w := range []string{"café", "naïve"} {
			if !slices.Contains(m.Tokens, w) {
				t.Errorf("charset %s, Latin-1 bytes: missing %q in %q", cs, w, m.Tokens)
			}
		}
	}
}
