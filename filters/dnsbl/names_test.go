package dnsbl

import (
	"net/netip"
	"strings"
	"testing"
)

func TestReverseIP(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		// RFC 5782 section 2.1 and 2.4 examples.
		{"192.168.42.23", "23.42.168.192"},
		{"2001:db8:1:2:3:4:567:89ab", "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2"},
		{"127.0.0.2", "2.0.0.127"},
		{"0.0.0.0", "0.0.0.0"},
		{"255.10.1.200", "200.1.10.255"},
	} {
		if got := reverseIP(netip.MustParseAddr(tc.in)); got != tc.want {
			t.Errorf("reverseIP(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	// The IPv6 test entry of RFC 5782 section 5 is an IPv4-mapped address
	// written out in nibbles, not the IPv4 one.
	if got, want := reverseIP(testEntry.v6), "2.0.0.0.0.0.f.7.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0"; got != want {
		t.Errorf("IPv6 test entry %s, want %s", got, want)
	}
}

func TestDomains(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"Example.ORG", "example.org", true},
		{"example.org.", "example.org", true},
		{"Example.ORG...", "example.org", true},
		{".", "", false},
		{"mail_1.example.org", "mail_1.example.org", true},
		{"bücher.example", "xn--bcher-kva.example", true},
		// UTS 46 full stops: a final one is a final dot.
		{"spammer.example。", "spammer.example", true},
		{"spammer.example．｡", "spammer.example", true},
		{"Bücher.example。", "xn--bcher-kva.example", true},
		// An internationalised name is held to the same label rules as
		// an ASCII one, no stricter.
		{"mail_1.bücher.example", "mail_1.xn--bcher-kva.example", true},
		{"ab--cd.bücher.example", "ab--cd.xn--bcher-kva.example", true},
		{"bad domain.bücher.example", "", false},
		{"localhost", "", false},
		{"[192.0.2.1]", "", false},
		{"192.0.2.1", "", false},
		// No top-level domain is all-numeric: an address with zeros in
		// front, which netip does not parse, is not looked up either
		// (Spamhaus's DBL answers IP queries with a code of its range).
		{"001.002.003.004", "", false},
		{"mail.example.123", "", false},
		{"1.example", "1.example", true},
		{"", "", false},
		{"a..b", "", false},
		{"bad domain.example", "", false},
		{strings.Repeat("a", 64) + ".example", "", false},
	} {
		got, ok := normalizeDomain(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("normalizeDomain(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"alice@Example.ORG", "example.org", true},
		{"<alice@example.org>", "example.org", true},
		{`"odd@local"@example.org`, "example.org", true},
		{"", "", false},
		{"postmaster", "", false},
		{"a@[192.0.2.1]", "", false},
	} {
		got, ok := addressDomain(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("addressDomain(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestFromDomains(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice@example.org", "example.org"},
		{`"Alice" <alice@Example.org>`, "example.org"},
		{"Alice <a@one.example>,\r\n Bob <b@two.example>, c@one.example", "one.example two.example"},
		// An encoded word in a charset Go does not know does not hide
		// the address.
		{"=?x-unknown?q?Bank?= <security@phish.example>", "phish.example"},
		{"undisclosed-recipients:;", ""},
		{"a@1.example, b@2.example, c@3.example, d@4.example, e@5.example, f@6.example, g@7.example, h@8.example, i@9.example", "1.example 9.example 2.example 3.example 4.example 5.example 6.example 7.example"},
		// The last domain is read past the bound, and comes second; a
		// repeat is one domain.
		{"a@1.example, b@2.example, c@1.example", "1.example 2.example"},
		{"a@1.example, b@2.example, c@3.example, d@2.example", "1.example 2.example 3.example"},
		{"a@1.example, b@2.example, c@3.example, d@4.example, e@5.example, f@6.example, g@7.example, h@8.example, i@9.example, j@1.example", "1.example 2.example 3.example 4.example 5.example 6.example 7.example"},
		// Comments and blanks inside an address (RFC 5322 3.4.1, 4.4).
		{"a@(comment)listed.example", "listed.example"},
		{"a @ listed.example", "listed.example"},
		{"(a@decoy.example) b@(c)listed.example", "listed.example"},
		{`"quoted (no comment) @ here" <a@ listed.example>`, "listed.example"},
		{`Bob <a@(x\) still a comment)listed.example>`, "listed.example"},
		// A comment never closed is no comment: what follows it stays.
		{"Bob (the builder <bob@(x)listed.example>", "listed.example"},
		{"((((( a@listed.example", "listed.example"},
	} {
		if got := strings.Join(fromDomains(tc.in), " "); got != tc.want {
			t.Errorf("fromDomains(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTextHelpers(t *testing.T) {
	if got := unescapeTXT(`Listed \"here\" \\ \001end\0`); got != "Listed \"here\" \\ \x01end0" {
		t.Errorf("unescapeTXT: %q", got)
	}
	if got := sanitize("  two\r\n  lines\tand\x00 ümlaut  ", 100); got != "two lines and ?mlaut" {
		t.Errorf("sanitize: %q", got)
	}
	if got := sanitize(strings.Repeat("x", 500), 400); len(got) != 400 {
		t.Errorf("sanitize kept %d bytes, want 400", len(got))
	}
	// Cut at a space: none is left at the end.
	if got := sanitize("long\treason\n\nhere", 5); got != "long" {
		t.Errorf("sanitize: %q, want \"long\"", got)
	}
	long := "zone.example; client=2001:db8::1; code=127.0.0.2,127.0.0.3; score=1; reason=\"" + strings.Repeat("r", 60) + "\""
	folded := fold("X-Sluice-DNSBL", long)
	if strings.ReplaceAll(folded, "\n\t", " ") != long {
		t.Errorf("fold changed the content: %q", folded)
	}
	for i, line := range strings.Split(folded, "\n") {
		if i > 0 && !strings.HasPrefix(line, "\t") {
			t.Errorf("continuation line %q does not start with a tab", line)
		}
	}
	if !strings.Contains(folded, "\n") {
		t.Errorf("a %d-byte value was not folded", len(long))
	}
}

// FuzzFromDomains checks that no From field value makes fromDomains
// panic or return more than maxFromDomains domains, or a domain that is
// not in the form lookups need.
func FuzzFromDomains(f *testing.F) {
	for _, seed := range []string{
		"alice@example.org",
		"Alice <a@one.example>,\r\n Bob <b@two.example>",
		"=?x-unknown?q?Bank?= <security@phish.example>",
		"a@(comment)listed.example",
		"Bob <a@ (x (y) z) listed . example>",
		"Bob (unclosed <a@listed.example>",
		`"a\"(b" <c@(d\)e)f.example>`,
		"((((((",
		"a@bücher.example (x",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		domains := fromDomains(value)
		if len(domains) > maxFromDomains {
			t.Errorf("%d domains, at most %d allowed", len(domains), maxFromDomains)
		}
		for _, d := range domains {
			if n, ok := normalizeDomain(d); !ok || n != d {
				t.Errorf("domain %q is not in normal form (%q, %v)", d, n, ok)
			}
		}
	})
}
