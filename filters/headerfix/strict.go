package headerfix

import (
	"strings"

	"github.com/sluice-mail/sluice/filters"
)

// Postfix replaces a bare CR in a header line with a space before anyone
// sees the line (observed with Postfix 3.7, see docs/headerfix.md), so
// "Date: <date>\rFrom: <addr>" reaches the milter as one Date field whose
// value is the date, a space and "From: <addr>". In a field of free text
// (Subject) that cannot be told apart from a subject that happens to read
// like that. In a field with a strict syntax it can: the value is valid
// up to the space and invalid as a whole, and the text after the space is
// a header field. strictFields lists those fields, each with a function
// that measures how much of a value is valid.
//
// A prefix function returns the length of the longest prefix of s that is
// the field's syntax followed by comments and whitespace (CFWS, RFC 5322
// 3.2.2), or -1 when s does not start with the field's syntax at all. It
// reads s once, from the start, so unmerge takes linear time.
var strictFields = []struct {
	name   string
	prefix func(s string) int
}{
	{"Received", receivedPrefix},
	{"Date", dateTimePrefix},
	{"Resent-Date", dateTimePrefix},
	{"Message-ID", msgIDPrefix},
	{"Resent-Message-ID", msgIDPrefix},
	{"Content-ID", msgIDPrefix},
	{"In-Reply-To", msgIDListPrefix},
	{"References", msgIDListPrefix},
	{"MIME-Version", mimeVersionPrefix},
	{"Content-Transfer-Encoding", tokenPrefix},
}

// strictPrefix returns the prefix function of a strict field, or nil.
func strictPrefix(name string) func(string) int {
	for _, f := range strictFields {
		if filters.SameName(f.name, name) {
			return f.prefix
		}
	}
	return nil
}

// unmerge splits the value of a strict field that runs on into another
// header field: value = first + whitespace + name + ":" + rest.
func unmerge(name, value string) (first, newName, rest string, ok bool) {
	prefix := strictPrefix(name)
	if prefix == nil {
		return "", "", "", false
	}
	p := prefix(value)
	if p <= 0 || p >= len(value) || !isWSP(value[p-1]) {
		return "", "", "", false
	}
	// Postfix leaves a space where the bare CR was. Text at the start of
	// a continuation line is valid folding, part of this field for every
	// reader: making a field of it would add one nobody saw.
	k := p
	for k > 0 && isWSP(value[k-1]) {
		k--
	}
	if strings.ContainsAny(value[k:p], "\r\n") {
		return "", "", "", false
	}
	n, start, ok := fieldAt(value[p:])
	if !ok {
		return "", "", "", false
	}
	return strings.TrimRight(value[:p], " \t\r\n"), n, value[p+start:], true
}

func isWSP(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// cfws skips whitespace (folding included) and comments from s[i:] and
// returns the position after them. An unclosed comment is not skipped.
func cfws(s string, i int) int {
	for i < len(s) {
		switch {
		case isWSP(s[i]):
			i++
		case s[i] == '(':
			j, ok := comment(s, i)
			if !ok {
				return i
			}
			i = j
		default:
			return i
		}
	}
	return i
}

// comment reads a comment, nested comments and quoted pairs included,
// starting at the "(" at s[i]; it returns the position after it.
func comment(s string, i int) (int, bool) {
	depth := 0
	for ; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i + 1, true
			}
		}
	}
	return 0, false
}

// digits returns the position after the run of 1 to max digits at s[i:],
// or -1.
func digits(s string, i, min, max int) int {
	j := i
	for j < len(s) && j-i < max && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	if j-i < min {
		return -1
	}
	if j < len(s) && s[j] >= '0' && s[j] <= '9' {
		return -1 // more digits than allowed
	}
	return j
}

// word returns the position after the ASCII letters at s[i:], and them.
func word(s string, i int) (int, string) {
	j := i
	for j < len(s) && (s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z') {
		j++
	}
	return j, s[i:j]
}

var (
	dayNames   = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
	monthNames = []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
	// Zone names of RFC 5322 4.3 (obs-zone), besides military letters.
	zoneNames = []string{"ut", "gmt", "est", "edt", "cst", "cdt", "mst", "mdt", "pst", "pdt"}
)

func oneOf(w string, list []string) bool {
	for _, x := range list {
		if strings.EqualFold(w, x) {
			return true
		}
	}
	return false
}

// dateTimePrefix measures an RFC 5322 date-time (3.3, with the obsolete
// forms of 4.3: two-digit years, named zones, CFWS between the parts).
func dateTimePrefix(s string) int {
	i := cfws(s, 0)
	if j, w := word(s, i); w != "" {
		if !oneOf(w, dayNames) {
			return -1
		}
		i = cfws(s, j)
		if i >= len(s) || s[i] != ',' {
			return -1
		}
		i = cfws(s, i+1)
	}
	if i = digits(s, i, 1, 2); i < 0 {
		return -1
	}
	i = cfws(s, i)
	j, w := word(s, i)
	if !oneOf(w, monthNames) {
		return -1
	}
	i = cfws(s, j)
	if i = digits(s, i, 2, 4); i < 0 {
		return -1
	}
	i = cfws(s, i)
	if i = digits(s, i, 2, 2); i < 0 {
		return -1
	}
	for part := 0; part < 2; part++ {
		k := cfws(s, i)
		if k >= len(s) || s[k] != ':' {
			if part == 0 {
				return -1 // minutes are required
			}
			break
		}
		k = cfws(s, k+1)
		if k = digits(s, k, 2, 2); k < 0 {
			return -1
		}
		i = k
	}
	if i >= len(s) || !isWSP(s[i]) && s[i] != '(' {
		return -1
	}
	i = cfws(s, i)
	switch {
	case i < len(s) && (s[i] == '+' || s[i] == '-'):
		if i = digits(s, i+1, 4, 4); i < 0 {
			return -1
		}
	default:
		j, w := word(s, i)
		if !oneOf(w, zoneNames) && !(len(w) == 1 && w != "j" && w != "J") {
			return -1
		}
		i = j
	}
	if i < len(s) && !isWSP(s[i]) && s[i] != '(' {
		return -1
	}
	return cfws(s, i)
}

// receivedPrefix measures a Received: field (RFC 5322 3.6.7): tokens up
// to a semicolon, then a date-time. A chain of Received: fields is where a
// relay that ends lines in bare CR does the most harm, and the date-time
// at the end gives the field a clear end.
func receivedPrefix(s string) int {
	i := 0
	for i < len(s) && s[i] != ';' {
		switch s[i] {
		case '(':
			j, ok := comment(s, i)
			if !ok {
				return -1
			}
			i = j
		case '"':
			j := i + 1
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return -1
			}
			i = j + 1
		default:
			i++
		}
	}
	if i >= len(s) {
		return -1
	}
	p := dateTimePrefix(s[i+1:])
	if p < 0 {
		return -1
	}
	return i + 1 + p
}

// msgID returns the position after an RFC 5322 msg-id ("<" id ">") at
// s[i:], or -1. The id may be any run of visible characters except angle
// brackets: old software writes ids without "@", and this is about line
// ends, not about msg-id syntax.
func msgID(s string, i int) int {
	if i >= len(s) || s[i] != '<' {
		return -1
	}
	j := i + 1
	for j < len(s) && s[j] > ' ' && s[j] < 0x7f && s[j] != '<' && s[j] != '>' {
		j++
	}
	if j == i+1 || j >= len(s) || s[j] != '>' {
		return -1
	}
	return j + 1
}

func msgIDPrefix(s string) int {
	i := msgID(s, cfws(s, 0))
	if i < 0 {
		return -1
	}
	return cfws(s, i)
}

func msgIDListPrefix(s string) int {
	i := msgID(s, cfws(s, 0))
	if i < 0 {
		return -1
	}
	for {
		i = cfws(s, i)
		j := msgID(s, i)
		if j < 0 {
			return i
		}
		i = j
	}
}

// mimeVersionPrefix measures "1.0" (RFC 2045 4) with comments around.
func mimeVersionPrefix(s string) int {
	i := cfws(s, 0)
	if i = digits(s, i, 1, 3); i < 0 {
		return -1
	}
	i = cfws(s, i)
	if i >= len(s) || s[i] != '.' {
		return -1
	}
	i = cfws(s, i+1)
	if i = digits(s, i, 1, 3); i < 0 {
		return -1
	}
	return cfws(s, i)
}

// tokenPrefix measures an RFC 2045 token (a Content-Transfer-Encoding
// mechanism) with comments around.
func tokenPrefix(s string) int {
	i := cfws(s, 0)
	j := i
	for j < len(s) && s[j] > ' ' && s[j] < 0x7f && !strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(s[j])) {
		j++
	}
	if j == i {
		return -1
	}
	return cfws(s, j)
}
