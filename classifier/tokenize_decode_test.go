package classifier

import (
	"slices"
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
