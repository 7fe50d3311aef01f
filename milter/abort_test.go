package milter_test

import (
	"strings"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/milter"
)

// The MTA aborts a message mid-body (client RSET or disconnect of the
// SMTP transaction) and goes on with another on the same milter
// connection. Nothing of the aborted message may reach the next one:
// not its recipients, headers, macros, queue id or body, nor its spilled
// body file.
func TestAbortedMessageLeavesNothingForTheNext(t *testing.T) {
	rec := &recorder{needBody: true}
	dir := t.TempDir()
	_, addr := startServer(t, milter.Config{Pipeline: pipeline(rec), BodyMemoryLimit: 64, TempDir: dir})
	s := dial(t, addr)
	must(t)(s.Conn("client.example", gomilter.FamilyInet, 4321, "192.0.2.7"))
	must(t)(s.Helo("client.example"))

	s.Macros(gomilter.CodeMail, "{auth_authen}", "old-user")
	must(t)(s.Mail("old@example.org", nil))
	s.Macros(gomilter.CodeRcpt, "i", "OLDQID")
	must(t)(s.Rcpt("old-rcpt@example.org", nil))
	must(t)(s.HeaderField("X-Old", "1"))
	must(t)(s.HeaderEnd())
	must(t)(s.BodyChunk([]byte(strings.Repeat("old body ", 100)))) // spills past 64 bytes
	if err := s.Abort(); err != nil {
		t.Fatal(err)
	}

	_, act := sendMessage(t, s, "new@example.org", "new@lab.example", [][2]string{{"Subject", "new"}}, "new body\r\n")
	if act.Code != gomilter.ActAccept {
		t.Fatalf("message after the abort: action %c, want accept", act.Code)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.msgs) != 1 {
		t.Fatalf("filter ran at end of message %d times, want once (the aborted message never ended)", len(rec.msgs))
	}
	m := rec.msgs[0]
	if m.From.Addr != "new@example.org" || len(m.Rcpts) != 1 || m.Rcpts[0].Addr != "new@lab.example" {
		t.Errorf("envelope from %q rcpts %+v", m.From.Addr, m.Rcpts)
	}
	if len(m.Headers) != 1 || m.Headers[0] != (filters.Header{Name: "Subject", Value: "new"}) {
		t.Errorf("headers %+v, want only Subject: new", m.Headers)
	}
	if m.QueueID != "QIDnew@lab.example" {
		t.Errorf("queue id %q", m.QueueID)
	}
	if v, ok := m.Macro("auth_authen"); ok {
		t.Errorf("macro of the aborted message kept: %q", v)
	}
	if string(rec.bodies[0]) != "new body\r\n" || rec.spilled[0] {
		t.Errorf("body %q spilled %v", rec.bodies[0], rec.spilled[0])
	}
	if m.Conn.Helo != "client.example" || m.Conn.Addr.String() != "192.0.2.7" {
		t.Errorf("connection data lost across the abort: %+v", m.Conn)
	}
}
