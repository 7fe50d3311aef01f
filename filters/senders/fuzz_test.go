package senders

import (
	"os"
	"strings"
	"testing"
)

// FuzzCompile feeds arbitrary rules files and names: compiling either
// fails with line errors or gives rules whose lookups never panic and
// agree with themselves.
//
//	go test -fuzz FuzzCompile ./filters/senders/
func FuzzCompile(f *testing.F) {
	access, err := os.ReadFile(accessFile)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(access), "bob@emalsrv.ups.com")
	f.Add("emalsrv.* WATCH\n/^(a|b)+\\./ REJECT\n", "x@a.b.example")
	f.Add(".example REJECT\n\"q u\"@x.example OK\n", `"q u"@X.Example.`)
	f.Add("From:<> DISCARD\n*.?* OK\n", "<>")
	f.Add("bücher.test ERROR:4.7.1:451 later\n", "prvs=1234abcdef=a@BÜCHER.test")
	f.Add("jo\u0308se\u0301@ REJECT\nexample.com\u00a0REJECT\n", "JÖSÉ@x.example")
	f.Add("spam.example REJECT\n\x00\x01", "SRS0=HHH=TT=spam.example=bob@fwd.example")
	f.Fuzz(func(t *testing.T, rules, addr string) {
		rs, err := Compile(Source{Name: "f", Data: []byte(rules), Scope: ScopeOf(MailFrom, HeaderFrom, Helo, ClientName)})
		if err != nil {
			pe, ok := err.(*ParseError)
			if !ok || len(pe.Lines) == 0 || !strings.HasPrefix(err.Error(), "f:") {
				t.Fatalf("error %v is not a list of line errors", err)
			}
			return
		}
		for s := Subject(0); s < numSubjects; s++ {
			m1 := rs.Match(s, addr)
			m2 := rs.MatchName(s, m1.Name)
			if m1.Rule != m2.Rule || len(m1.Watch) != len(m2.Watch) {
				t.Fatalf("%s %q: looking up the compared form %+v decides otherwise", s, addr, m1.Name)
			}
			if m1.Rule != nil && !m1.Rule.Scope.Has(s) {
				t.Fatalf("%s %q: rule %v is not about this subject", s, addr, m1.Rule)
			}
		}
	})
}

// FuzzParseAddress: parsing is idempotent on the compared form. The
// compared form is read again as parseAddress reads an address without
// comments: ParseAddress would take the blanks a garbled domain may keep
// ("0 \x9a 0" maps to "xn--0  0-w70y") for folding white space.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"<>", "Bob@Example.COM.", `"a b"@x.example`, "@r1,@r2:u@d.example", "prvs=u=0123abcdef@x", "u@bücher.test", "u@[192.0.2.1]", "JO\u0308SE\u0301@x.example", "=?utf-8?q?a=40b.example?=@c.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := ParseAddress(s)
		if n.Null || n.Local == "" || n.Domain == "" || strings.Contains(n.Domain, "@") || n.raw || n.Literal || strings.ContainsAny(n.Local, "\"\\@ ") || strings.HasPrefix(n.Local, "prvs=") {
			return
		}
		// A quote or backslash in the compared domain is one a backslash
		// quoted (filters.SplitAddress keeps the quoted character and
		// drops a bare quote), so it is written back quoted.
		again := parseAddress(n.Local + "@" + domainQuoter.Replace(n.Domain))
		if again.Domain != n.Domain {
			t.Fatalf("%q: domain %q compares as %q the second time", s, n.Domain, again.Domain)
		}
	})
}

// domainQuoter writes a compared domain back in address syntax.
var domainQuoter = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// FuzzHeaderFromDomain checks that no display name and no comment
// inside the address hides the domain of a From: field from the rules:
// whatever they hold, once quoted and escaped as RFC 5322 asks, the
// field `"NAME" <bob@(COMMENT)spam.example>` must give an address at
// spam.example, or hold more addresses than the filter reads, which
// it judges as if an unread one matched (Filter.crowdedVerdict).
func FuzzHeaderFromDomain(f *testing.F) {
	for _, seed := range [][2]string{
		{"Bob", "x"},
		{"x@good.example", "y@good.example"},
		{"<x@good.example>", ")("},
		{`a"b\c`, `\`},
		{"=?utf-8?q?x?=", "(nested)"},
		{"\xff", "\xff"},
		{"=?utf-8?q?x=40good.example?=", "=?utf-8?b?eEBnb29kLmV4YW1wbGU=?="},
	} {
		f.Add(seed[0], seed[1])
	}
	quote := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\r", "", "\n", "")
	comment := strings.NewReplacer(`\`, `\\`, "(", `\(`, ")", `\)`, "\r", "", "\n", "")
	f.Fuzz(func(t *testing.T, name, cmt string) {
		value := `"` + quote.Replace(name) + `" <bob@(` + comment.Replace(cmt) + `)spam.example>`
		addrs, more := headerAddresses(value, maxFromAddresses)
		if len(addrs) > maxFromAddresses {
			t.Fatalf("%q: %d addresses", value, len(addrs))
		}
		if more {
			return
		}
		for _, a := range addrs {
			if parseAddress(a).Domain == "spam.example" {
				return
			}
		}
		t.Fatalf("%q: no address at spam.example in %q", value, addrs)
	})
}
