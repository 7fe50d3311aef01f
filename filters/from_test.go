package filters_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
)

func TestFromAddresses(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  []string
	}{
		{"alice@example.org", []string{"alice@example.org"}},
		{`"Bank, Support" <help@bank.example>, bob@x.example`, []string{"help@bank.example", "bob@x.example"}},
		{"Alice\r\n <alice@example.org>", []string{"alice@example.org"}},
		// An encoded word in a charset Go does not know still reads.
		{"=?x-unknown?q?Bank?= <security@phish.example>", []string{"security@phish.example"}},
		{"friends: a@one.example, b@two.example;", []string{"a@one.example", "b@two.example"}},
		{"undisclosed-recipients:;", nil},
		// An address in a display name or a comment is no address.
		{`"x@good.example" <bob@bad.example>`, []string{"bob@bad.example"}},
		{"(x@good.example) bob@bad.example", []string{"bob@bad.example"}},
		// Quoted local parts come unquoted, '@' and quotes included.
		{`"\"a\"@good.example"@bad.example`, []string{`"a"@good.example@bad.example`}},
		// Comments and blanks inside an address (RFC 5322 3.4.1, 4.4).
		{"bob@(x)bad.example", []string{"bob@bad.example"}},
		{"bob(x)@bad.example", []string{"bob@bad.example"}},
		{"bob@bad\t.example", []string{"bob@bad.example"}},
		{"Bob <bob @ bad . example>", []string{"bob@bad.example"}},
		{"Bob <bob@ (a (nested) comment) bad . example>", []string{"bob@bad.example"}},
		{`Bob <a@(x\) still a comment)bad.example>`, []string{"a@bad.example"}},
		{`"quoted (no comment) @ here" <a@ bad.example>`, []string{"a@bad.example"}},
		// Broken fields: angle brackets first, then words with "@",
		// each once; decoys before the real address do not hide it.
		{`broken "quote <a@b.example>`, []string{"a@b.example"}},
		{"PayPal <service@paypal.com> <real@evil.example>", []string{"service@paypal.com", "real@evil.example"}},
		{`"<x@good.example>" bob@bad.example`, []string{"x@good.example", "bob@bad.example"}},
		{`(<x@good.example>) bob@bad.example, "`, []string{"bob@bad.example"}},
		{"Bob (the builder <bob@(x)bad.example>", []string{"bob@bad.example"}},
		{"((((( a@bad.example", []string{"a@bad.example"}},
		{"(comment) a@b.example (x", []string{"a@b.example"}},
		{"'a@b.example', \"", []string{"a@b.example"}},
		{"x <@relay.example:bob@bad.example> (", []string{"@relay.example:bob@bad.example"}},
		{"no address here", nil},
		// Quotes in a domain, which RFC 5322 does not allow and a mail
		// reader may show as if they were not there (Postfix delivers
		// MAIL FROM:<bob@"bad.example"> from bob@bad.example).
		{`bob@"bad.example"`, []string{"bob@", "bob@bad.example"}},
		{`Bob <bob@bad."example">`, []string{`bob@bad."example"`, "bob@bad.", "bob@bad.example"}},
		// An address written in an encoded word, where RFC 2047 section
		// 5 allows none: a mail reader decodes it and shows the
		// address, so a field that holds none otherwise is searched
		// decoded too.
		{"=?utf-8?q?ceo=40bad.example?=", []string{"ceo@bad.example"}},
		{"=?utf-8?b?Y2VvQGJhZC5leGFtcGxl?=", []string{"ceo@bad.example"}},
		{"=?utf-8?q?Bank_=3Cceo=40bad.example=3E?=", []string{"ceo@bad.example"}},
		{"Bank <=?utf-8?q?ceo=40bad.example?=>", []string{"=?utf-8?q?ceo=40bad.example?=", "ceo@bad.example"}},
		{"=?utf-8?q?ceo?= =?utf-8?q?=40bad.example?=", []string{"ceo@bad.example"}},
		{"=?utf-8?q?ceo=40bad.example=0D=0A?=", []string{"ceo@bad.example"}},
		// A field that parses is read as it is: an encoded word is
		// display-name text there.
		{"=?utf-8?q?ceo=40good.example?= <bob@bad.example>", []string{"bob@bad.example"}},
		// An encoded word in a local part ("Mailsploit"): the address is
		// the one mail goes to, and a mail reader that decodes the
		// local part shows the address it holds, cut at a NUL; both
		// are read.
		{"=?utf-8?b?cG90dXNAYmFkLmV4YW1wbGU=?==?utf-8?Q?=00?=@sender.example",
			[]string{"=?utf-8?b?cG90dXNAYmFkLmV4YW1wbGU=?==?utf-8?Q?=00?=@sender.example", "potus@bad.example"}},
		{"Bob <=?utf-8?q?a=40bad.example=0A?=@sender.example>",
			[]string{"=?utf-8?q?a=40bad.example=0A?=@sender.example", "a@bad.example"}},
		{"=?utf-8?q?bob?=@sender.example", []string{"=?utf-8?q?bob?=@sender.example"}},
		// And in a domain, which the mail reader shows decoded.
		{"ceo@=?utf-8?q?bad.example?=", []string{"ceo@=?utf-8?q?bad.example?=", "ceo@bad.example"}},
		{"Bob <ceo@=?utf-8?q?b=C3=BCcher.example_x?=>", []string{"ceo@=?utf-8?q?b=C3=BCcher.example_x?=", "ceo@bücher.example"}},
	} {
		got := slices.Collect(filters.FromAddresses(tc.value))
		if !slices.Equal(got, tc.want) {
			t.Errorf("FromAddresses(%q) = %q, want %q", tc.value, got, tc.want)
		}
	}
	// The caller decides how many it reads.
	n := 0
	for range filters.FromAddresses(strings.Repeat("a@b.example, ", 1000)) {
		if n++; n == 3 {
			break
		}
	}
	if n != 3 {
		t.Errorf("read %d addresses, want to stop at 3", n)
	}
}

func TestWithoutCFWS(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"bob@example.org", "bob@example.org"},
		{"Bob <bob @ (x) example . org>", "Bob <bob@example.org>"},
		{"(a (b) c) bob@example.org (d)", "bob@example.org"},
		{`"a (b) @ c"@example.org`, `"a (b) @ c"@example.org`},
		{`(a \) b) x@y.example`, "x@y.example"},
		{`"a \" (b)" (c)`, `"a \" (b)"`},
		{"( unclosed x@y.example", "( unclosed x@y.example"},
		{"((a) x@y.example", "( x@y.example"},
		{"a)b", "a)b"},
	} {
		if got := filters.WithoutCFWS(tc.in); got != tc.want {
			t.Errorf("WithoutCFWS(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Hostile values cost linear time: a comment stack as deep as the
// value, many unclosed or unopened parentheses, quotes and blanks, each
// 100 kB. A quadratic search on one of them would take minutes.
func TestFromAddressesHostile(t *testing.T) {
	const n = 100 << 10
	for _, v := range []string{
		strings.Repeat("(", n),
		strings.Repeat("(", n/2) + strings.Repeat(")", n/2),
		strings.Repeat(")", n),
		strings.Repeat("()", n/2),
		strings.Repeat(`("`, n/2),
		strings.Repeat(`\(`, n/2),
		strings.Repeat(" @ .", n/4),
		strings.Repeat("<", n),
		strings.Repeat("<a@b.example>", n/13),
		strings.Repeat("(a@b.example ", n/13) + "c@d.example",
		strings.Repeat("=?", n/2),
		strings.Repeat("=?utf-8?q?", n/10) + "?=",
		strings.Repeat("=?utf-8?q?a=40b.example?= ", n/26) + "<",
	} {
		start := time.Now()
		for range filters.FromAddresses(v) {
		}
		filters.WithoutCFWS(v)
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%q...: %v", v[:16], d)
		}
	}
}

// FuzzFromAddresses checks that no From field value makes FromAddresses
// or WithoutCFWS panic, that WithoutCFWS never grows a value, and that
// no address read is empty or holds a line break.
func FuzzFromAddresses(f *testing.F) {
	for _, seed := range []string{
		"alice@example.org",
		"Alice <a@one.example>,\r\n Bob <b@two.example>",
		"=?x-unknown?q?Bank?= <security@phish.example>",
		"a@(comment)listed.example",
		"Bob <a@ (x (y) z) listed . example>",
		"Bob (unclosed <a@listed.example>",
		`"a\"(b" <c@(d\)e)f.example>`,
		`"\"a\"@x"@listed.example`,
		"((((((",
		"a@bücher.example (x",
		"friends: a@b.example;",
		"=?utf-8?q?Bank_=3Cceo=40listed.example=3E?=",
		"Bank <=?utf-8?b?Y2VvQGxpc3RlZC5leGFtcGxl?=>",
		"=?utf-8?q?a=0D=0A=40listed.example?=",
		"=?utf-8?b?cG90dXNAbGlzdGVkLmV4YW1wbGU=?==?utf-8?Q?=00?=@sender.example",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		if w := filters.WithoutCFWS(value); len(w) > len(value) {
			t.Errorf("WithoutCFWS(%q) = %q, longer", value, w)
		}
		n := 0
		for a := range filters.FromAddresses(value) {
			if a == "" || strings.ContainsAny(a, "\r\n") {
				t.Errorf("FromAddresses(%q): address %q", value, a)
			}
			if n++; n > len(value) {
				t.Fatalf("FromAddresses(%q): more addresses than bytes", value)
			}
		}
	})
}

// An encoded word that holds the address's "@" itself, in Q encoding
// where "@" may stand as it is ("=?utf-8?q?ceo@bad.example?="): the value
// parses as one address, whose local part and domain are each half an
// encoded word, and a mail reader that decodes encoded words in an
// address shows the address the word holds, as it does with "=40"
// (see TestFromAddresses). Both are read.
func TestFromAddressesEncodedWordAroundAt(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  []string
	}{
		{"=?utf-8?q?ceo@bad.example?=", []string{"=?utf-8?q?ceo@bad.example?=", "ceo@bad.example"}},
		{"Bank <=?utf-8?q?ceo@bad.example?=>", []string{"=?utf-8?q?ceo@bad.example?=", "ceo@bad.example"}},
		{"=?utf-8?q?ceo@?=bad.example", []string{"=?utf-8?q?ceo@?=bad.example", "ceo@bad.example"}},
		{"ceo=?utf-8?q?@bad?=.example", []string{"ceo=?utf-8?q?@bad?=.example", "ceo@bad.example"}},
		{"=?utf-8?q?x?==?utf-8?q?ceo@bad.example?=", []string{"=?utf-8?q?x?==?utf-8?q?ceo@bad.example?=", "xceo@bad.example"}},
		// An "@" outside every encoded word is read as before.
		{"=?utf-8?q?bob?=@sender.example", []string{"=?utf-8?q?bob?=@sender.example"}},
		// Not an encoded word: no "?=" after the "@".
		{"=?utf-8?q?ceo@bad.example", []string{"=?utf-8?q?ceo@bad.example"}},
	} {
		got := slices.Collect(filters.FromAddresses(tc.value))
		if !slices.Equal(got, tc.want) {
			t.Errorf("FromAddresses(%q) = %q, want %q", tc.value, got, tc.want)
		}
	}
}
