package classifier

import (
	"slices"
	"testing"
)

// TestBoundaryPrefixOfAnother checks that a multipart whose boundary
// begins another line that is no delimiter line of it (RFC 2046 section
// 5.1: "--", the boundary, optional blanks, the line end), such as the
// boundary "abc" of a multipart holding one whose boundary is
// "abc-inner", is read part by part. go-message ends a part at such a
// line and then fails on it, and the whole body was read as text: the
// base64 part below gave no words, and the part headers gave words of
// their own.
func TestBoundaryPrefixOfAnother(t *testing.T) {
	raw := "Subject: x\r\nContent-Type: multipart/mixed; boundary=\"abc\"\r\n\r\n" +
		"--abc\r\nContent-Type: multipart/alternative; boundary=\"abc-inner\"\r\n\r\n" +
		"--abc-inner\r\nContent-Type: text/plain\r\n\r\nplainword\r\n" +
		"--abc-inner\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		"PHA+aHRtbHdvcmQ8L3A+\r\n" + // <p>htmlword</p>
		"--abc-inner--\r\n\r\n" +
		"--abc \r\nContent-Type: application/octet-stream; name=\"payload.exe\"\r\n\r\nxx\r\n" +
		"--abc--\r\n"
	m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(raw))
	for _, w := range []string{"plainword", "htmlword", "ctype:text/html", "ctype:multipart/alternative", "ext:exe"} {
		if !slices.Contains(m.Tokens, w) {
			t.Errorf("missing %q in %q", w, m.Tokens)
		}
	}
	for _, w := range []string{"mime:broken", "content-type", "abc-inner"} {
		if slices.Contains(m.Tokens, w) {
			t.Errorf("unexpected %q: the multipart read as text", w)
		}
	}
}
