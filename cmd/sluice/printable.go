package main

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// printable returns s with control characters (C0, DEL and C1) and bytes
// that are not UTF-8 written as Go escapes, so that text from a message
// shown on a terminal cannot move the cursor, retitle the window or
// answer for the user.
func printable(s string) string { return escapeControls(s, "") }

// escapeControls is printable, but keeps the characters of keep as they
// are.
func escapeControls(s, keep string) string {
	return string(appendEscaped(nil, []byte(s), keep))
}

// appendEscaped appends to b what escapeControls makes of s.
func appendEscaped(b, s []byte, keep string) []byte {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRune(s[i:])
		switch {
		case r < 0x80 && strings.ContainsRune(keep, r):
			b = append(b, s[i])
		case r == utf8.RuneError && n == 1:
			b = fmt.Appendf(b, `\x%02x`, s[i])
		case r < 0x80 && unicode.IsControl(r):
			b = fmt.Appendf(b, `\x%02x`, r)
		case unicode.IsControl(r):
			b = fmt.Appendf(b, `\u%04x`, r)
		default:
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return b
}

// escapeWriter writes what escapeControls makes of the text written to
// it, piece by piece: a character cut between two writes is kept for the
// next one, so the output is that of escapeControls on the whole text.
// Flush writes a cut character left at the end.
type escapeWriter struct {
	w    io.Writer
	keep string
	// cut holds the start of a character that the last write ended in;
	// buf is the escaped text of a write, kept for the next.
	cut, buf []byte
}

func (e *escapeWriter) Write(p []byte) (int, error) {
	n := len(p)
	e.buf = e.buf[:0]
	if len(e.cut) > 0 {
		// The character cut, completed by the start of p (or not).
		k := min(len(p), utf8.UTFMax-len(e.cut))
		joined := append(e.cut, p[:k]...)
		_, size := utf8.DecodeRune(joined)
		if !utf8.FullRune(joined) {
			// Still cut (p is short): wait for more.
			e.cut = joined
			return n, nil
		}
		e.buf = appendEscaped(e.buf, joined[:size], e.keep)
		// What the character did not take of p is read from p; the
		// bytes of the cut it did not take (when they are no UTF-8)
		// come before that.
		if size < len(e.cut) {
			e.buf = appendEscaped(e.buf, e.cut[size:], e.keep)
			size = len(e.cut)
		}
		p = p[size-len(e.cut):]
		e.cut = e.cut[:0]
	}
	end := len(p)
	// A character is at most utf8.UTFMax bytes: only the last bytes of
	// p may be the start of one that the next write ends.
	for i := max(0, len(p)-utf8.UTFMax+1); i < len(p); i++ {
		if utf8.RuneStart(p[i]) && !utf8.FullRune(p[i:]) {
			end = i
			break
		}
	}
	e.cut = append(e.cut, p[end:]...)
	e.buf = appendEscaped(e.buf, p[:end], e.keep)
	if _, err := e.w.Write(e.buf); err != nil {
		return 0, err
	}
	return n, nil
}

// Flush writes the bytes of a character cut at the end, escaped as
// escapeControls escapes an incomplete one.
func (e *escapeWriter) Flush() error {
	if len(e.cut) == 0 {
		return nil
	}
	_, err := e.w.Write(appendEscaped(nil, e.cut, e.keep))
	e.cut = e.cut[:0]
	return err
}
