package milter_test

import (
	"strings"
	"sync/atomic"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/filtertest"
	"github.com/sluice-mail/sluice/milter"
)

// panickyObserver panics at the next RCPT-stage decision once armed: a
// panic in sluice's own code around the filters, which only the session
// boundary recovers.
type panickyObserver struct{ armed atomic.Bool }

func (o *panickyObserver) FilterDecided(d filters.Decision) {
	if d.Stage == filters.StageRcptTo && o.armed.Swap(false) {
		panic("observer broke")
	}
}

// A panic in the session while it handles one RCPT, under on_failure
// tempfail. The milter reply at RCPT refuses only that recipient and the
// MTA goes on with the message for the others; the message must then end
// in the same temporary failure, not go through unfiltered. The session
// survives for the next message.
func TestSessionPanicAtRcptTempfailsTheMessage(t *testing.T) {
	obs := &panickyObserver{}
	rcpt := &filtertest.Fixed{FilterName: "rcpt", At: filters.StagesOf(filters.StageRcptTo)}
	p := filters.NewPipeline([]filters.Step{{Filter: rcpt}}, obs)
	_, addr := startServer(t, milter.Config{Pipeline: p, OnFailure: filters.FailTempfail})
	s := dial(t, addr)
	must(t)(s.Conn("c", gomilter.FamilyInet, 1, "192.0.2.1"))
	must(t)(s.Helo("h"))

	obs.armed.Store(true)
	must(t)(s.Mail("a@example.org", nil))
	if act := must(t)(s.Rcpt("first@example.org", nil)); act.Code != gomilter.ActReplyCode || act.SMTPCode != 451 {
		t.Fatalf("RCPT that panicked: action %c %d, want a 451 reply", act.Code, act.SMTPCode)
	}
	if act := must(t)(s.Rcpt("second@example.org", nil)); act.Code != gomilter.ActContinue {
		t.Fatalf("next RCPT: action %c, want continue", act.Code)
	}
	must(t)(s.HeaderField("Subject", "hi"))
	must(t)(s.HeaderEnd())
	_, act, err := s.BodyReadFrom(strings.NewReader("x\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if act.Code != gomilter.ActReplyCode || act.SMTPCode != 451 {
		t.Fatalf("end of message after the panic: action %c %d, want a 451 reply", act.Code, act.SMTPCode)
	}

	_, act = sendMessage(t, s, "a@example.org", "b@example.org", nil, "x\r\n")
	if act.Code != gomilter.ActAccept {
		t.Errorf("next message: action %c, want accept", act.Code)
	}
}
