package main

import (
	"fmt"
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
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r < 0x80 && strings.ContainsRune(keep, r):
			b.WriteByte(s[i])
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x80 && unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.IsControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
