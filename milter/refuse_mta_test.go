package milter_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// heloRcptRefuser refuses at HELO by the HELO name's first label
// ("reject." or "tempfail.") and at RCPT by the recipient's local part
// ("denied" with an enhanced status code, "banned" without one).
type heloRcptRefuser struct{}

func (heloRcptRefuser) Name() string { return "refuser" }
func (heloRcptRefuser) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageHelo, filters.StageRcptTo)}
}
func (heloRcptRefuser) Check(_ context.Context, s filters.Stage, m *filters.Message) (filters.Verdict, error) {
	if s == filters.StageHelo {
		switch {
		case strings.HasPrefix(m.Conn.Helo, "reject."):
			return filters.Verdict{Action: filters.Reject, Reply: &filters.Reply{Code: 550, Enhanced: "5.7.1", Text: "Helo denied"}}, nil
		case strings.HasPrefix(m.Conn.Helo, "tempfail."):
			return filters.Verdict{Action: filters.Tempfail, Reply: &filters.Reply{Code: 451, Enhanced: "4.7.1", Text: "Helo later"}}, nil
		}
		return filters.Verdict{}, nil
	}
	switch rcpt := m.Rcpts[len(m.Rcpts)-1].Addr; {
	case strings.HasPrefix(rcpt, "denied@"):
		return filters.Verdict{Action: filters.Reject, Reply: &filters.Reply{Code: 550, Enhanced: "5.7.1", Text: "Rcpt denied"}}, nil
	case strings.HasPrefix(rcpt, "banned@"):
		return filters.Verdict{Action: filters.Reject, Reply: &filters.Reply{Code: 550, Text: "Rcpt banned"}}, nil
	}
	return filters.Verdict{}, nil
}

// What the client sees of a refusal at HELO and at RCPT TO, as
// docs/filters.md and docs/sendmail.md describe it. Both MTAs answer EHLO
// with 250 and give the HELO verdict's reply from MAIL FROM on; Sendmail
// gives it to RCPT TO and DATA as well. At RCPT TO, Sendmail puts the
// address in front of the text of a 550 reply and adds 5.0.0 to a reply
// without an enhanced status code; Postfix passes the reply on as is
// (observed with Postfix 3.7 and Sendmail 8.17).
func TestRefusalAtHeloAndRcptSeenByClient(t *testing.T) {
	type want struct {
		heloReject, heloTempfail []string // MAIL FROM, RCPT TO, DATA
		denied, banned           string
	}
	for _, c := range []struct {
		mta  string
		want want
	}{
		{"postfix", want{
			heloReject:   []string{"550 5.7.1 Helo denied", "503 5.5.1 Error: need MAIL command", "503 5.5.1 Error: need RCPT command"},
			heloTempfail: []string{"451 4.7.1 Helo later", "503 5.5.1 Error: need MAIL command", "503 5.5.1 Error: need RCPT command"},
			denied:       "550 5.7.1 Rcpt denied",
			banned:       "550 Rcpt banned",
		}},
		{"sendmail", want{
			heloReject:   []string{"550 5.7.1 Helo denied", "550 5.7.1 Helo denied", "550 5.7.1 Helo denied"},
			heloTempfail: []string{"451 4.7.1 Helo later", "451 4.7.1 Helo later", "451 4.7.1 Helo later"},
			denied:       "550 5.7.1 <denied@lab.example>... Rcpt denied",
			banned:       "550 5.0.0 <banned@lab.example>... Rcpt banned",
		}},
	} {
		t.Run(c.mta, func(t *testing.T) {
			t.Parallel()
			spec := serveUnix(t, filters.NewPipeline([]filters.Step{{Filter: heloRcptRefuser{}, Timeout: 5 * time.Second}}, nil))
			mta := startMTA(t, c.mta, spec)

			for helo, want := range map[string][]string{"reject.example": c.want.heloReject, "tempfail.example": c.want.heloTempfail} {
				cl := mtatest.DialSMTP(t, mta.Addr())
				if r := cl.Cmd("EHLO " + helo); r.Code != 250 {
					t.Errorf("%s: EHLO %s: %v, want 250", c.mta, helo, r)
				}
				for i, cmd := range []string{"MAIL FROM:<alice@lab.example>", "RCPT TO:<bob@lab.example>", "DATA"} {
					if r := cl.Cmd(cmd); r.String() != want[i] {
						t.Errorf("%s: after EHLO %s, %s: %q, want %q", c.mta, helo, cmd, r.String(), want[i])
					}
				}
				cl.Close()
			}

			cl := mtatest.DialSMTP(t, mta.Addr())
			cl.Cmd("EHLO client.example")
			if r := cl.Cmd("MAIL FROM:<alice@lab.example>"); r.Code != 250 {
				t.Fatalf("%s: MAIL FROM: %v", c.mta, r)
			}
			for rcpt, want := range map[string]string{"denied@lab.example": c.want.denied, "banned@lab.example": c.want.banned} {
				if r := cl.Cmd("RCPT TO:<" + rcpt + ">"); r.String() != want {
					t.Errorf("%s: RCPT TO:<%s>: %q, want %q", c.mta, rcpt, r.String(), want)
				}
			}
			cl.Quit()
		})
	}
}

// eomDigitRefuser refuses every message at end of message with a reply
// without an enhanced status code whose text starts with a digit, as a
// DNSBL reply "554 {listed} is blocked" renders.
type eomDigitRefuser struct{}

func (eomDigitRefuser) Name() string { return "digits" }
func (eomDigitRefuser) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageEOM)}
}
func (eomDigitRefuser) Check(context.Context, filters.Stage, *filters.Message) (filters.Verdict, error) {
	return filters.Verdict{Action: filters.Reject, Reply: &filters.Reply{Code: 554, Text: "192.0.2.1 is blocked"}}, nil
}

// Postfix refuses a milter reply whose text starts with a digit other
// than the code's first ("malformed reply") and applies
// milter_default_action: with accept, the message sluice refused was
// delivered. Such a text gets the neutral enhanced status code 5.0.0 in
// front, and both MTAs refuse the message with it.
func TestReplyTextStartingWithDigit(t *testing.T) {
	for _, name := range []string{"postfix", "sendmail"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			spec := serveUnix(t, filters.NewPipeline([]filters.Step{{Filter: eomDigitRefuser{}, Timeout: 5 * time.Second}}, nil))
			var mta *mtatest.MTA
			if name == "postfix" {
				mta = mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: spec, DefaultAction: "accept"})
			} else {
				mta = startMTA(t, name, spec)
			}
			cl := mtatest.DialSMTP(t, mta.Addr())
			cl.Cmd("EHLO client.example")
			raw := "From: alice@lab.example\r\nTo: bob@lab.example\r\nSubject: digits\r\n\r\nbody\r\n"
			r := cl.Send("alice@lab.example", []string{"bob@lab.example"}, []byte(raw))
			cl.Quit()
			if want := "554 5.0.0 192.0.2.1 is blocked"; r.String() != want {
				t.Errorf("%s: client got %q, want %q", name, r.String(), want)
			}
			if r.Code == 250 {
				t.Errorf("%s delivered the message sluice refused (%d copies)", name, len(mta.WaitDelivered(t, 1, 10*time.Second)))
			}
		})
	}
}
