package senders

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// matchCase looks value up as subj and expects the rule of line want (0:
// no deciding rule) and the WATCH rules of the lines in watch.
type matchCase struct {
	subj  Subject
	value string
	want  int
	watch []int
}

func checkMatches(t *testing.T, rs *Rules, cases []matchCase) {
	t.Helper()
	for _, c := range cases {
		m := rs.Match(c.subj, c.value)
		got := 0
		if m.Rule != nil {
			got = m.Rule.Line
		}
		var watch []int
		for _, w := range m.Watch {
			watch = append(watch, w.Line)
		}
		if got != c.want || !sameInts(watch, c.watch) {
			t.Errorf("%s %q (compared as %q): rule from line %d, watch %v; want line %d, watch %v", c.subj, c.value, Describe(m.Name), got, watch, c.want, c.watch)
		}
	}
}

func sameInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func compile(t *testing.T, text string, scope Scope) *Rules {
	t.Helper()
	rs, err := Compile(Source{Name: "t", Data: []byte(text), Scope: scope})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// A domain entry matches the domain and every sub-domain, as in
// Sendmail; ".domain" only the sub-domains; nothing matches a name that
// merely ends in the same letters.
func TestMatchSubdomains(t *testing.T) {
	rs := loadAccess(t)
	checkMatches(t, rs, []matchCase{
		{MailFrom, "bob@linkedinmail.com", 16, nil},
		{MailFrom, "bob@mx.linkedinmail.com", 16, nil},
		{MailFrom, "bob@a.b.c.linkedinmail.com", 16, nil},
		{MailFrom, "bob@notlinkedinmail.com", 0, nil},
		{MailFrom, "bob@linkedinmail.com.au", 0, nil},
		{MailFrom, "bob@subs.example", 0, nil},
		{MailFrom, "bob@mx.subs.example", 22, nil},
		{MailFrom, "bob@a.mx.subs.example", 22, nil},
	})
}

// The most specific entry wins: an address before its domain, a domain
// before its parents, the local part last, as Sendmail looks them up.
func TestMatchMostSpecific(t *testing.T) {
	rs := loadAccess(t)
	checkMatches(t, rs, []matchCase{
		{MailFrom, "x@spam.example", 20, nil},
		{MailFrom, "x@www.spam.example", 20, nil},
		{MailFrom, "x@ok.spam.example", 21, nil},     // OK overrides the broader block
		{MailFrom, "x@a.b.ok.spam.example", 21, nil}, // and covers its sub-domains
		{MailFrom, "ceo@partner.example", 30, nil},   // the address before its domain
		{MailFrom, "cfo@partner.example", 31, nil},
		{MailFrom, "abuse@elsewhere.example", 33, nil}, // user@: any domain
		{MailFrom, "abuse@spam.example", 20, nil},      // ... but after the domain
		{MailFrom, "x@relay.example", 25, nil},
		{MailFrom, "x@a.skip.example", 26, nil},
	})
	// Literal keys before patterns: the parent domain linkedinmail.com
	// beats the glob *.linkedinmail.*.
	checkMatches(t, rs, []matchCase{
		{MailFrom, "x@mx.linkedinmail.com", 16, nil},
		{MailFrom, "x@mx.linkedinmail.net", 39, nil},
	})
}

func TestMatchGlobsAndRegexes(t *testing.T) {
	rs := loadAccess(t)
	checkMatches(t, rs, []matchCase{
		{MailFrom, "x@linkedin-secure.com", 40, nil},
		{MailFrom, "x@linkedin-.com", 40, nil},
		{MailFrom, "x@linkedin-a.b.com", 40, nil}, // * spans dots
		{MailFrom, "x@linkedin-secure.net", 0, nil},
		{MailFrom, "x@mylinkedin-secure.com", 0, nil}, // globs are anchored
		{MailFrom, "x@emalsrv.ups.com", 41, []int{37}},
		{MailFrom, "x@complains.linkedin.com", 41, []int{38}},
		{MailFrom, "x@EMALSRV.Example.", 41, []int{37}},
		{MailFrom, "x@mx.emalsrv.ups.com", 0, nil},
		{MailFrom, "x@emalsrvups.com", 0, nil},
	})

	// Among globs the one with more literal characters wins, wherever
	// it is written; globs before regular expressions; regular
	// expressions in file order.
	rs = compile(t, `*.example.* REJECT
mail.example.* OK
/^mail\./ DISCARD
/^m/ REJECT
mail?.test QUARANTINE:q
/^mail\d\./ OK
*.net WATCH
/\.net$/ WATCH
`, DefaultScope)
	checkMatches(t, rs, []matchCase{
		{MailFrom, "x@mail.example.org", 2, nil},
		{MailFrom, "x@www.example.org", 1, nil},
		{MailFrom, "x@mail.other.org", 3, nil},
		{MailFrom, "x@mx.other.org", 4, nil},
		{MailFrom, "x@mail1.test", 5, nil},
		{MailFrom, "x@mail12.test", 4, nil},
		{MailFrom, "x@mail.net", 3, []int{7, 8}}, // every matching WATCH rule
		{MailFrom, "x@other.org", 0, nil},
	})
}

// Names are compared in punycode, whichever form the rule and the sender
// use; regular expressions also see the Unicode form.
func TestMatchIDN(t *testing.T) {
	rs := loadAccess(t)
	checkMatches(t, rs, []matchCase{
		{MailFrom, "x@xn--bcher-kva.test", 46, nil},
		{MailFrom, "x@bücher.test", 46, nil},
		{MailFrom, "x@BÜCHER.TEST", 46, nil},
		{MailFrom, "x@mx.bücher.test", 46, nil},
		{MailFrom, "x@bücher。test", 46, nil}, // an ideographic full stop is a dot (UTS 46)
		{MailFrom, "x@bücher.example", 45, nil},
		{MailFrom, "x@buecher.test", 0, nil},
	})
	rs = compile(t, "/^раураl\\./ REJECT\n*.xn--80aa0cbo65f.* DISCARD\n", DefaultScope)
	checkMatches(t, rs, []matchCase{
		{MailFrom, "x@раураl.com", 1, nil}, // Cyrillic look-alike of paypal
		{MailFrom, "x@xn--l-7sba6dbr.com", 1, nil},
		{MailFrom, "x@paypal.com", 0, nil},
		{MailFrom, "x@mx.пример.рф", 0, nil},
	})
	if n := ParseAddress("x@пример.рф"); n.Domain != "xn--e1afmkfd.xn--p1ai" {
		t.Errorf("пример.рф compared as %q", n.Domain)
	}
}

// Among globs the one with more literal characters wins, counted as the
// name reads: an internationalised label counts its letters, not those
// of its punycode form, whichever form the glob is written in.
// "mail.*.example" (13 literal characters) decides before "*.ü.example"
// (10) and "*.xn--tda.example" (ü again).
func TestMatchGlobRankIDN(t *testing.T) {
	for _, src := range []string{
		"*.ü.example REJECT\nmail.*.example OK\n",
		"*.xn--tda.example REJECT\nmail.*.example OK\n",
		"mail.*.example OK\n*.ü.example REJECT\n",
	} {
		rs := compile(t, src, DefaultScope)
		ok := 2
		if strings.HasPrefix(src, "mail") {
			ok = 1
		}
		t.Run(strings.ReplaceAll(src, "\n", "; "), func(t *testing.T) {
			checkMatches(t, rs, []matchCase{
				{MailFrom, "x@mail.ü.example", ok, nil},
				{MailFrom, "x@mail.xn--tda.example", ok, nil},
				{MailFrom, "x@www.ü.example", 3 - ok, nil},
			})
		})
	}
}

// SMTPUTF8 senders (RFC 6531): a rule in the U-label catches the A-label
// and the other way round, in any case, and an address rule with a UTF-8
// local part catches that address in either spelling of its domain.
func TestMatchSMTPUTF8Sender(t *testing.T) {
	rs := compile(t, "exämple.org REJECT\nxn--mller-kva.example DISCARD\nJÖSÉ@grün.example QUARANTINE:q\nexämple.* WATCH\n", DefaultScope)
	checkMatches(t, rs, []matchCase{
		{MailFrom, "jösé@xn--exmple-cua.org", 1, []int{4}},
		{MailFrom, "jösé@XN--EXMPLE-CUA.ORG", 1, []int{4}},
		{HeaderFrom, "jösé@EXÄMPLE.org", 1, []int{4}},
		{MailFrom, "a@müller.example", 2, nil},
		{MailFrom, "a@MÜLLER.example", 2, nil},
		{HeaderFrom, "a@xn--mller-kva.example", 2, nil},
		{MailFrom, "jösé@xn--grn-ioa.example", 3, nil},
		{MailFrom, "JÖSÉ@Grün.example", 3, nil},
		{MailFrom, "jose@grün.example", 0, nil},
		{MailFrom, "x@example.org", 0, nil},
	})
}

// A UTF-8 local part is compared in Unicode normal form C (RFC 6532
// section 3.1), as its domain is by UTS 46: "jösé" written with
// combining accents looks the same to the reader, and must not get
// past a rule written with the precomposed letters, nor the other way
// round.
func TestMatchUTF8LocalPartNormalForm(t *testing.T) {
	rs := compile(t, "jösé@grün.example REJECT\nzoe\u0301@ DISCARD\n", DefaultScope)
	checkMatches(t, rs, []matchCase{
		{MailFrom, "jo\u0308se\u0301@grün.example", 1, nil},
		{HeaderFrom, "JO\u0308SE\u0301@GRU\u0308N.example", 1, nil},
		{MailFrom, "jösé@grün.example", 1, nil},
		{MailFrom, "zoé@anywhere.example", 2, nil},
		{HeaderFrom, "ZOE\u0301@anywhere.example", 2, nil},
		{MailFrom, "jose@grün.example", 0, nil},
	})
}

// A sub-domain label that is not valid IDNA (a hyphen at its start or
// end, "--" in its third and fourth places, a joiner out of place) does
// not hide an internationalised parent domain from its rules: the valid
// labels are still compared in punycode, and regular expressions still see
// the Unicode form.
func TestMatchIDNInvalidSubdomainLabel(t *testing.T) {
	rs := compile(t, "bücher.test REJECT\n*.xn--l-7sba6dbr.* DISCARD\n/пример\\.рф$/ QUARANTINE:look-alike\n", DefaultScope)
	checkMatches(t, rs, []matchCase{
		{MailFrom, "x@x-.bücher.test", 1, nil},
		{MailFrom, "x@-x.BÜCHER.test", 1, nil},
		{MailFrom, "x@ab--cd.bücher.test", 1, nil},
		{HeaderFrom, "x@x\u200c.bücher.test", 1, nil},
		{MailFrom, "x@x-.bücher。test", 1, nil},
		{MailFrom, "x@mx-.раураl.com", 2, nil},
		{MailFrom, "x@mx-.пример.рф", 3, nil},
	})
	if n := ParseAddress("x@X-.Bücher.test"); n.Domain != "x-.xn--bcher-kva.test" || !n.raw {
		t.Errorf("x-.bücher.test compared as %+v, want x-.xn--bcher-kva.test, not valid IDNA", n)
	}
}

// The null sender matches only a <> rule, never a domain rule or a
// pattern, however broad.
func TestMatchNullSender(t *testing.T) {
	rs := compile(t, "* REJECT\n/.*/ REJECT\nexample.com DISCARD\n", DefaultScope)
	checkMatches(t, rs, []matchCase{
		{MailFrom, "", 0, nil},
		{MailFrom, "<>", 0, nil},
		{MailFrom, " <> ", 0, nil},
		{MailFrom, "x@example.com", 3, nil},
		{MailFrom, "x@other.org", 1, nil},
	})
	rs = loadAccess(t)
	checkMatches(t, rs, []matchCase{
		{MailFrom, "<>", 34, nil},
		{HeaderFrom, "<>", 0, nil},
	})
}

func TestMatchNormalisation(t *testing.T) {
	rs := loadAccess(t)
	checkMatches(t, rs, []matchCase{
		// Case and trailing dots.
		{MailFrom, "X@Spam.Example.", 20, nil},
		{MailFrom, "x@spam.example . ", 20, nil},
		{MailFrom, "x@slow.example", 23, nil},
		{MailFrom, "CEO@PARTNER.EXAMPLE", 30, nil},
		// Quoted local parts.
		{MailFrom, `"john doe"@quoted.example`, 29, nil},
		{MailFrom, `"John Doe"@Quoted.Example`, 29, nil},
		{MailFrom, `"ceo"@partner.example`, 30, nil},
		{MailFrom, `"john\ doe"@quoted.example`, 29, nil},
		// Angle brackets and source routes (RFC 5321 4.1.2).
		{MailFrom, "<ceo@partner.example>", 30, nil},
		{MailFrom, "<@relay.example:ceo@partner.example>", 30, nil},
		{MailFrom, "@a.example,@b.example:x@spam.example", 20, nil},
		// A route through an IPv6 address literal: its colons are not
		// the one that ends the route.
		{MailFrom, "<@[IPv6:2001:db8::1]:ceo@partner.example>", 30, nil},
		{MailFrom, "<@a.example,@[IPv6:2001:db8::1]:ceo@partner.example>", 30, nil},
		// BATV, both orders, and look-alikes that are no BATV tag.
		{MailFrom, "prvs=1234abcdef=ceo@partner.example", 30, nil},
		{MailFrom, "prvs=ceo=1234abcdef@partner.example", 30, nil},
		{MailFrom, "PRVS=0123ABCDEF=CEO@Partner.Example", 30, nil},
		{MailFrom, "prvs=17987b1a3c=ceo@partner.example", 30, nil},
		{MailFrom, "prvs=ceo=17987b1a3c@partner.example", 30, nil},
		{MailFrom, "prvs=ceo@partner.example", 31, nil},
		{MailFrom, "prvs=1234abcdef=newsletter+x@shop.example", 32, nil},
		// Sub-addresses: user+*@ matches a detail, user@ with or without.
		{MailFrom, "newsletter+spring@shop.example", 32, nil},
		{MailFrom, "newsletter@shop.example", 0, nil},
		{MailFrom, "ceo+x@partner.example", 30, nil},
		{MailFrom, "abuse+x@anywhere.example", 33, nil},
		// Address literals are compared whole.
		{MailFrom, "x@[192.0.2.1]", 0, nil},
		// A local part alone.
		{MailFrom, "abuse", 33, nil},
	})
	batv := []struct{ in, want string }{
		{"prvs=1234abcdef=alice", "alice"},
		{"prvs=alice=1234abcdef", "alice"},
		{"prvs=0123456789=a=b", "a=b"},
		{"prvs=a=b=0123456789", "a=b"},
		{"prvs=xyz=alice", "alice"}, // the draft's order when neither looks like a tag
		{"prvs==alice", "prvs==alice"},
		{"prvs=alice", "prvs=alice"},
		{"alice", "alice"},
	}
	for _, b := range batv {
		if got := stripBATV(b.in); got != b.want {
			t.Errorf("stripBATV(%q) = %q, want %q", b.in, got, b.want)
		}
	}
	rs = compile(t, "[192.0.2.1] REJECT\n* DISCARD\n", DefaultScope)
	checkMatches(t, rs, []matchCase{
		{MailFrom, "x@[192.0.2.1]", 1, nil},
		{MailFrom, "x@[192.0.2.2]", 0, nil},
		{Helo, "[192.0.2.1]", 0, nil}, // outside the file's scope
	})
}

// A forwarder's SRS address and a mailing list's VERP address are the
// forwarder's and the list's: their local part names the original
// sender, but mail to it goes to their domain, so the envelope rules of
// that domain apply, not those of the domain named in the local part.
// A forwarded message from a refused domain is caught by its header
// From:, which forwarding keeps.
func TestMatchRewrittenSenders(t *testing.T) {
	rs := compile(t, "spam.example REJECT\nbob@fwd.example DISCARD\nlists.example OK\n", DefaultScope)
	checkMatches(t, rs, []matchCase{
		{MailFrom, "SRS0=HHH=TT=spam.example=bob@fwd.example", 0, nil},
		{MailFrom, "SRS1=HHH=relay.example==HHH=TT=spam.example=bob@fwd.example", 0, nil},
		{MailFrom, "SRS0=HHH=TT=fine.example=x@spam.example", 1, nil},
		{MailFrom, "bounces+bob=fine.example@mx.spam.example", 1, nil},
		{MailFrom, "owner-list+bob=spam.example@lists.example", 3, nil},
		{HeaderFrom, "bob@spam.example", 1, nil},
	})
}

// Tags and file scopes decide which subjects a rule is about.
func TestMatchScopes(t *testing.T) {
	rs := loadAccess(t)
	checkMatches(t, rs, []matchCase{
		{MailFrom, "x@linkedin.biz", 19, nil},
		{HeaderFrom, "x@linkedin.biz", 0, nil},
		{HeaderFrom, "x@paypa1.example", 42, nil},
		{MailFrom, "x@paypa1.example", 0, nil},
		{Helo, "Friend.Example.", 43, nil},
		{Helo, "dialup.example", 44, nil},
		{Helo, "spam.example", 0, nil},
		{ClientName, "localhost", 7, nil},
		{ClientName, "localhost.localdomain", 6, nil},
		{ClientName, "spam.example", 0, nil},
		{HeaderFrom, "x@spam.example", 20, nil},
	})
	if rs.Uses(Helo) != true || rs.Uses(ClientName) != true {
		t.Error("Uses misses the tagged subjects")
	}

	// A file's scope applies to its untagged rules; tags still win.
	hosts, err := Compile(
		Source{Name: "senders", Data: []byte("spam.example REJECT\n"), Scope: ScopeOf(MailFrom)},
		Source{Name: "hosts", Data: []byte("dialup.example REJECT\nFrom:x.example DISCARD\n"), Scope: ScopeOf(Helo, ClientName)},
	)
	if err != nil {
		t.Fatal(err)
	}
	checkMatches(t, hosts, []matchCase{
		{MailFrom, "a@spam.example", 1, nil},
		{HeaderFrom, "a@spam.example", 0, nil},
		{Helo, "spam.example", 0, nil},
		{Helo, "pool-1.dialup.example", 1, nil},
		{ClientName, "pool-1.dialup.example", 1, nil},
		{MailFrom, "a@pool-1.dialup.example", 0, nil},
		{MailFrom, "a@x.example", 2, nil},
	})
	if hosts.Uses(HeaderFrom) {
		t.Error("no rule is about header_from, but Uses says so")
	}
}

// WATCH rules never decide; every one that matches is reported, literal
// keys too, alongside the deciding rule.
func TestMatchWatch(t *testing.T) {
	rs := compile(t, `ups.com WATCH
ups.com OK
mx.ups.com WATCH
From:ups.com WATCH
emalsrv.* WATCH
`, DefaultScope)
	checkMatches(t, rs, []matchCase{
		{MailFrom, "a@emalsrv.mx.ups.com", 2, []int{3, 1, 4, 5}},
		{HeaderFrom, "a@emalsrv.mx.ups.com", 2, []int{3, 1, 5}},
		{MailFrom, "a@ups.com", 2, []int{1, 4}},
	})
	if !rs.HasWatch() {
		t.Error("HasWatch is false")
	}
}

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in   string
		want Name
	}{
		{"Alice@Example.COM", Name{Local: "alice", Domain: "example.com"}},
		{"<>", Name{Null: true}},
		{"", Name{Null: true}},
		{"<alice@example.com.>", Name{Local: "alice", Domain: "example.com"}},
		{`"a@b"@example.com`, Name{Local: "a@b", Domain: "example.com"}},
		{"@relay:alice@example.com", Name{Local: "alice", Domain: "example.com"}},
		// Without a colon a leading "@" starts no route: the local
		// part is empty, and the domain still compares.
		{"@relay-without-colon", Name{Domain: "relay-without-colon"}},
		{"@Spam.Example.", Name{Domain: "spam.example"}},
		{"<@spam.example>", Name{Domain: "spam.example"}},
		{"@", Name{}},
		{"@x@spam.example", Name{Local: "@x", Domain: "spam.example"}}, // "@x"@spam.example unquoted
		{"@relay:", Name{Null: true}},                                  // a route to no address: Postfix takes it for <>
		{"<@a:>", Name{Null: true}},
		{"alice@[IPv6:2001:DB8::1]", Name{Local: "alice", Domain: "[ipv6:2001:db8::1]", Literal: true}},
		{"alice@", Name{Local: "alice"}},
		{"alice@-Ü.example", Name{Local: "alice", Domain: "-ü.example", raw: true}}, // not valid IDNA: compared as written
		{`"a@b"`, Name{Local: "a", Domain: "b"}},                                    // a@b to Postfix
		// The domain follows the last "@" outside quotes, as the MTA
		// that delivers a bounce reads it, however the quotes before it
		// stand; a quote that is never closed does not hide it.
		{`"x"y@spam.example`, Name{Local: `"x"y`, Domain: "spam.example"}},
		{`"a"@x@spam.example`, Name{Local: `"a"@x`, Domain: "spam.example"}},
		{`"x@fine.example"y@spam.example`, Name{Local: `"x@fine.example"y`, Domain: "spam.example"}},
		{`"abc@spam.example`, Name{Local: `"abc`, Domain: "spam.example"}},
		{`"a\"b@c"@spam.example`, Name{Local: `a"b@c`, Domain: "spam.example"}},
		// Comments and blanks inside the address, as RFC 5322 allows
		// and MTAs that read the envelope leniently pass on.
		{"bob@(x)spam.example", Name{Local: "bob", Domain: "spam.example"}},
		{"<bob @ spam . example>", Name{Local: "bob", Domain: "spam.example"}},
		{"bob(c)@spam.example", Name{Local: "bob", Domain: "spam.example"}},
		{"<bob@spam.example> (c)", Name{Local: "bob", Domain: "spam.example"}},
		// A comment never closed runs to the end, as Postfix reads
		// MAIL FROM: it accepts <bob@spam.example (x> and delivers
		// the message from bob@spam.example.
		{"bob@spam.example (x", Name{Local: "bob", Domain: "spam.example"}},
		{"bob@spam.example(x", Name{Local: "bob", Domain: "spam.example"}},
		{"bob@spam.example (x (y) z", Name{Local: "bob", Domain: "spam.example"}},
		{`"a (b"@spam.example`, Name{Local: "a (b", Domain: "spam.example"}},
		// A UUCP path without "@" is the address Postfix makes of it
		// (swap_bangpath): site!user is user@site.
		{"spam.example!bob", Name{Local: "bob", Domain: "spam.example"}},
		{"Spam.Example!x.example!bob", Name{Local: "x.example!bob", Domain: "spam.example"}},
		{"bob!x@fine.example", Name{Local: "bob!x", Domain: "fine.example"}},
		{"!bob", Name{Local: "!bob"}},
		{"spam.example!", Name{Domain: "spam.example"}}, // ""@spam.example to Postfix
		// More forms Postfix accepts in MAIL FROM and delivers from an
		// address at spam.example: the percent hack without "@"
		// (user%domain, the last "%" counting), a quoted domain, a
		// backslash in the domain, one quoted string holding the
		// whole address.
		{"bob%spam.example", Name{Local: "bob", Domain: "spam.example"}},
		{"bob%x.example%spam.example", Name{Local: "bob%x.example", Domain: "spam.example"}},
		{`bob@"spam.example"`, Name{Local: "bob", Domain: "spam.example"}},
		{`bob@spam.example\ `, Name{Local: "bob", Domain: "spam.example"}},
		{`"bob@spam.example"`, Name{Local: "bob", Domain: "spam.example"}},
		{`<"Bob@Spam.Example">`, Name{Local: "bob", Domain: "spam.example"}},
		{`"bob%x"@fine.example`, Name{Local: "bob%x", Domain: "fine.example"}},
		{`"bob"%spam.example`, Name{Local: "bob", Domain: "spam.example"}},
		{`"a%b"%spam.example`, Name{Local: "a%b", Domain: "spam.example"}},
		{"%spam.example", Name{Domain: "spam.example"}}, // ""@spam.example to Postfix
		// Sendmail drops a final ";" of MAIL FROM:<bob@spam.example ;>
		// and delivers from bob@spam.example.
		{"bob@spam.example ;", Name{Local: "bob", Domain: "spam.example"}},
		{"bob@spam.example.;;", Name{Local: "bob", Domain: "spam.example"}},
		{"bob@spam.example;(x)", Name{Local: "bob", Domain: "spam.example"}},
		{"bob%", Name{Local: "bob%"}},
		{`"john (doe)"@x.example`, Name{Local: "john (doe)", Domain: "x.example"}},
	}
	for _, tt := range tests {
		if got := ParseAddress(tt.in); got != tt.want {
			t.Errorf("ParseAddress(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

// The From: field is read as mail clients read it: display names,
// groups, several addresses, encoded words; a field net/mail refuses is
// still searched for addresses.
func TestHeaderAddresses(t *testing.T) {
	tests := []struct {
		value string
		want  []string
	}{
		{"Alice <alice@example.com>", []string{"alice@example.com"}},
		{"alice@example.com", []string{"alice@example.com"}},
		{"\"Bank, Support\" <help@bank.example>, bob@x.example", []string{"help@bank.example", "bob@x.example"}},
		{"=?utf-8?q?PayPal?= <service@paypa1.example>", []string{"service@paypa1.example"}},
		{"=?x-unknown?q?PayPal?= <service@paypa1.example>", []string{"service@paypa1.example"}},
		{"Alice\r\n <alice@example.com>", []string{"alice@example.com"}},
		{"PayPal <service@paypal.com> <real@evil.example>", []string{"service@paypal.com", "real@evil.example"}},
		{"broken \"quote <a@b.example>", []string{"a@b.example"}},
		{"no address here", nil},
		{"(comment) a@b.example (x", []string{"a@b.example"}},
		// Comments and blanks inside an address (RFC 5322 3.4.1, 4.4),
		// which mail readers drop and net/mail refuses.
		{"bob@(x)spam.example", []string{"bob@spam.example"}},
		{"bob@spam\t.example", []string{"bob@spam.example"}},
		{"Bob <bob @ spam . example>", []string{"bob@spam.example"}},
		{"Bob <bob@(x)spam.example>, \"", []string{"bob@spam.example"}},
		// In a broken field, an angle-bracketed decoy in a comment or a
		// quoted display name does not hide the address after it.
		{`(<x@good.example>) bob@spam.example, "`, []string{"bob@spam.example"}},
		{`"<x@good.example>" bob@spam.example`, []string{"x@good.example", "bob@spam.example"}},
	}
	for _, tt := range tests {
		got, more := headerAddresses(tt.value, maxFromAddresses)
		if !slices.Equal(got, tt.want) || more {
			t.Errorf("%q: %q (more %v), want %q", tt.value, got, more, tt.want)
		}
	}
	// An address repeated is read once: the one after the repeats is
	// read, and the field is not taken for a crowded one.
	repeats := strings.Repeat("a@b.example, ", 100) + "c@d.example"
	if got, more := headerAddresses(repeats, maxFromAddresses); !slices.Equal(got, []string{"a@b.example", "c@d.example"}) || more {
		t.Errorf("100 repeats and another: %q (more %v)", got, more)
	}
	// Different addresses: as many as the bound, and no more; more
	// says that the field went on.
	var list []string
	for i := range maxFromAddresses + 1 {
		list = append(list, fmt.Sprintf("a%d@b.example", i))
	}
	full := strings.Join(list[:maxFromAddresses], ", ")
	if got, more := headerAddresses(full, maxFromAddresses); len(got) != maxFromAddresses || more {
		t.Errorf("%d addresses: read %d (more %v)", maxFromAddresses, len(got), more)
	}
	over := strings.Join(list, ", ")
	if got, more := headerAddresses(over, maxFromAddresses); !slices.Equal(got, list[:maxFromAddresses]) || !more {
		t.Errorf("%d addresses: read %q (more %v), want the first %d and more", len(list), got, more, maxFromAddresses)
	}
}

// UTS 46 maps the ideographic, full-width and half-width full stops to
// '.', so "spam.example。" is spam.example with a final dot, and matches
// what spam.example matches, in the envelope and in the From field.
func TestFinalFullStopIsADot(t *testing.T) {
	rs := compile(t, "spam.example REJECT\nbücher.test REJECT\n", DefaultScope)
	for _, v := range []string{"x@spam.example。", "x@spam.example．", "x@spam.example｡", "x@bücher.test。", "x@ＳＰＡＭ.example。", "x@spam.example。 ."} {
		for _, subj := range []Subject{MailFrom, HeaderFrom} {
			if m := rs.Match(subj, v); m.Rule == nil {
				t.Errorf("%s %q (compared as %q): no rule matched", subj, v, m.Name.Domain)
			}
		}
	}
}

// An address key on an address literal matches that address, and the
// address decides before the literal's own rule, as for any domain.
func TestAddressOnLiteral(t *testing.T) {
	rs := compile(t, "user@[192.0.2.1] REJECT\nuser+*@[192.0.2.2] REJECT\n[192.0.2.1] OK\n", DefaultScope)
	for _, tc := range []struct {
		addr   string
		action string
	}{
		{"user@[192.0.2.1]", "REJECT"},
		{"User@[192.0.2.1]", "REJECT"},
		{"other@[192.0.2.1]", "OK"},
		{"user+tag@[192.0.2.2]", "REJECT"},
		{"user@[192.0.2.3]", ""},
	} {
		m := rs.Match(MailFrom, tc.addr)
		got := ""
		if m.Rule != nil {
			got = m.Rule.Action.String()
		}
		if got != tc.action {
			t.Errorf("%s: %q, want %q", tc.addr, got, tc.action)
		}
	}
}

// An address literal names a host by its address, and one address has
// many spellings: "[IPv6:2001:db8:0::1]" and "[IPv6:2001:0DB8::1]" are
// the host of "[IPv6:2001:db8::1]", and the IPv4-mapped
// "[IPv6:::ffff:192.0.2.1]" is 192.0.2.1. A rule on a literal must match
// every spelling, in the rule as in mail, or another spelling gets past
// it.
func TestMatchAddressLiteralSpellings(t *testing.T) {
	rs := compile(t, "[IPv6:2001:db8::1] REJECT\n[192.0.2.1] DISCARD\nbob@[IPv6:2001:DB8:0:0::9] REJECT\nHelo:[IPv6:2001:0db8::7] REJECT\n", DefaultScope)
	checkMatches(t, rs, []matchCase{
		{MailFrom, "x@[IPv6:2001:db8::1]", 1, nil},
		{MailFrom, "x@[IPv6:2001:db8:0::1]", 1, nil},
		{MailFrom, "x@[ipv6:2001:0DB8:0:0:0:0:0:1]", 1, nil},
		{HeaderFrom, "x@[IPv6:2001:db8:0000::1]", 1, nil},
		{MailFrom, "x@[IPv6:2001:db8::2]", 0, nil},
		{MailFrom, "x@[IPv6:::ffff:192.0.2.1]", 2, nil},
		{MailFrom, "bob@[IPv6:2001:db8::9]", 3, nil},
		{MailFrom, "alice@[IPv6:2001:db8::9]", 0, nil},
		{Helo, "[IPv6:2001:db8::7]", 4, nil},
		{Helo, "[IPv6:2001:db8:0::7]", 4, nil},
		// Not an address: compared as written, lower-cased.
		{Helo, "[IPv6:nonsense]", 0, nil},
	})
}

// A domain in raw 8-bit text that is not UTF-8 (a From: field or an
// envelope written in Latin-1, against RFC 6532) is shown by mail readers
// as windows-1252, as the classifier reads such text: "b\xfccher.test" is
// bücher.test to the person reading it, and a rule on bücher.test must
// match it. Read as UTF-8, each such byte became U+FFFD, a name no rule
// can name, and the look-alike got past every rule on the real one.
func TestMatchEightBitDomain(t *testing.T) {
	rs := compile(t, "bücher.test REJECT\n/^раураl\\./ DISCARD\n", ScopeOf(MailFrom, HeaderFrom, Helo))
	checkMatches(t, rs, []matchCase{
		{MailFrom, "x@b\xfccher.test", 1, nil},
		{HeaderFrom, "x@B\xdcCHER.test", 1, nil},
		{MailFrom, "x@mx.b\xfccher.test.", 1, nil},
		{Helo, "b\xfccher.test", 1, nil},
		{MailFrom, "x@b\xfbcher.test", 0, nil}, // bûcher.test
	})
	if n := ParseAddress("x@b\xfccher.test"); n.Domain != "xn--bcher-kva.test" || n.raw {
		t.Errorf("b\\xfccher.test compared as %+v, want xn--bcher-kva.test", n)
	}
}

// Postfix delivers MAIL FROM:<\mallory@client.example> and
// <m\allory@client.example> from mallory@client.example, and
// <"john"."doe"@client.example> from john.doe@client.example: the quotes
// and the backslashes that quote a character go. Address and local-part
// rules see the address Postfix delivers from.
func TestMatchQuotingInLocalPart(t *testing.T) {
	rs, err := Compile(Source{Name: "f", Data: []byte("mallory@client.example REJECT\njohn.doe@client.example REJECT\nabuse@ DISCARD\n\"a\\\\b\"@client.example QUARANTINE:odd\n"), Scope: DefaultScope})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ from, key string }{
		{`<\mallory@client.example>`, "mallory@client.example"},
		{`<m\allory@client.example>`, "mallory@client.example"},
		{`<Mallor\Y@Client.Example>`, "mallory@client.example"},
		{`<client.example!m\allory>`, "mallory@client.example"},
		{`<m\allory%client.example>`, "mallory@client.example"},
		{`<"john"."doe"@client.example>`, "john.doe@client.example"},
		{`<john."doe"@client.example>`, "john.doe@client.example"},
		{`<"john".doe@client.example>`, "john.doe@client.example"},
		{`<ab\use@x.example>`, "abuse@"},
		{`<"ab"."use"@x.example>`, ""},
		{`<"a\\b"@client.example>`, `"a\\b"@client.example`},
	} {
		m := rs.Match(MailFrom, tt.from)
		got := ""
		if m.Rule != nil {
			got = m.Rule.Key
		}
		if got != tt.key {
			t.Errorf("MAIL FROM:%s (compared as %s): rule %q, want %q", tt.from, Describe(m.Name), got, tt.key)
		}
	}
}
