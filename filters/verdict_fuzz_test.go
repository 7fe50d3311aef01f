package filters_test

import (
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/filters"
)

// FuzzParseReply checks the replies the config file gives filters: a
// reply taken is valid, one line of printable ASCII, and written back
// with String it reads as the same reply.
func FuzzParseReply(f *testing.F) {
	for _, s := range []string{
		"550 5.7.1 Sender banned", "451 Try again later", " 554  5.7.0   spaced  text ",
		"550 5.7.1", "550 4.7.1 class mismatch", "250 2.0.0 ok", "5500 x", "+55 x", "550 1.2.3.4 dots",
		"550 5.7.1000 long detail", "550 5..1 x", "450 4.7.1\ttab", "550 \xff", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := filters.ParseReply(s)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("%q taken as %+v, which is invalid: %v", s, r, err)
		}
		if strings.ContainsAny(r.String(), "\r\n\x00") {
			t.Fatalf("%q taken as %q", s, r.String())
		}
		if g, err := filters.ParseReply(r.String()); err != nil || g != r {
			t.Fatalf("%q: %+v written as %q reads as %+v, %v", s, r, r.String(), g, err)
		}
	})
}

// FuzzParseAction checks that only an action's own name is taken, and
// that it is the name the action prints.
func FuzzParseAction(f *testing.F) {
	for _, s := range []string{"continue", "accept", "discard", "quarantine", "tempfail", "reject", "Reject", "reject ", "action(6)", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := filters.ParseAction(s)
		if err == nil && a.String() != s {
			t.Fatalf("%q taken as %s", s, a)
		}
	})
}
