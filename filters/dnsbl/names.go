package dnsbl

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/idna"

	"github.com/sluice-mail/sluice/filters"
)

// Prefixes of IPv6 addresses that stand for an IPv4 host. A client that
// connects from one is that IPv4 host, or a host of its site, and lists
// of IPv4 addresses list it by that address.
var (
	// sixToFour is 6to4 (RFC 3056 section 2): the IPv4 address of the
	// site's 6to4 router in bits 16 to 47.
	sixToFour = netip.MustParsePrefix("2002::/16")
	// nat64 is the well-known prefix of IPv4/IPv6 translation (RFC
	// 6052 section 2.1), the IPv4 address in the last 32 bits (section
	// 2.2): an IPv4 client reaching an IPv6-only server through a
	// translator (RFC 7755) shows so. Network-specific prefixes are
	// chosen by each network and cannot be told from plain IPv6.
	nat64 = netip.MustParsePrefix("64:ff9b::/96")
)

// embeddedIPv4 returns the IPv4 address that an IPv6 address of 6to4 or
// of the well-known translation prefix carries. IPv4-mapped addresses
// are not handled here: they are unmapped before, as IPv4 clients.
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() || a.Is4In6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	switch {
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	case nat64.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	}
	return netip.Addr{}, false
}

// reverseIP returns the labels under which a DNSxL lists addr: the four
// octets of an IPv4 address in reverse order, "192.0.2.1" giving
// "1.2.0.192" (RFC 5782 section 2.1), and the 32 nibbles of an IPv6
// address in reverse order, in hex, dot-separated (section 2.4).
func reverseIP(a netip.Addr) string {
	if a.Is4() {
		b := a.As4()
		var sb strings.Builder
		for i := 3; i >= 0; i-- {
			sb.WriteString(strconv.Itoa(int(b[i])))
			if i > 0 {
				sb.WriteByte('.')
			}
		}
		return sb.String()
	}
	const hex = "0123456789abcdef"
	b := a.As16()
	out := make([]byte, 0, 63)
	for i := 15; i >= 0; i-- {
		out = append(out, hex[b[i]&0xf], '.', hex[b[i]>>4])
		if i > 0 {
			out = append(out, '.')
		}
	}
	return string(out)
}

// maxName is the longest domain name in presentation form without the
// final dot (RFC 1035 2.3.4: 255 octets on the wire).
const maxName = 253

// queryName joins labels and zone, or reports that the result is not a
// valid query name (too long).
func queryName(labels, zone string) (string, bool) {
	n := labels + "." + zone
	return n, len(n) <= maxName
}

// idnaProfile maps an internationalised name to its ASCII form for a
// query. It leaves out idna.Lookup's STD3 and hyphen rules, which the
// ASCII path does not apply either ("mail_1.example.org" is looked up, so
// "mail_1.bücher.example" must be too); normalizeDomain's label check
// decides which characters a query may hold.
var idnaProfile = idna.New(idna.MapForLookup(), idna.StrictDomainName(false), idna.CheckHyphens(false), idna.Transitional(false))

// normalizeDomain returns d as an RHSBL query needs it: lower case, no
// final dots, internationalised labels in their ASCII form (RFC 5891), and
// only letters, digits, hyphens and underscores in labels of 1 to 63
// bytes. It refuses address literals and single-label names, which no
// domain list lists.
func normalizeDomain(d string) (string, bool) {
	// All final dots: "spammer.example.." names spammer.example as much
	// as "spammer.example." does, and must not slip past the lists.
	d = strings.TrimRight(strings.TrimSpace(d), ".")
	if d == "" || strings.HasPrefix(d, "[") {
		return "", false
	}
	// 8-bit text that is not UTF-8 (a Latin-1 From field) is looked up
	// as the domain a mail reader shows, as the senders filter reads it.
	d = filters.AsShown(d)
	for i := 0; i < len(d); i++ {
		if d[i] >= 0x80 {
			a, err := idnaProfile.ToASCII(d)
			if err != nil {
				return "", false
			}
			// UTS 46 maps the ideographic and full-width full stops to
			// '.': "spammer.example。" ends in a dot only now.
			d = strings.TrimRight(a, ".")
			break
		}
	}
	d = strings.ToLower(d)
	if len(d) > maxName || !strings.Contains(d, ".") {
		return "", false
	}
	if !labelsOK(d) {
		return "", false
	}
	// A name whose last label is digits only is no domain (no top-level
	// domain is all-numeric, RFC 3696 2): an IPv4 address given as a
	// domain (a bare HELO argument), written plainly or with zeros in
	// front ("001.002.003.004", which netip does not parse). Spamhaus's
	// DBL answers such a query 127.0.1.255, "IP queries prohibited",
	// which a codes rule for 127.0.1.0/24 would read as a listing.
	if last := d[strings.LastIndexByte(d, '.')+1:]; strings.Trim(last, "0123456789") == "" {
		return "", false
	}
	return d, true
}

// labelsOK reports whether every label of d (lower case) has 1 to 63
// letters, digits, hyphens and underscores.
func labelsOK(d string) bool {
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// senderDomain returns the normalized domain of an envelope sender, read
// as filters.EnvelopeAddress reads it for every filter: as the MTA
// delivers the message, so that a form Postfix or Sendmail accepts and
// delivers from a listed domain ("<bob@spammer.example (x>",
// "spammer.example!bob", "bob%spammer.example", `bob@"spammer.example"`)
// is looked up at that domain, as the senders filter compares it. False
// for the null sender, an address without domain, or a domain literal.
func senderDomain(addr string) (string, bool) {
	return splitDomain(filters.EnvelopeAddress(addr))
}

// addressDomain returns the normalized domain of an address such as
// "alice@Example.ORG", read as filters.SplitAddress reads the addresses
// filters.FromAddresses gives; false for the null sender, an address
// without domain, or a domain literal.
func addressDomain(addr string) (string, bool) {
	return splitDomain(filters.SplitAddress(addr))
}

// splitDomain returns the normalized domain of a split address.
func splitDomain(_, domain string, null bool) (string, bool) {
	if null || domain == "" {
		return "", false
	}
	return normalizeDomain(domain)
}

// maxFromDomains bounds the domains looked up of the From fields read
// (messageFromDomains adds at most maxLastFieldDomains): RFC 5322
// allows several authors, and a message may carry several From fields,
// but a forged header must not fan out into hundreds of queries. It is
// filters.MaxFromFields, so that each From field read gets at least its
// first domain looked up.
const maxFromDomains = filters.MaxFromFields

// fromDomains returns the distinct domains of the addresses in a From
// header value, at most maxFromDomains, read as filters.FromAddresses
// reads them: a value net/mail refuses (comments inside an address, an
// unknown charset, stray syntax) is still searched for addresses, so that
// a spammer's broken From does not escape the check.
//
// The first domain comes first, the last one second, then the others in
// order. A field of more distinct domains than the bound is read to its
// end, so that decoys put before the real author do not push it out of
// the lookups: in a list, and in a broken field whose bracketed
// addresses filters.FromAddresses gives first, the author a mail reader
// shows after decoys is the last address. Only domains after the first
// maxFromDomains-1 and before the last are left out, so hiding the
// author takes decoys on both sides of it; looking all of them up would
// let one header fan out into hundreds of queries.
func fromDomains(value string) []string {
	var out []string
	last := ""
	for a := range filters.FromAddresses(value) {
		d, ok := addressDomain(a)
		if !ok {
			continue
		}
		last = d
		if len(out) < maxFromDomains-1 && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	// The last domain second: before the others, it is looked up even
	// when other fields share the bound.
	if i := slices.Index(out, last); i > 0 {
		out = slices.Delete(out, i, i+1)
	}
	if len(out) > 0 && last != out[0] {
		out = slices.Insert(out, 1, last)
	}
	return out
}

// maxLastFieldDomains bounds the domains looked up of the last From
// field when it is beyond the first filters.MaxFromFields (see
// messageFromDomains): its first and its last, as fromDomains orders
// them.
const maxLastFieldDomains = 2

// messageFromDomains returns the domains of the message's From fields to
// look up: those of the fields every filter reads (m.FromFields, see
// headerFromDomains), and, when the message has more From fields than
// those and the last is not one of them, the first and last domains of
// the last field. Mail readers differ in which of several From fields
// they show, some the last, so decoy fields before the author's must not
// hide it; the senders filter judges such a message by its rules. Only
// the last is added, and only two of its domains, so that a header of
// thousands of From fields costs at most maxFromDomains +
// maxLastFieldDomains queries per list. An author in a field after the
// first filters.MaxFromFields and before the last is not looked up.
func messageFromDomains(m *filters.Message) []string {
	fields := m.FromFields()
	out := headerFromDomains(fields)
	if len(fields) < filters.MaxFromFields {
		return out
	}
	last, n := "", 0
	for _, h := range m.Headers {
		if filters.SameName(h.Name, "From") {
			last = h.Value
			n++
		}
	}
	if n <= filters.MaxFromFields || slices.Contains(fields, last) {
		return out
	}
	for i, d := range fromDomains(last) {
		if i == maxLastFieldDomains {
			break
		}
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// headerFromDomains returns the distinct domains of the From field values
// fields, at most maxFromDomains in all: the first domain of each field,
// then the last of each (see fromDomains), then the second of each, and
// so on. Taken field by field, a first field crowded with addresses would
// push the author of the second out of the lookups.
func headerFromDomains(fields []string) []string {
	perField := make([][]string, len(fields))
	for i, v := range fields {
		perField[i] = fromDomains(v)
	}
	var out []string
	seen := map[string]bool{}
	for round := 0; ; round++ {
		more := false
		for _, domains := range perField {
			if round >= len(domains) {
				continue
			}
			more = true
			d := domains[round]
			if seen[d] {
				continue
			}
			seen[d] = true
			out = append(out, d)
			if len(out) == maxFromDomains {
				return out
			}
		}
		if !more {
			return out
		}
	}
}
