package milter_test

import (
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/milter"
)

// A peer starts a second message with MAIL FROM while the first is still
// open, with no abort in between (Postfix and Sendmail send one). The first
// message is gone for the MTA too: it gets its summary and log line as an
// aborted message, and nothing of it reaches the second.
func TestMailWithoutAbortEndsTheOpenMessage(t *testing.T) {
	sums := &summaries{}
	_, addr := startServerObserved(t, milter.Config{Pipeline: pipeline()}, sums)
	s := dial(t, addr)
	must(t)(s.Conn("client.example", gomilter.FamilyInet, 4321, "192.0.2.7"))
	must(t)(s.Mail("first@example.org", nil))
	must(t)(s.Rcpt("first-rcpt@example.org", nil))

	_, act := sendMessage(t, s, "second@example.org", "second@lab.example", nil, "x\r\n")
	if act.Code != gomilter.ActAccept {
		t.Fatalf("second message: action %c, want accept", act.Code)
	}
	sums.mu.Lock()
	defer sums.mu.Unlock()
	if len(sums.sums) != 2 {
		t.Fatalf("%d message summaries, want 2 (the first, aborted, and the second)", len(sums.sums))
	}
	first, second := sums.sums[0], sums.sums[1]
	if !first.Aborted || first.From != "first@example.org" || len(first.Rcpts) != 1 || first.Rcpts[0] != "first-rcpt@example.org" {
		t.Errorf("first summary %+v, want the first message, aborted", first)
	}
	if second.Aborted || second.From != "second@example.org" || len(second.Rcpts) != 1 || second.Rcpts[0] != "second@lab.example" {
		t.Errorf("second summary %+v, want the second message alone, delivered", second)
	}
}

// A peer reports a new client on the same milter connection while a
// message of the last one is still open, with no abort in between. The
// message ends there, in the log as the last client's, and is not
// carried into the new connection.
func TestConnectWithoutAbortEndsTheOpenMessage(t *testing.T) {
	sums := &summaries{}
	_, addr := startServerObserved(t, milter.Config{Pipeline: pipeline()}, sums)
	s := dial(t, addr)
	must(t)(s.Conn("first.example", gomilter.FamilyInet, 4321, "192.0.2.7"))
	must(t)(s.Mail("first@example.org", nil))
	must(t)(s.Rcpt("first-rcpt@example.org", nil))
	must(t)(s.Conn("second.example", gomilter.FamilyInet, 4321, "192.0.2.8"))

	sums.mu.Lock()
	defer sums.mu.Unlock()
	if len(sums.sums) != 1 {
		t.Fatalf("%d message summaries after the second connect, want 1 (the first message, aborted)", len(sums.sums))
	}
	if got := sums.sums[0]; !got.Aborted || got.From != "first@example.org" || got.Client != "first.example[192.0.2.7]" {
		t.Errorf("summary %+v, want the first message, aborted, of the first client", got)
	}
}
