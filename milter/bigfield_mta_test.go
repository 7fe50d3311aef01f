package milter_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// longestField records the longest header field value it is shown.
type longestField struct {
	mu  sync.Mutex
	max int
}

func (l *longestField) Name() string { return "longest-field" }
func (l *longestField) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageEOM), Headers: true}
}
func (l *longestField) Check(_ context.Context, _ filters.Stage, m *filters.Message) (filters.Verdict, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range m.Headers {
		l.max = max(l.max, len(h.Value))
	}
	return filters.Verdict{}, nil
}

// go-milter ends a session at a packet over 1 MiB, so a header field that
// large would end it and the MTA's default action would apply, not the
// 552 of a header block over the bound. Neither MTA sends one, whatever
// its own header limit (docs/filters.md says so): with the limit raised
// to 4 MiB, Postfix hands a milter the first 60000 bytes of a 1.5 MB field
// and delivers it so cut, and Sendmail refuses to write the packet itself
// ("out of range") and applies the milter's F= action.
func TestMTAsSendNoFieldOverPacketLimit(t *testing.T) {
	field := "X-Huge: " + strings.Repeat("h", 1500000)
	raw := []byte("From: alice@lab.example\r\nSubject: huge\r\n" + field + "\r\n\r\nbody\r\n")
	for _, name := range []string{"postfix", "sendmail"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rec := &longestField{}
			spec := serveUnix(t, pipeline(rec))
			var mta *mtatest.MTA
			if name == "postfix" {
				mta = mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: spec, ExtraConfig: []string{
					"header_size_limit = 4194304", "message_size_limit = 20480000",
				}})
			} else {
				mta = mtatest.StartSendmail(t, mtatest.SendmailOptions{Milter: spec, ExtraConfig: []string{
					"define(`confMAX_HEADERS_LENGTH', `4194304')dnl", "define(`confMAX_MESSAGE_SIZE', `20480000')dnl",
				}})
			}
			c := mtatest.DialSMTP(t, mta.Addr())
			c.Cmd("EHLO client.example")
			r := c.Send("alice@lab.example", []string{"bob@lab.example"}, raw)
			c.Quit()

			if name == "sendmail" {
				if r.Code != 451 {
					t.Fatalf("1.5 MB field: got %q, want Sendmail's 451 for a milter in error", r.Raw)
				}
				mta.WaitLog(t, "out of range", 10*time.Second)
				return
			}
			if r.Code != 250 {
				t.Fatalf("1.5 MB field: got %q, want 250", r.Raw)
			}
			got := mta.WaitDelivered(t, 1, 10*time.Second)
			if n := len(got[0].Get("X-Huge")); n >= 1<<20 || n < 1000 {
				t.Errorf("delivered X-Huge of %d bytes, want it cut under 1 MiB", n)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if rec.max == 0 || rec.max >= 1<<20 {
				t.Errorf("longest field sluice saw: %d bytes, want some, under 1 MiB", rec.max)
			}
			t.Logf("Postfix delivered %d bytes of the field, sluice saw %d", len(got[0].Get("X-Huge")), rec.max)
		})
	}
}
