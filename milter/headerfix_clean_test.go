package milter_test

import (
	"strings"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/headerfix"
	"github.com/sluice-mail/sluice/milter"
)

// A header that needs no repair goes through headerfix with no edit on
// the wire at all, however odd it is otherwise (docs/headerfix.md, "What
// is never touched"): header fields as both MTAs hand them over, with
// the value on continuation lines only, blanks before or after it, an
// empty value, valid folding, 8-bit and UTF-8 text, a line of 5,000
// bytes, names in several cases, three Received and 1,000 fields of one
// name; for the MTA Postfix is (macro v) and for any other.
func TestHeaderfixSendsNothingForACleanHeader(t *testing.T) {
	hdr := [][2]string{
		{"Received", "from a by b; Mon, 23 Nov 2026 12:00:00 +0000"},
		{"Received", "from c\n\tby d; Mon, 23 Nov 2026 11:00:00 +0000"},
		{"Received", "from e by f; Mon, 23 Nov 2026 10:00:00 +0000"},
		{"From", "alice@lab.example"},
		{"Subject", "caf\u00e9 \xff\xfe =?utf-8?q?caf=C3=A9?="},
		{"SUBJECT", "second"},
		{"X-Folded-First", "\n\tonly on the next line"},
		{"X-Lead", "   three blanks"},
		{"X-Trail", "trailing blanks  "},
		{"X-Empty", ""},
		{"X-Fold", "a\n b\n\tc"},
		{"X-Long", strings.Repeat("l", 5000)},
		{"Date", "Mon, 23 Nov 2026 12:00:00 +0000 (UTC)"},
		{"Message-ID", "<clean@lab.example>"},
		{"References", "<a@lab.example>\n <b@lab.example>"},
	}
	for range 1000 {
		hdr = append(hdr, [2]string{"X-Many", "m"})
	}
	for _, mta := range []string{"Postfix 3.7.11", "8.17.1.9"} {
		t.Run(mta, func(t *testing.T) {
			hf, err := headerfix.New(filters.Env{Name: "headerfix"}, headerfix.Config{})
			if err != nil {
				t.Fatal(err)
			}
			_, addr := startServer(t, milter.Config{Pipeline: pipeline(hf)})
			s := dial(t, addr)
			s.Macros(gomilter.CodeConn, "j", "mx.lab.example", "v", mta)
			must(t)(s.Conn("client.example", gomilter.FamilyInet, 4321, "192.0.2.7"))
			mods, act := sendMessage(t, s, "alice@lab.example", "bob@lab.example", hdr, "body\r\n")
			if act == nil || act.Code != gomilter.ActAccept {
				t.Fatalf("end of message: %+v", act)
			}
			if len(mods) != 0 {
				t.Errorf("a header that needs no repair got %d edits, the first %+v", len(mods), mods[0])
			}
		})
	}
}
