package filters

import (
	"strings"
	"unicode"
)

// EnvelopeAddress returns the local part and the domain of an envelope
// sender (MAIL FROM) as the MTA delivers the message from it, not as the
// client wrote it; null is set for the null sender. Every filter that
// judges the envelope sender's domain reads it here, so that a form one
// of them understands cannot be used to slip past another.
//
// Comments and the blanks next to "@" and "." are dropped first, outside
// quoted strings (WithoutCFWS): RFC 5321 has none in an envelope
// address, but an MTA that reads MAIL FROM leniently accepts the RFC 5322
// forms ("bob@(x)spam.example", "bob @ spam . example") and passes them
// on as written, and they name spam.example all the same. A comment
// never closed runs to the end of the address, as Postfix reads MAIL
// FROM: it accepts "<bob@spam.example (x>" and delivers the message from
// bob@spam.example. The rest is read as SplitAddress reads it, but for
// the local part, which is read as Postfix delivers the message, its
// quoted words and backslash-quoted characters unquoted (see
// envelopeLocal).
//
// Postfix reads the address as an RFC 822 address list and takes its one
// address: empty elements of the list, commas and semicolons before or
// after the address, are dropped. It accepts MAIL FROM:<bob@spam.example,>
// and <;bob@spam.example> and delivers from bob@spam.example, and <,>
// from the null sender; they are read so here. So is a group, an RFC 822
// "name:address;" (see groupMember): Postfix delivers
// MAIL FROM:<x:bob@spam.example;> from bob@spam.example, and <x:;> from
// the null sender. (Sendmail delivers the former from
// x:bob@spam.example, at the same domain; an address rule on
// bob@spam.example refuses it too, which mail worth having does not
// miss: no MTA or mail client writes a group in MAIL FROM.) A name
// before the address in angle brackets is dropped (see routeAddr):
// both MTAs deliver MAIL FROM:<"Joe" <bob@spam.example>> from
// bob@spam.example.
func EnvelopeAddress(s string) (local, domain string, null bool) {
	return splitAddress(cutOpenComment(WithoutCFWS(s)), true)
}

// trimList removes from the ends of an envelope address the commas,
// semicolons and blanks that Postfix drops as empty list elements.
func trimList(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return r == ',' || r == ';' || unicode.IsSpace(r) })
}

// SplitAddress is EnvelopeAddress for an address without comments, as
// FromAddresses gives them: a local part it unquoted may hold
// parentheses and blanks, which are text. It reads:
//
//   - the angle brackets, even one without the other;
//   - a source route (RFC 5321 section 4.1.2:
//     "@relay1,@relay2:user@domain"), which is ignored as RFC 5321
//     appendix C asks; a route to no address is the null sender, as
//     Postfix takes it, and so is "" or "<>";
//   - one quoted string holding a whole address ("bob@spam.example"),
//     which Postfix delivers from bob@spam.example;
//   - the last "@" outside quoted strings (see splitMailAddress), and a
//     local part that is one quoted string unquoted;
//   - without "@", a UUCP path site!user as user@site (Postfix's
//     swap_bangpath, Sendmail does the same) and user%site as user@site
//     (the percent hack, the last "%" counting);
//   - a domain without the quotes and backslashes that quote its
//     characters, and without a final ";" (Sendmail drops it), dots and
//     blanks.
//
// The local part is returned as written otherwise: case, BATV tags and
// Unicode forms are the caller's to compare, and the domain is neither
// lower-cased nor checked. A domain literal ("[192.0.2.1]") is returned
// as it is.
func SplitAddress(s string) (local, domain string, null bool) {
	return splitAddress(s, false)
}

// splitAddress is SplitAddress; envelope says that s is an envelope
// sender, whose empty list elements are dropped (see EnvelopeAddress).
func splitAddress(s string, envelope bool) (local, domain string, null bool) {
	local, domain, null = splitRaw(s, envelope)
	if envelope {
		return envelopeLocal(local), domain, null
	}
	return unquoteLocal(local), domain, null
}

// envelopeLocal returns the local part of an envelope sender as Postfix
// delivers from it: its words, atoms and quoted strings between dots,
// without the quotes, and without the backslash of each quoted
// character, inside quotes or outside. RFC 5321 has neither a backslash
// outside a quoted string nor a local part that mixes quoted strings and
// dots, but Postfix accepts MAIL FROM:<\mallory@x>, <m\allory@x> and
// <"mal"."lory"@x> and delivers the message from mallory@x and
// mal.lory@x (observed with 3.7): a rule on that address must see it
// so. A local part that is one quoted string ("a b") is unquoted as
// before. One that is not made of such words (a quote never closed, or
// one in the middle of a word, "x"y, which Postfix refuses) is left as
// SplitAddress leaves it.
func envelopeLocal(s string) string {
	if !strings.ContainsAny(s, `"\`) {
		return s
	}
	var b strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			// A quoted string is a whole word: it starts the local
			// part or follows a dot, and ends it or precedes one.
			if !quoted && i > 0 && s[i-1] != '.' || quoted && i+1 < len(s) && s[i+1] != '.' {
				return unquoteLocal(s)
			}
			quoted = !quoted
			continue
		case c == '\\' && i+1 < len(s):
			i++
			c = s[i]
		}
		b.WriteByte(c)
	}
	if quoted {
		return unquoteLocal(s)
	}
	return b.String()
}

// splitRaw is splitAddress with the local part as written: quoted
// strings and backslashes left in.
func splitRaw(s string, envelope bool) (local, domain string, null bool) {
	// The brackets, even one without the other, as go-milter takes
	// them off the envelope sender: "<bob@spam.example (x>" is cut
	// before its ">".
	s = strings.TrimSpace(s)
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">"))
	if envelope {
		if member, ok := groupMember(s); ok {
			// The member may have brackets of its own:
			// <x:<bob@spam.example>;>.
			s = strings.TrimSpace(trimList(member))
			s = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">"))
		}
		s = trimList(routeAddr(s))
	}
	if s == "" {
		return "", "", true
	}
	if s[0] == '@' {
		// A source route, which a colon ends (RFC 5321 section 4.1.2).
		// Without one it is no route: "@x@spam.example" is a local
		// part that starts with "@" (net/mail gives the From: address
		// "@x"@spam.example unquoted), and "@spam.example" an address
		// with an empty local part, which a mail reader shows with
		// its domain; both are addresses at spam.example.
		if i := routeEnd(s); i >= 0 {
			s = s[i+1:]
			if envelope {
				s = trimList(s)
			}
			if s == "" {
				// A source route to no address ("<@a:>"), which
				// Postfix takes for the null sender.
				return "", "", true
			}
		}
	}
	if s[0] == '"' {
		// One quoted string holding a whole address: Postfix takes
		// MAIL FROM:<"bob@spam.example"> and delivers the message from
		// bob@spam.example. Postfix unquotes the string and quotes
		// anew only what needs it, so a text that needs no quotes
		// (a dot-atom) is read as if written bare, the UUCP path and
		// the percent hack below included: it delivers
		// <"bob%spam.example"> and <"spam.example!bob"> from
		// bob@spam.example, and <"bob % spam.example"> from the
		// quoted local part as it is (observed with 3.7).
		if text, n, ok := ReadQuoted(s); ok && n == len(s) && (strings.Contains(text, "@") || isDotAtom(text)) {
			s = text
		}
	}
	local, domain = splitMailAddress(s)
	if bang, pct, at := unquotedMarks(s); at < 0 {
		// Without "@", Postfix makes an address of a UUCP path,
		// site!user, as user@site (swap_bangpath), and of user%site
		// as user@site (the percent hack, the last "%" counting), and
		// delivers the message from it, as Sendmail does the UUCP path.
		// Blanks around the "!" or "%" are no part of either: Postfix
		// delivers <bob % x> from bob@x.
		if bang > 0 {
			local, domain = strings.TrimSpace(s[bang+1:]), strings.TrimSpace(s[:bang])
		} else if pct >= 0 && pct < len(s)-1 {
			local, domain = strings.TrimSpace(s[:pct]), strings.TrimSpace(s[pct+1:])
		}
	}
	// Sendmail drops a final ";" (MAIL FROM:<bob@spam.example ;>) and
	// delivers from bob@spam.example.
	domain = strings.TrimRightFunc(domainText(domain), func(r rune) bool { return r == ';' || r == '.' || unicode.IsSpace(r) })
	return local, domain, false
}

// groupMember returns the address of the group that the envelope sender
// s is, and whether it is one: an RFC 822 group, "name:address;", ends
// in a ";" outside quoted strings (which only commas, semicolons and
// blanks, empty list elements, may follow). Its address is what follows the last
// colon outside quoted strings and address literals, as Postfix reads
// it: it delivers <x:y:bob@x;> and <x:@relay:bob@x;> from bob@x, and
// <x:bob@x:;> from the null sender. A backslash quotes the next
// character, outside quoted strings too (<x\:bob@x;> is "x:bob"@x to
// Postfix). Without the ";" the colon is part of the local part: Postfix
// delivers <x:bob@x> from "x:bob"@x, and a source route is read by
// splitAddress.
func groupMember(s string) (string, bool) {
	s = strings.TrimRightFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	colon := -1
	group := false
	quoted, literal := false, false
	for i := 0; i < len(s); i++ {
		group = false
		switch c := s[i]; {
		case c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '[':
			literal = true
		case c == ']':
			literal = false
		case c == ':' && !literal:
			colon = i
		case c == ';':
			group = true
		}
	}
	if !group || colon < 0 {
		return s, false
	}
	return s[colon+1:], true
}

// routeAddr returns the address of an RFC 822 mailbox written with a
// phrase, "name <address>": what follows the first "<" outside quoted
// strings, up to the next ">" if there is one (go-milter takes the
// final ">" off with the envelope's). Postfix reads MAIL FROM so: it
// delivers MAIL FROM:<"Joe" <joe@example.com>> from joe@example.com
// (observed with 3.7). An empty "<>" with text after it is part of the
// phrase, and the address is read in that text: Postfix delivers
// <x<>bob@x> and <x <> y <> <bob@x>> from bob@x, and <x <>> from the
// null sender. Any other s is returned as it is.
func routeAddr(s string) string {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case c == '<' && !quoted:
			if i == 0 {
				return s
			}
			addr := s[i+1:]
			j := strings.IndexByte(addr, '>')
			if j < 0 {
				return strings.TrimSpace(addr)
			}
			rest := strings.TrimSpace(addr[j+1:])
			if addr = strings.TrimSpace(addr[:j]); addr != "" || rest == "" {
				return addr
			}
			// An empty "<>" before more text: read on from the
			// text, as from the start, its own brackets taken off.
			s = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(rest, "<"), ">"))
			i, quoted = -1, false
		}
	}
	return s
}

// DeliveredSender returns the envelope sender s written as Postfix
// writes the address it delivers the message from, in the Return-Path
// field and the mbox From_ line of a mailbox: "" for the null sender,
// else the address EnvelopeAddress reads, its local part without
// quotes and backslashes and quoted anew only where RFC 5322 needs it
// (see quoteLocal). So MAIL FROM:<"Joe" <joe@example.com>>,
// <x:joe@example.com;>, <joe@example.com (Joe)>, <"joe"@example.com>
// and <example.com!joe> are delivered, and returned, as
// joe@example.com, and <"john smith"@example.com> as it is (observed
// with Postfix 3.7). An address without a domain is returned without
// one: Postfix adds its $myorigin, which is not known here.
func DeliveredSender(s string) string {
	local, domain, null := splitRaw(cutOpenComment(WithoutCFWS(s)), true)
	if null {
		return ""
	}
	local = quoteLocal(localText(local))
	if domain == "" {
		return local
	}
	return local + "@" + domain
}

// localText returns a local part as Postfix keeps it: without the quotes
// of its quoted strings and the blanks outside them, and with each
// backslash replaced by the character it quotes, inside quoted strings
// or not (Postfix delivers MAIL FROM:<x\:bob@x> and <"a" . "b"@x> from
// "x:bob"@x and a.b@x).
func localText(s string) string {
	if !strings.ContainsAny(s, "\"\\ \t") {
		return s
	}
	var b strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			quoted = !quoted
		case (c == ' ' || c == '\t') && !quoted:
		case c == '\\':
			if i++; i < len(s) {
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// quoteLocal returns a local part as an address writes it: as it is
// when it is a dot-atom (RFC 5322 section 3.4.1), else as a quoted
// string, with a backslash before each quote and backslash. Postfix
// quotes so: "john smith", ".a", "a..b", "x:bob" and an empty local part
// are quoted, and characters past ASCII are left alone (SMTPUTF8).
func quoteLocal(s string) string {
	if isDotAtom(s) {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// isDotAtom tells whether s is atoms joined by single dots; a byte past
// ASCII counts as atom text.
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || strings.IndexByte(`()<>@,;:\"[]`, c) >= 0 {
			return false
		}
	}
	return true
}

// cutOpenComment returns s up to its first "(" outside quoted strings:
// once WithoutCFWS has removed the comments, one that is left was never
// closed. A backslash quotes the next character outside quoted strings
// too, as WithoutCFWS and Postfix read it: "\(" opens no comment, and
// Postfix delivers MAIL FROM:<bob\(x@spam.example> from
// "bob(x"@spam.example (observed with 3.7). Cut there, the address
// would lose its domain and pass every rule on spam.example.
func cutOpenComment(s string) string {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case c == '(' && !quoted:
			return s[:i]
		}
	}
	return s
}

// unquotedMarks returns the index of the first "!", of the last "%" and
// of the last "@" of s outside quoted strings, -1 for none.
func unquotedMarks(s string) (bang, pct, at int) {
	bang, pct, at = -1, -1, -1
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '!' && bang < 0:
			bang = i
		case c == '%':
			pct = i
		case c == '@':
			at = i
		}
	}
	return bang, pct, at
}

// domainText returns a domain without the quotes and backslashes that
// quote its characters: Postfix accepts MAIL FROM:<bob@"spam.example">
// and <bob@spam.example\ > and delivers the message from
// bob@spam.example.
func domainText(d string) string {
	if !strings.ContainsAny(d, "\"\\") {
		return d
	}
	var b strings.Builder
	for i := 0; i < len(d); i++ {
		switch c := d[i]; c {
		case '"':
		case '\\':
			if i++; i < len(d) {
				b.WriteByte(d[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// WithoutRoute returns the envelope address s, without its angle
// brackets, less a source route at its start ("@relay1,@relay2:"), which
// RFC 5321 appendix C asks a receiver to ignore: Postfix 3.7 and
// Sendmail 8.17 deliver MAIL FROM:<@relay.example:alice@example.org>
// from alice@example.org (observed). Anything else is returned as it is.
func WithoutRoute(s string) string {
	if !strings.HasPrefix(s, "@") {
		return s
	}
	if i := routeEnd(s); i >= 0 {
		return s[i+1:]
	}
	return s
}

// routeEnd returns the index of the colon that ends the source route at
// the start of s, or -1. A hop may be an address literal, whose IPv6
// form holds colons of its own ("@[IPv6:2001:db8::1]:user@domain").
func routeEnd(s string) int {
	inLiteral := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			inLiteral = true
		case ']':
			inLiteral = false
		case ':':
			if !inLiteral {
				return i
			}
		}
	}
	return -1
}

// splitMailAddress splits an address found in mail at the "@" before
// its domain: the last "@" outside quoted strings, or the last of all
// when the quotes do not pair up. Postfix too takes the domain from the
// last "@", and a mail reader shows the same domain, however the local
// part before it is written: a quoted part followed by more text
// ("x"y@spam.example), a quote never closed, or a local part that
// net/mail gives unquoted, quotes and "@" included (the From: address
// "\"a\"@x"@spam.example comes as "a"@x@spam.example). A backslash
// quotes the next character only inside a quoted string (RFC 5322
// section 3.2.4). The local part is returned as written.
func splitMailAddress(s string) (local, domain string) {
	at := -1
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == '@' && !quoted:
			at = i
		}
	}
	if quoted {
		at = strings.LastIndexByte(s, '@')
	}
	if at < 0 {
		return s, ""
	}
	return s[:at], s[at+1:]
}

// unquoteLocal returns the text of a local part that is one quoted
// string, and any other local part as it is.
func unquoteLocal(s string) string {
	if len(s) < 2 || s[0] != '"' {
		return s
	}
	if text, n, ok := ReadQuoted(s); ok && n == len(s) {
		return text
	}
	return s
}

// ReadQuoted reads the quoted string s starts with (s[0] is '"'): its
// text, with each backslash quoting the next character, and its length
// with both quotes; false if it is never closed.
func ReadQuoted(s string) (text string, n int, ok bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			i++
			if i < len(s) {
				b.WriteByte(s[i])
			}
		case '"':
			return b.String(), i + 1, true
		default:
			b.WriteByte(c)
		}
	}
	return "", len(s), false
}
