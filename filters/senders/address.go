package senders

import (
	"net/netip"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"

	"github.com/sluice-mail/sluice/filters"
)

// Name is an address or a host name in the form rules are compared in.
type Name struct {
	// Local is the local part: unquoted, lower case, with a BATV tag
	// removed. Empty for host names.
	Local string
	// Domain is the domain or host name: lower case, without trailing
	// dot, an internationalised name in its ASCII (punycode) form.
	Domain string
	// Null is set for the null sender <>.
	Null bool
	// Literal is set when Domain is an address literal such as
	// [192.0.2.1]; domain rules never match one.
	Literal bool
	// raw is set when Domain is not a valid internationalised name and
	// is compared as given, lower-cased; see patternSet.match.
	raw bool
}

// idnaProfile maps names as for a DNS lookup (RFC 5891 section 5, with
// UTS 46 mapping: case, width, compatibility forms), but allows the
// underscore and other characters that real host names carry.
var idnaProfile = idna.New(idna.MapForLookup(), idna.StrictDomainName(false), idna.Transitional(false))

// ParseAddress returns the compared form of an envelope or header
// address, read as filters.EnvelopeAddress reads it: angle brackets, a
// source route (ignored), a quoted local part or whole address, comments
// and blanks (a comment never closed running to the end), a UUCP path or
// the percent hack without "@", a quoted domain and a final ";", all as
// Postfix and Sendmail deliver the message. A BATV-tagged local part
// ("prvs=TAG=user", or "prvs=user=TAG" as some senders write it) is
// compared as the plain user. "" and "<>" are the null sender.
func ParseAddress(s string) Name {
	return compared(filters.EnvelopeAddress(s))
}

// parseAddress is ParseAddress for an address without comments, as
// filters.FromAddresses gives them: a local part it unquoted may hold
// parentheses and blanks, which are text.
func parseAddress(s string) Name {
	return compared(filters.SplitAddress(s))
}

// compared returns the compared form of an address split by
// filters.SplitAddress.
func compared(local, domain string, null bool) Name {
	if null {
		return Name{Null: true}
	}
	n := parseDomain(domain)
	n.Local = stripBATV(localForm(local))
	return n
}

// localForm returns a local part in compared form: lower case, and a
// UTF-8 one in Unicode normal form C (RFC 6532 section 3.1), so that
// "jösé" with combining accents is "jösé" with precomposed letters, as
// a reader sees them and as UTS 46 makes a domain.
func localForm(s string) string {
	s = lower(s)
	if isASCII(s) {
		return s
	}
	return norm.NFC.String(s)
}

// ParseHost returns the compared form of a host name: a HELO argument or
// the client's name. An address literal ("[192.0.2.1]") is marked Literal.
func ParseHost(s string) Name {
	return parseDomain(strings.TrimSpace(s))
}

// splitAddress splits an address at the "@" between the local part and
// the domain, unquoting a quoted local part (RFC 5321 section 4.1.2).
// Without "@" the whole address is the local part.
func splitAddress(s string) (local, domain string, ok bool) {
	if s[0] == '"' {
		text, n, ok := filters.ReadQuoted(s)
		switch rest := s[n:]; {
		case !ok:
			return "", "", false // unterminated quote
		case rest == "":
			return text, "", true
		case rest[0] != '@':
			return "", "", false
		default:
			return text, rest[1:], true
		}
	}
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return s, "", true
	}
	return s[:i], s[i+1:], true
}

// parseDomain normalises a domain: trailing dots, case, IDN.
func parseDomain(d string) Name {
	// Blanks between the final dots too: "spam.example ." must compare as
	// spam.example, as it does once its dot is gone.
	d = strings.TrimRightFunc(d, func(r rune) bool { return r == '.' || unicode.IsSpace(r) })
	if d == "" {
		return Name{}
	}
	if d[0] == '[' {
		return Name{Domain: canonicalLiteral(d), Literal: true}
	}
	d = filters.AsShown(d)
	if isASCII(d) {
		return Name{Domain: lower(d)}
	}
	a, err := idnaProfile.ToASCII(d)
	if err != nil || a == "" {
		// One label that is not valid IDNA ("x-", a joiner out of place)
		// must not keep the others in Unicode: the rules of an
		// internationalised parent domain are in punycode, and
		// "x-.bücher.example" would slip past "bücher.example REJECT".
		a = asciiLabels(d)
		if a == "" {
			return Name{}
		}
		return Name{Domain: a, raw: true}
	}
	// UTS 46 maps the ideographic and full-width full stops to '.', so
	// "spam.example。" ends in a dot only now; it names spam.example.
	a = strings.TrimRightFunc(a, func(r rune) bool { return r == '.' || unicode.IsSpace(r) })
	if a == "" {
		return Name{}
	}
	return Name{Domain: a}
}

// canonicalLiteral returns an address literal ("[192.0.2.1]",
// "[IPv6:2001:db8::1]", RFC 5321 section 4.1.3) in the one form rules
// and names are compared in: lower case, the address as netip writes it,
// an IPv4-mapped IPv6 address as the IPv4 address it stands for. One
// host has many spellings ("[IPv6:2001:db8:0::1]", "[IPv6:2001:DB8::1]"),
// and a sender must not get past a rule by choosing another. A literal
// that holds no address is only lower-cased.
func canonicalLiteral(lit string) string {
	lit = lower(lit)
	inner, ok := strings.CutPrefix(lit, "[")
	if !ok {
		return lit
	}
	if inner, ok = strings.CutSuffix(inner, "]"); !ok {
		return lit
	}
	inner, tagged := strings.CutPrefix(inner, "ipv6:")
	a, err := netip.ParseAddr(inner)
	if err != nil || a.Zone() != "" || tagged && !a.Is6() {
		return lit
	}
	if a = a.Unmap(); a.Is4() {
		return "[" + a.String() + "]"
	}
	// An IPv6 address written without its tag ("[2001:db8::1]", which
	// some clients send as HELO) is the same host.
	return "[ipv6:" + a.String() + "]"
}

// fullStops are the characters other than '.' that UTS 46 maps to '.'.
var fullStops = strings.NewReplacer("\u3002", ".", "\uff0e", ".", "\uff61", ".")

// asciiLabels returns a name that is not valid IDNA as a whole with each
// label that is valid in its ASCII form, the others lower-cased as
// written, and no final dots.
func asciiLabels(d string) string {
	labels := strings.Split(fullStops.Replace(d), ".")
	for i, l := range labels {
		if a, err := idnaProfile.ToASCII(l); err == nil {
			labels[i] = a
		} else {
			labels[i] = strings.ToLower(l)
		}
	}
	return strings.TrimRightFunc(strings.Join(labels, "."), func(r rune) bool { return r == '.' || unicode.IsSpace(r) })
}

// unicodeForm returns the Unicode form of an internationalised ASCII name,
// or "" when it has no punycode label that can be decoded. A label that
// is not valid IDNA stays as it is: the others are still decoded, so that
// a regular expression sees the Unicode form of a parent domain whatever
// its sub-domain is.
func unicodeForm(ascii string) string {
	if !strings.Contains(ascii, "xn--") {
		return ""
	}
	// On an error ToUnicode still returns every label it could decode.
	u, _ := idnaProfile.ToUnicode(ascii)
	if u == "" || u == ascii {
		return ""
	}
	return u
}

// stripBATV returns the user of a BATV-tagged local part (draft-levine-
// smtp-batv, "prvs=TAG=user"), so that the bounce-address tag a sender's
// MTA adds does not hide the address from address rules. Some senders
// swap the fields ("prvs=user=TAG"); the tag is recognised by its form,
// a key digit, a three-digit day and six hex digits of hash.
func stripBATV(local string) string {
	rest, ok := strings.CutPrefix(local, "prvs=")
	if !ok {
		return local
	}
	first, after, ok := strings.Cut(rest, "=")
	if !ok || first == "" || after == "" {
		return local
	}
	i := strings.LastIndexByte(rest, '=')
	last, before := rest[i+1:], rest[:i]
	switch {
	case batvTag(first, true):
		return after
	case batvTag(last, true):
		return before
	case batvTag(first, false):
		return after
	case batvTag(last, false) && before != "":
		return before
	}
	// The draft's order: the tag comes first.
	return after
}

// batvTag reports whether s looks like a BATV prvs tag: strictly, the
// draft's ten characters (four digits, six hex digits); loosely, 8 to 16
// hex digits, as other implementations write it.
func batvTag(s string, strict bool) bool {
	if strict {
		if len(s) != 10 {
			return false
		}
		for i := 0; i < 4; i++ {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
		return isHex(s[4:])
	}
	return len(s) >= 8 && len(s) <= 16 && isHex(s)
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// lower lower-cases s, without allocating when it already is.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= utf8.RuneSelf {
			return strings.ToLower(s)
		}
	}
	return s
}

// maxFromAddresses bounds the different addresses read of one From:
// field, so that a message with thousands of addresses costs no more
// than a normal one, and cannot report thousands of new domains to WATCH
// rules; filters.MaxFromFields bounds the fields read. A field with more
// is judged by Filter.crowdedVerdict: the bound must not let decoys push
// the real author out of what is read.
const maxFromAddresses = 16

// headerAddresses returns the different addresses of a From: field
// value, at most max of them, read as filters.FromAddresses reads them
// for every filter that judges the author: display names, groups,
// several addresses, encoded words, comments and blanks inside an
// address; a value net/mail cannot parse (a forged or broken field) is
// searched for <...>, then for word@word. more reports that the field
// holds another address beyond those. An address repeated is read once,
// so that repeating one does not make a field look crowded.
func headerAddresses(value string, max int) (addrs []string, more bool) {
	for a := range filters.FromAddresses(value) {
		if slices.Contains(addrs, a) {
			continue
		}
		if len(addrs) == max {
			return addrs, true
		}
		addrs = append(addrs, a)
	}
	return addrs, false
}

// FromFieldNames returns the compared forms of the addresses of a From:
// field value, read as the filter reads the field at the end of the
// header (see headerAddresses), at most the filter's bound of them; more
// reports that the field holds another address beyond those. A value
// that is an address in an envelope form only ("bob%spam.example")
// holds none, and a display name does not hide the address after it:
// "sluice senders test" shows what the filter does with the field.
func FromFieldNames(value string) (names []Name, more bool) {
	addrs, more := headerAddresses(value, maxFromAddresses)
	names = make([]Name, len(addrs))
	for i, a := range addrs {
		names[i] = parseAddress(a)
	}
	return names, more
}
