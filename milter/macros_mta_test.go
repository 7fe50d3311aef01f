package milter_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// macroSeen is what a filter read at end of message.
type macroSeen struct {
	queueID, mailAddr, clientAddr string
}

type macroReader struct {
	mu   sync.Mutex
	seen []macroSeen
}

func (r *macroReader) Name() string { return "macro-reader" }
func (r *macroReader) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageEOM)}
}
func (r *macroReader) Check(_ context.Context, _ filters.Stage, m *filters.Message) (filters.Verdict, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	mailAddr, _ := m.Macro("mail_addr")
	clientAddr, _ := m.Macro("client_addr")
	r.seen = append(r.seen, macroSeen{m.QueueID, mailAddr, clientAddr})
	return filters.Verdict{}, nil
}

// Each message of an SMTP session gets the macros the MTA sent for it:
// its own queue id (the one in the MTA's reply to the client) and sender
// macro, and the connection's client address, with both MTAs and two
// messages on one connection.
func TestMTAMacrosPerMessage(t *testing.T) {
	for _, name := range []string{"postfix", "sendmail"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rec := &macroReader{}
			spec := serveUnix(t, pipeline(rec))
			mta := startMTA(t, name, spec)
			c := mtatest.DialSMTP(t, mta.Addr())
			c.Cmd("EHLO client.example")
			var replies []string
			for _, from := range []string{"first@lab.example", "second@lab.example"} {
				r := c.Send(from, []string{"bob@lab.example"}, []byte("From: "+from+"\r\nSubject: s\r\n\r\nbody\r\n"))
				if r.Code != 250 {
					t.Fatalf("message from %s: %q", from, r.Raw)
				}
				replies = append(replies, r.Text)
			}
			c.Quit()

			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.seen) != 2 {
				t.Fatalf("%d messages seen, want 2", len(rec.seen))
			}
			for i, s := range rec.seen {
				if s.queueID == "" || !strings.Contains(replies[i], s.queueID) {
					t.Errorf("message %d: queue id %q, MTA replied %q", i+1, s.queueID, replies[i])
				}
				if s.mailAddr == "" || !strings.HasPrefix([]string{"first@lab.example", "second@lab.example"}[i], s.mailAddr) {
					t.Errorf("message %d: mail_addr %q", i+1, s.mailAddr)
				}
				if s.clientAddr != "127.0.0.1" {
					t.Errorf("message %d: client_addr %q", i+1, s.clientAddr)
				}
			}
		})
	}
}
