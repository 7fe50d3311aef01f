package milter_test

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/milter"
)

// The connection's macros are those of connect and those of the latest
// HELO: the MTA sends a new set at each HELO (EHLO again after STARTTLS),
// and that set replaces the one before, as in libmilter. A client saying
// HELO many times, or a peer sending different macros each time, does not
// make the connection hold more.
func TestHeloMacrosReplaceTheEarlierHelos(t *testing.T) {
	rec := &recorder{}
	_, addr := startServer(t, milter.Config{Pipeline: pipeline(rec)})
	s := dial(t, addr)
	s.Macros(gomilter.CodeConn, "j", "mx.lab.example", "{client_addr}", "192.0.2.7")
	must(t)(s.Conn("client.example", gomilter.FamilyInet, 4321, "192.0.2.7"))
	const n = 50
	for i := range n {
		s.Macros(gomilter.CodeHelo, fmt.Sprintf("{x%d}", i), "v", "{tls_version}", fmt.Sprintf("TLSv1.%d", i))
		must(t)(s.Helo("client.example"))
	}
	if _, act := sendMessage(t, s, "a@example.org", "b@lab.example", nil, "x\r\n"); act.Code != gomilter.ActAccept {
		t.Fatalf("action %c, want accept", act.Code)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.msgs) != 1 {
		t.Fatalf("%d messages seen, want 1", len(rec.msgs))
	}
	want := map[string]string{
		"j": "mx.lab.example", "{client_addr}": "192.0.2.7",
		fmt.Sprintf("{x%d}", n-1): "v", "{tls_version}": fmt.Sprintf("TLSv1.%d", n-1),
	}
	if got := rec.msgs[0].Conn.Macros; !maps.Equal(got, want) {
		t.Errorf("connection macros %v, want %v", got, want)
	}
}

// go-milter hands every callback the macros of the last macro packet,
// whatever stage it was for. When the MTA sends none at a stage (an
// administrator may configure an empty list), a message that follows
// another with no abort in between must not take the previous message's
// end-of-message macros as its own: not its queue id, which names the
// message in the log, nor any other.
func TestMessageTakesOnlyItsOwnMacros(t *testing.T) {
	rec := &recorder{}
	sums := &summaries{}
	_, addr := startServerObserved(t, milter.Config{Pipeline: pipeline(rec)}, sums)
	s := dial(t, addr)
	must(t)(s.Conn("client.example", gomilter.FamilyInet, 4321, "192.0.2.7"))
	must(t)(s.Helo("client.example"))
	s.Macros(gomilter.CodeMail, "{mail_addr}", "first@example.org")
	must(t)(s.Mail("first@example.org", nil))
	must(t)(s.Rcpt("first@lab.example", nil))
	must(t)(s.HeaderEnd())
	s.Macros(gomilter.CodeEOB, "i", "FIRSTQID", "{msg_id}", "<first@example.org>")
	if _, act, err := s.BodyReadFrom(strings.NewReader("x\r\n")); err != nil || act.Code != gomilter.ActAccept {
		t.Fatalf("first message: %v %v", act, err)
	}

	// The second message: no macros at MAIL, its queue id at RCPT.
	must(t)(s.Mail("second@example.org", nil))
	s.Macros(gomilter.CodeRcpt, "i", "SECONDQID")
	must(t)(s.Rcpt("second@lab.example", nil))
	must(t)(s.HeaderEnd())
	if _, act, err := s.BodyReadFrom(strings.NewReader("x\r\n")); err != nil || act.Code != gomilter.ActAccept {
		t.Fatalf("second message: %v %v", act, err)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	sums.mu.Lock()
	defer sums.mu.Unlock()
	if len(rec.msgs) != 2 || len(sums.sums) != 2 {
		t.Fatalf("%d messages seen, %d summaries, want 2", len(rec.msgs), len(sums.sums))
	}
	if got := sums.sums[1].QueueID; got != "SECONDQID" {
		t.Errorf("second message logged with queue id %q, want SECONDQID", got)
	}
	if got, want := rec.msgs[1].Macros, map[string]string{"i": "SECONDQID"}; !maps.Equal(got, want) {
		t.Errorf("second message's macros %v, want %v", got, want)
	}
	if got, want := rec.msgs[1].Conn.Macros, map[string]string{}; !maps.Equal(got, want) {
		t.Errorf("connection macros %v, want none", got)
	}
}

// The message's macros are those of its latest MAIL, RCPT, end of header
// and end of message sets: each RCPT's set replaces the previous RCPT's,
// as libmilter keeps one set per stage. A peer sending a different set
// with each of many recipients does not make one message hold them all
// (200 sets of 64 kB held 12.8 MB), and a recipient's macro does not
// linger for the next recipient's checks.
func TestRecipientMacrosReplaceTheEarlierRecipients(t *testing.T) {
	rec := &recorder{}
	_, addr := startServer(t, milter.Config{Pipeline: pipeline(rec)})
	s := dial(t, addr)
	must(t)(s.Conn("client.example", gomilter.FamilyInet, 4321, "192.0.2.7"))
	must(t)(s.Helo("client.example"))
	s.Macros(gomilter.CodeMail, "{mail_addr}", "a@example.org", "{auth_authen}", "ann")
	must(t)(s.Mail("a@example.org", nil))
	const rcpts, perRcpt = 200, 16
	val := strings.Repeat("v", 4000)
	for i := range rcpts {
		kv := []string{"{rcpt_addr}", fmt.Sprintf("r%d@lab.example", i), "i", "4QID"}
		for j := range perRcpt {
			kv = append(kv, fmt.Sprintf("{x%d_%d}", i, j), val)
		}
		s.Macros(gomilter.CodeRcpt, kv...)
		must(t)(s.Rcpt(fmt.Sprintf("r%d@lab.example", i), nil))
	}
	s.Macros(gomilter.CodeEOB, "{msg_id}", "<m@example.org>")
	if _, act, err := s.BodyReadFrom(strings.NewReader("x\r\n")); err != nil || act.Code != gomilter.ActAccept {
		t.Fatalf("end of message: %v %v", act, err)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.msgs) != 1 {
		t.Fatalf("%d messages seen, want 1", len(rec.msgs))
	}
	got := rec.msgs[0].Macros
	want := map[string]string{
		"{mail_addr}": "a@example.org", "{auth_authen}": "ann",
		"{rcpt_addr}": fmt.Sprintf("r%d@lab.example", rcpts-1), "i": "4QID",
		"{msg_id}": "<m@example.org>",
	}
	for j := range perRcpt {
		want[fmt.Sprintf("{x%d_%d}", rcpts-1, j)] = val
	}
	if !maps.Equal(got, want) {
		size := 0
		for k, v := range got {
			size += len(k) + len(v)
		}
		t.Errorf("the message holds %d macros (%d bytes), want the %d of MAIL, the last RCPT and end of message", len(got), size, len(want))
	}
	if q := rec.msgs[0].QueueID; q != "4QID" {
		t.Errorf("queue id %q", q)
	}
}

// An administrator may write the queue id macro as "{i}" in the MTA's
// lists (milter_rcpt_macros, confMILTER_MACROS_ENVFROM); both MTAs then
// send it under that name (observed with Postfix 3.7 and Sendmail 8.17).
// It is the queue id all the same, for the log line and the filters.
func TestQueueIDMacroInBraces(t *testing.T) {
	rec := &recorder{}
	sums := &summaries{}
	_, addr := startServerObserved(t, milter.Config{Pipeline: pipeline(rec)}, sums)
	s := dial(t, addr)
	must(t)(s.Conn("client.example", gomilter.FamilyInet, 4321, "192.0.2.7"))
	must(t)(s.Helo("client.example"))
	s.Macros(gomilter.CodeMail, "{auth_authen}", "ann")
	must(t)(s.Mail("a@example.org", nil))
	s.Macros(gomilter.CodeRcpt, "{i}", "4QID", "{rcpt_addr}", "b@lab.example")
	must(t)(s.Rcpt("b@lab.example", nil))
	must(t)(s.HeaderEnd())
	if _, act, err := s.BodyReadFrom(strings.NewReader("x\r\n")); err != nil || act.Code != gomilter.ActAccept {
		t.Fatalf("end of message: %v %v", act, err)
	}
	sums.wait()

	rec.mu.Lock()
	defer rec.mu.Unlock()
	sums.mu.Lock()
	defer sums.mu.Unlock()
	if len(rec.msgs) != 1 || len(sums.sums) != 1 {
		t.Fatalf("%d messages seen, %d summaries, want 1", len(rec.msgs), len(sums.sums))
	}
	if q := rec.msgs[0].QueueID; q != "4QID" {
		t.Errorf("filters saw queue id %q, want 4QID", q)
	}
	if q := sums.sums[0].QueueID; q != "4QID" {
		t.Errorf("message logged with queue id %q, want 4QID", q)
	}
}
