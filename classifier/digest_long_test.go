package classifier

import (
	"fmt"
	"strings"
	"testing"
)

// longMessage returns a message whose body is longer than max_bytes, with
// the line end eol.
func longMessage(eol string, bodyBytes int) string {
	var b strings.Builder
	for _, l := range []string{"From: ann@example.org", "To: bob@example.org", "Subject: the minutes, with the scans", "Message-ID: <long-1@example.org>", ""} {
		b.WriteString(l + eol)
	}
	for i := 0; b.Len() < bodyBytes; i++ {
		fmt.Fprintf(&b, "line %d of the attachment, which goes on for a while: QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo%s", i, eol)
	}
	return b.String()
}

// A message longer than max_bytes is the same message, for learning, at
// SMTP time (CRLF line ends, as the daemon hands it over), in a mailbox
// (LF, with the trace fields of its delivery above it) and saved as a
// file: the digest must not depend on where max_bytes cuts each copy.
// It did: a misfiled message of 2 MB that the daemon auto-learned as
// spam, trained as ham from the inbox, was learned as ham as well as
// spam, instead of moved.
func TestDigestOfMessageLongerThanMaxBytes(t *testing.T) {
	for _, maxBytes := range []int{0, 64 << 10} {
		tk := NewTokenizer(TokenizerOptions{MaxBytes: maxBytes})
		limit := tk.MaxBytes()
		smtp := longMessage("\r\n", 2*limit)
		lf := longMessage("\n", 2*limit)
		delivered := "Return-Path: <ann@example.org>\nDelivered-To: bob@example.org\n" +
			"Received: from mx.example.org (mx.example.org [192.0.2.1])\n\tby mail.example.org (Postfix) with ESMTPS id 4XyZ1n2Kq7z\n\tfor <bob@example.org>; Mon, 1 Jan 2024 10:00:00 +0000 (UTC)\n" +
			"X-Sluice-Bayes: Yes, spamicity=0.999, queue_id=4XyZ1n2Kq7z\nStatus: RO\n" + lf
		want := tk.Digest([]byte(smtp))
		for name, copy := range map[string]string{"LF": lf, "delivered": delivered} {
			if got := tk.Digest([]byte(copy)); got != want {
				t.Errorf("max_bytes %d: the %s copy of a message longer than max_bytes has digest %s, the one the daemon learned %s", limit, name, got, want)
			}
		}
		// The bound stays a bound: what lies beyond it does not count,
		// but the start of the body does.
		other := strings.Replace(smtp, "line 3 of", "line 3 in", 1)
		if tk.Digest([]byte(other)) == want {
			t.Errorf("max_bytes %d: a change early in the body left the digest as it was", limit)
		}
	}
}

// A message shorter than the body's bound keeps the digest it had before
// the bound: the whole body, its trailing line ends left out.
func TestDigestOfShortMessageUnchanged(t *testing.T) {
	msg := "Subject: hello\nMessage-ID: <short@example.org>\n\nline one\r\nline two\n\n\n"
	// The digest as sluice computed it before the bound.
	const want = "431e60d1ec54af62cc0f65e967dc4be04008f289025071d3a4aa7d95e5c9e58b"
	got := MessageDigest([]byte(msg)).String()
	if got != want {
		t.Errorf("digest of a short message changed: %s, was %s", got, want)
	}
}
