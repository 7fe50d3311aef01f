package milter_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/milter"
)

// FuzzParseMessage checks the splitting of a message file for the dry
// run, which reads whatever file an administrator points it at: every
// field has a name an MTA would pass; a body is empty or lines ending in
// CRLF, as SMTP carries it; what Postfix would drop or change (a NUL, a
// CR) is not in its fields; and a message with plain LF line ends is
// split without losing or adding a byte: the fields and body written back
// are the file again.
func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{
		"From: a@example.org\nTo: b@example.com\nSubject: hi\n\nbody\n",
		"Subject: a\r\nX-F:  one\r\n\ttwo\r\n  three\r\n\r\nline1\r\nline2",
		"From someone@example.org Mon Jan  1 00:00:00 2024\nSubject: b\n\nx\n\ny\n",
		"From : alice@example.org\r\nSubject: hi\r\n\r\nbody\r\n",
		"Subject: c\nnot a field\nmore\n",
		"X-N:x\nX-E:\n \n\tcont\n",
		"X-F:  two spaces\n\tfolded\n\nbody\n",
		"X-B: p\r q\r\nX-C: p\rX-D: q\r\nSubject: x\x00y\r\n\r\nb\rc\x00d\r\n\r\r\n",
		"X-A: a\nX-B: b\r\nX-E: p\n q\r\nS: x\n\r\n\r\nb\r\n",
		" leading: blank\n\nbody",
		"Bad Name: v\nX: y\n",
		"\n\n\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, mta := range []milter.MTA{milter.Postfix, milter.Sendmail} {
			headers, body := milter.ParseMessage(raw, mta)
			for _, h := range headers {
				if h.Name == "" || strings.ContainsFunc(h.Name, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == ':' }) {
					t.Fatalf("mta %d: field name %q", mta, h.Name)
				}
				if strings.ContainsRune(h.Value, 0) {
					t.Fatalf("mta %d: NUL in the value of %s: %q", mta, h.Name, h.Value)
				}
				if mta == milter.Postfix {
					if strings.ContainsRune(h.Value, '\r') {
						t.Fatalf("Postfix: CR in the value of %s: %q", h.Name, h.Value)
					}
					for i := strings.IndexByte(h.Value, '\n'); i >= 0; i = nextLF(h.Value, i) {
						if i+1 == len(h.Value) || (h.Value[i+1] != ' ' && h.Value[i+1] != '\t') {
							t.Fatalf("Postfix: value of %s has a line that is no continuation: %q", h.Name, h.Value)
						}
					}
				}
			}
			if len(body) > 0 && !bytes.HasSuffix(body, []byte("\r\n")) {
				t.Fatalf("mta %d: body %q does not end in CRLF", mta, body)
			}
			for i, c := range body {
				if c == '\n' && (i == 0 || body[i-1] != '\r') {
					t.Fatalf("mta %d: bare LF at %d of the body %q", mta, i, body)
				}
				if mta == milter.Postfix && c == '\r' && (i+1 == len(body) || body[i+1] != '\n') {
					t.Fatalf("Postfix: bare CR at %d of the body %q", i, body)
				}
			}
			if plainMessage(raw) && !rebuilds(raw, headers, body) {
				t.Fatalf("mta %d: %q split as %+q and %q, which do not make it again", mta, raw, headers, body)
			}
		}
	})
}

func nextLF(s string, i int) int {
	j := strings.IndexByte(s[i+1:], '\n')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// plainMessage reports whether raw is a message that both MTAs pass on
// as it is, LF for CRLF: no CR or NUL, no mbox "From " line, and no blank
// before a colon (which Postfix drops from a field name).
func plainMessage(raw []byte) bool {
	return !bytes.ContainsAny(raw, "\r\x00") && !bytes.HasPrefix(raw, []byte("From ")) &&
		!bytes.Contains(raw, []byte(" :")) && !bytes.Contains(raw, []byte("\t:"))
}

// rebuilds reports whether headers and body, written back with LF line
// ends, are raw: the fields, then the blank line that ended them or
// straight the line that was no field, then the body, whose last line may
// have had no line end in raw.
func rebuilds(raw []byte, headers []filters.Header, body []byte) bool {
	var b strings.Builder
	for _, h := range headers {
		b.WriteString(h.Name + ":")
		if !h.NoSpace {
			b.WriteString(" ")
		}
		b.WriteString(h.Value + "\n")
	}
	head := b.String()
	lf := string(bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n")))
	for _, cand := range []string{
		head + "\n" + lf,
		head + "\n" + strings.TrimSuffix(lf, "\n"),
		head + lf,
		head + strings.TrimSuffix(lf, "\n"),
	} {
		if cand == string(raw) {
			return true
		}
	}
	return len(body) == 0 && strings.TrimSuffix(head, "\n") == string(raw)
}
