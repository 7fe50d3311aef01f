package filters_test

import (
	"strings"
	"testing"
	"unicode"

	"github.com/sluice-mail/sluice/filters"
)

// The envelope forms Postfix and Sendmail accept in MAIL FROM, and the
// address they deliver the message from. The local part and the domain
// are returned as written otherwise: comparing them is the caller's.
func TestEnvelopeAddress(t *testing.T) {
	for _, tc := range []struct {
		in            string
		local, domain string
		null          bool
	}{
		{"Bob@Spam.Example", "Bob", "Spam.Example", false},
		{"<bob@spam.example.>", "bob", "spam.example", false},
		{"", "", "", true},
		{"<>", "", "", true},
		{"<@a:>", "", "", true}, // a route to no address: Postfix takes it for <>
		{"@r1,@[IPv6:2001:db8::1]:bob@spam.example", "bob", "spam.example", false},
		{"@spam.example", "", "spam.example", false},
		{`"a@b"@fine.example`, "a@b", "fine.example", false},
		{"bob@(x)spam.example", "bob", "spam.example", false},
		{"<bob @ spam . example>", "bob", "spam.example", false},
		{"<bob@spam.example (x>", "bob", "spam.example", false},
		// A backslash quotes a "(" outside quoted strings too: no
		// comment opens there, and Postfix delivers
		// <bob\(x@spam.example> from "bob(x"@spam.example (observed
		// with 3.7, see TestSendersEndToEndPostfixRewrittenSender): the
		// local part unquoted, as Postfix delivers it.
		{`<bob\(x@spam.example>`, `bob(x`, "spam.example", false},
		{`<bob\((x)@spam.example>`, `bob(`, "spam.example", false},
		{`"a (b"@spam.example`, "a (b", "spam.example", false},
		{"spam.example!bob", "bob", "spam.example", false},
		{"bob!x@fine.example", "bob!x", "fine.example", false},
		{"bob%x.example%spam.example", "bob%x.example", "spam.example", false},
		{"bob%spam.example@fine.example", "bob%spam.example", "fine.example", false},
		{`"bob"%spam.example`, "bob", "spam.example", false},
		{"bob%", "bob%", "", false},
		{`bob@"spam.example"`, "bob", "spam.example", false},
		{`bob@spam.example\ `, "bob", "spam.example", false},
		{`<"Bob@Spam.Example">`, "Bob", "Spam.Example", false},
		// Postfix unquotes one quoted string and quotes anew only what
		// needs it: a dot-atom is read as if written bare, the percent
		// hack and the UUCP path included (observed with 3.7, see
		// TestSendersEndToEndPostfixRewrittenSender).
		{`<"bob%spam.example">`, "bob", "spam.example", false},
		{`<"spam.example!bob">`, "bob", "spam.example", false},
		{`<"bob\%spam.example">`, "bob", "spam.example", false},
		{`<"bob%x.example%spam.example">`, "bob%x.example", "spam.example", false},
		{`<x:"bob%spam.example";>`, "bob", "spam.example", false},
		{`<"bob % spam.example">`, "bob % spam.example", "", false},
		{`<"bob(x)%spam.example">`, "bob(x)%spam.example", "", false},
		{"bob@spam.example ;", "bob", "spam.example", false},
		{"bob@[192.0.2.1]", "bob", "[192.0.2.1]", false},
		// Postfix reads MAIL FROM as an RFC 822 address list and takes
		// its one address: empty list elements, commas and semicolons
		// before or after it, are dropped (observed with Postfix 3.7:
		// <bob@x,> is delivered from bob@x, <,> from <>).
		{"<bob@spam.example,>", "bob", "spam.example", false},
		{"<bob@spam.example ,>", "bob", "spam.example", false},
		{"<bob@spam.example,,>", "bob", "spam.example", false},
		{"<bob@spam.example.,>", "bob", "spam.example", false},
		{"<bob@spam.example;,>", "bob", "spam.example", false},
		{"<bob@spam.example,;>", "bob", "spam.example", false},
		{"<bob@[192.0.2.1],>", "bob", "[192.0.2.1]", false},
		{"<bob%spam.example,>", "bob", "spam.example", false},
		{"<,bob@spam.example>", "bob", "spam.example", false},
		{"<, bob@spam.example>", "bob", "spam.example", false},
		{"<;bob@spam.example>", "bob", "spam.example", false},
		{`<,"john doe"@spam.example>`, "john doe", "spam.example", false},
		{"<@a:,bob@spam.example>", "bob", "spam.example", false},
		{"<,>", "", "", true},
		// A group, "name:address;", is its address to Postfix: it
		// delivers MAIL FROM:<x:bob@x;> from bob@x (observed with
		// Postfix 3.7, see TestSendersEndToEndPostfixGroupSender), the
		// member being what follows the last colon outside quotes and
		// literals, and an empty group is the null sender. Without the
		// ";" the colon is part of the local part ("x:bob"@x).
		{"<x:bob@spam.example;>", "bob", "spam.example", false},
		{"<x: bob@spam.example ;>", "bob", "spam.example", false},
		{"<x y:bob@spam.example;>", "bob", "spam.example", false},
		{"<x.y.z:bob@spam.example;>", "bob", "spam.example", false},
		{`<"x":bob@spam.example;>`, "bob", "spam.example", false},
		{"<x(c):bob@spam.example;>", "bob", "spam.example", false},
		{"<:bob@spam.example;>", "bob", "spam.example", false},
		{`<x:"bob"@spam.example;>`, "bob", "spam.example", false},
		{`<x:"a;b"@spam.example;>`, "a;b", "spam.example", false},
		{"<x:bob@spam.example;;>", "bob", "spam.example", false},
		{"<;x:bob@spam.example;,>", "bob", "spam.example", false},
		{"<x:,bob@spam.example,;>", "bob", "spam.example", false},
		{"<x:bob@spam.example.;>", "bob", "spam.example", false},
		{"<x:@a.example:bob@spam.example;>", "bob", "spam.example", false},
		{"<@a.example:x:bob@spam.example;>", "bob", "spam.example", false},
		{"<x:y:bob@spam.example;>", "bob", "spam.example", false},
		{"<bob:x@spam.example;>", "x", "spam.example", false},
		{"<x:<bob@spam.example>;>", "bob", "spam.example", false},
		{"<x:spam.example!bob;>", "bob", "spam.example", false},
		{"<x:bob%spam.example;>", "bob", "spam.example", false},
		{"<x:bob@[IPv6:2001:db8::1];>", "bob", "[IPv6:2001:db8::1]", false},
		{"<x:bob;>", "bob", "", false},
		{"<x:;>", "", "", true},
		{"<x:;,>", "", "", true},
		{"<x:y:;>", "", "", true},
		{"<x:@a.example:;>", "", "", true},
		{"<x:bob@spam.example:;>", "", "", true},
		{"<x:bob@spam.example>", "x:bob", "spam.example", false},
		{"<bob:x@spam.example>", "bob:x", "spam.example", false},
		{`<"x:bob"@spam.example;>`, "x:bob", "spam.example", false},
		{`<x\:bob@spam.example;>`, "x:bob", "spam.example", false}, // Postfix delivers from "x:bob"@spam.example
		{"<x:bob@spam.example (c;>", "x:bob", "spam.example", false},
		// A phrase before the address in angle brackets is an RFC 822
		// mailbox to Postfix, which delivers MAIL FROM:<"Joe"
		// <joe@x>> from joe@x (observed with 3.7); go-milter takes
		// the final ">" off with the envelope's.
		{`"Joe" <bob@spam.example`, "bob", "spam.example", false},
		{`<"Joe" <bob@spam.example>>`, "bob", "spam.example", false},
		{"Joe <bob@spam.example", "bob", "spam.example", false},
		{`"Joe <x@fine.example>" <bob@spam.example`, "bob", "spam.example", false},
		{`x:"Joe" <bob@spam.example>;`, "bob", "spam.example", false},
		// An empty "<>" before more text is part of the name: Postfix
		// delivers MAIL FROM:<x<>bob@spam.example> from bob@spam.example.
		{"x<>bob@spam.example", "bob", "spam.example", false},
		{"x <> y <> <bob@spam.example", "bob", "spam.example", false},
		{"x:y<>bob@spam.example;", "bob", "spam.example", false},
		{`"x" <>bob@spam.example (c)`, "bob", "spam.example", false},
		{`<"x:bob@spam.example;>`, `"x:bob`, "spam.example", false},
	} {
		local, domain, null := filters.EnvelopeAddress(tc.in)
		if local != tc.local || domain != tc.domain || null != tc.null {
			t.Errorf("EnvelopeAddress(%q) = %q, %q, %v; want %q, %q, %v", tc.in, local, domain, null, tc.local, tc.domain, tc.null)
		}
	}
	// SplitAddress reads an address FromAddresses gave, whose comments
	// are gone: a "(" left is text of the local part, not a comment.
	if local, domain, _ := filters.SplitAddress(`john (doe@x.example`); local != "john (doe" || domain != "x.example" {
		t.Errorf("SplitAddress: %q, %q; want %q, %q", local, domain, "john (doe", "x.example")
	}
}

// The sender as Postfix 3.7 delivers the message from it, in its
// Return-Path (observed; TestArchiveSenderAgainstMailbox in cmd/sluice
// checks the same forms against a real mailbox).
func TestDeliveredSender(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"joe@example.com", "joe@example.com"},
		{"Joe@Example.COM.", "Joe@Example.COM"},
		{"", ""},
		{"<>", ""},
		{"@relay.example:", ""},
		{"x:;", ""},
		{"@relay.example:joe@example.com", "joe@example.com"},
		{`"Joe" <joe@example.com`, "joe@example.com"},
		{`"John Smith" <"john smith"@example.com`, `"john smith"@example.com`},
		{"Joe:joe@example.com;", "joe@example.com"},
		{"x<>joe@example.com", "joe@example.com"},
		{"x <> y <> <joe@example.com", "joe@example.com"},
		{"joe@example.com (Joe)", "joe@example.com"},
		{"joe@example.com (Joe", "joe@example.com"},
		{";,joe@example.com", "joe@example.com"},
		{`"joe"@example.com`, "joe@example.com"},
		{`"joe@example.com"`, "joe@example.com"},
		{`"joe%example.com"`, "joe@example.com"},
		{`"example.com!x.example!joe"`, "x.example!joe@example.com"},
		{`"example.com!"`, `""@example.com`},
		{`"joe % example.com"`, `"joe % example.com"`},
		{`"joe(x)%example.com"`, `"joe(x)%example.com"`},
		{"example.com!joe", "joe@example.com"},
		{"joe%example.com", "joe@example.com"},
		{`joe@"example.com"`, "joe@example.com"},
		{"client.example!", `""@client.example`},
		{`"john smith"@example.com`, `"john smith"@example.com`},
		{`x:"john smith"@example.com;`, `"john smith"@example.com`},
		{`"a\"b"@example.com`, `"a\"b"@example.com`},
		{`"a\\b"@example.com`, `"a\\b"@example.com`},
		{".a@example.com", `".a"@example.com`},
		{"a.@example.com", `"a."@example.com`},
		{"a..b@example.com", `"a..b"@example.com`},
		{"@x@example.com", `"@x"@example.com`},
		{"x:joe@example.com", `"x:joe"@example.com`},
		{`x\:joe@example.com`, `"x:joe"@example.com`},
		{`joe\(x@example.com`, `"joe(x"@example.com`},
		{"jösé@exämple.org", "jösé@exämple.org"},
		{"bob@[192.0.2.1]", "bob@[192.0.2.1]"},
		// Postfix adds its $myorigin to an address without a domain.
		{"bob", "bob"},
	} {
		if got := filters.DeliveredSender(tc.in); got != tc.want {
			t.Errorf("DeliveredSender(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzDeliveredSender checks that DeliveredSender names the sender
// EnvelopeAddress reads, which every filter judged: the null sender for
// the null sender, and an address at the same domain otherwise.
func FuzzDeliveredSender(f *testing.F) {
	for _, s := range []string{
		"<>", `"Joe" <joe@example.com`, "Joe:joe@example.com;", "joe@example.com (Joe)",
		`"john smith"@example.com`, `"a\"b"@example.com`, "@x@example.com", `x\:joe@example.com`,
		"client.example!", ".a@example.com", "joe % example.com",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := filters.DeliveredSender(s)
		_, domain, null := filters.EnvelopeAddress(s)
		if null != (out == "") {
			t.Fatalf("DeliveredSender(%q) = %q, EnvelopeAddress reads the null sender: %v", s, out, null)
		}
		if domain != "" && !strings.HasSuffix(out, "@"+domain) {
			t.Fatalf("DeliveredSender(%q) = %q, EnvelopeAddress reads the domain %q", s, out, domain)
		}
	})
}

// A source route goes, also one through an IPv6 literal with colons of
// its own; an address that merely starts with "@" stays as it is.
func TestWithoutRoute(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice@example.org", "alice@example.org"},
		{"@relay.example:alice@example.org", "alice@example.org"},
		{"@a.example,@[IPv6:2001:db8::1]:bob@example.org", "bob@example.org"},
		{"@relay.example:", ""},
		{"@x@example.org", "@x@example.org"},
		{"", ""},
	} {
		if got := filters.WithoutRoute(tc.in); got != tc.want {
			t.Errorf("WithoutRoute(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzEnvelopeAddress checks that the domain read is one the MTA can
// deliver from as read: no final ";", dot or blank, and read again the
// same, so that no second filter reading it differently can be slipped
// past.
func FuzzEnvelopeAddress(f *testing.F) {
	for _, s := range []string{
		"<>", "Bob@Example.COM.", `"a b"@x.example`, "@r1,@r2:u@d.example",
		"<bob@spam.example (x>", "spam.example!bob", "bob%x%spam.example",
		`bob@"spam.example"`, `bob@spam.example\ `, `<"bob@spam.example">`,
		"bob@spam.example ;", `"a\"b@c"@spam.example`, "@[IPv6:::1]:u@d",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		local, domain, null := filters.EnvelopeAddress(s)
		if null {
			if local != "" || domain != "" {
				t.Fatalf("%q: null sender with %q, %q", s, local, domain)
			}
			return
		}
		if strings.TrimRightFunc(domain, func(r rune) bool { return r == ';' || r == '.' || unicode.IsSpace(r) }) != domain {
			t.Fatalf("%q: domain %q ends in a mark the MTA drops", s, domain)
		}
		if domain == "" || strings.ContainsAny(domain, "@\"\\()<>!%:, \t") || local == "" || strings.ContainsAny(local, "\"\\@()<>!%:, \t") {
			return
		}
		if _, again, _ := filters.EnvelopeAddress(local + "@" + domain); again != domain {
			t.Fatalf("%q: domain %q is %q read again", s, domain, again)
		}
	})
}
