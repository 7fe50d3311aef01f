package milter_test

import (
	"strings"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/filtertest"
	"github.com/sluice-mail/sluice/milter"
)

// A header field larger than the 1 MiB go-milter takes in one packet (an
// administrator may raise Postfix's header_size_limit that far) gets the
// 552 of a header block over the bound, as a block of smaller fields
// does, not the end of the milter connection and the MTA's default
// action. The session then takes the next message as usual.
func TestHeaderFieldOverPacketLimit(t *testing.T) {
	reader := &filtertest.Fixed{FilterName: "reader", At: filters.StagesOf(filters.StageEOM), NeedHeaders: true}
	_, addr := startServer(t, milter.Config{Pipeline: pipeline(reader, &filtertest.Script{})})
	s := dial(t, addr)
	must(t)(s.Conn("client.example", gomilter.FamilyInet, 4321, "192.0.2.7"))
	must(t)(s.Helo("helo.example"))

	huge := [][2]string{{"Subject", "s"}, {"X-Huge", strings.Repeat("h", 3<<20)}, {"X-After", "a"}}
	_, act := sendMessage(t, s, "alice@example.org", "ok@lab.example", huge, "body\r\n")
	if act.Code != gomilter.ActReplyCode || act.SMTPCode != 552 || !strings.Contains(act.SMTPText, "5.3.4 Message header too large") {
		t.Fatalf("3 MiB field: action %c %d %q, want a 552 5.3.4 reply", act.Code, act.SMTPCode, act.SMTPText)
	}
	if err := s.Abort(); err != nil {
		t.Fatal(err)
	}
	mods, act := sendMessage(t, s, "alice@example.org", "ok@lab.example", [][2]string{{"Subject", "s"}}, "body\r\n")
	if act.Code != gomilter.ActAccept {
		t.Fatalf("next message: action %c %d %q, want accept", act.Code, act.SMTPCode, act.SMTPText)
	}
	if len(mods) == 0 {
		t.Error("next message: the script filter added no header")
	}
}
