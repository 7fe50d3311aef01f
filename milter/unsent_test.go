package milter_test

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/filtertest"
	"github.com/sluice-mail/sluice/milter"
)

// The MTA gives up waiting for the answer at end of message (its milter
// timeout) and closes the connection, and the reply sluice writes after
// that goes nowhere: the MTA applies its own default action to the
// message. The message line, written as the verdict is reached, says
// reject; a warning with the queue id must say that the MTA never got
// it, or the log tells an administrator that a message was refused
// which the MTA delivered (milter_default_action = accept) or deferred.
func TestFinalReplyNotDeliveredLogged(t *testing.T) {
	logs, _ := sendToLateMTA(t, filters.Verdict{Action: filters.Reject}, "4XQ1LOST")
	wantNotDelivered(t, logs, "4XQ1LOST", "broken pipe")
}

// A delivered message gets its header edits (a verdict header, a tag)
// and a held one its quarantine before the final reply, and those are
// the first packets written after the MTA gave up waiting: over a unix
// socket their write fails. The message was still decided: its line
// gives the filters' verdict, and the warning that the MTA never got it
// follows, as for a refused message, rather than a line that says the
// MTA abandoned the message and no warning at all.
func TestFinalReplyNotDeliveredWithEditsLogged(t *testing.T) {
	for _, tc := range []struct {
		name    string
		verdict filters.Verdict
		want    string
	}{
		{"edits", filters.Verdict{Edits: []filters.HeaderEdit{{Kind: filters.AddHeader, Name: "X-Tag", Value: "checked"}}}, "accept"},
		{"quarantine", filters.Verdict{Action: filters.Quarantine, Reason: "held"}, "quarantine"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs, sums := sendToLateMTA(t, tc.verdict, "4XQ5LOST")
			wantVerdictNotDelivered(t, logs, "4XQ5LOST", tc.want, "broken pipe")
			sums.mu.Lock()
			defer sums.mu.Unlock()
			if len(sums.sums) != 1 || sums.sums[0].Aborted || sums.sums[0].Action.String() != tc.want {
				t.Errorf("message summaries %+v, want one, %s, not aborted", sums.sums, tc.want)
			}
		})
	}
}

// startServerLogged serves cfg on a TCP port on loopback and returns its
// address and what it logs.
func startServerLogged(t *testing.T, cfg milter.Config) (string, *syncLog) {
	t.Helper()
	logs := &syncLog{}
	srv := milter.NewServer(cfg, slog.New(slog.NewTextHandler(logs, nil)), nil)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, srv, ln)
	return ln.Addr().String(), logs
}

// Over TCP the reply written after the MTA closed does not fail: the
// kernel queues it and the MTA's reset comes later. Postfix and Sendmail
// close the milter connection without a QUIT when their timeout runs out
// at end of message, so the warning must come all the same, as it does
// over a unix socket.
func TestFinalReplyNotDeliveredLoggedTCP(t *testing.T) {
	slow := &filtertest.Fixed{FilterName: "slow", At: filters.StagesOf(filters.StageEOM), Delay: 300 * time.Millisecond,
		Verdict: filters.Verdict{Action: filters.Reject}}
	addr, logs := startServerLogged(t, milter.Config{Pipeline: pipeline(slow)})

	m := dialRaw(t, addr)
	m.startMessage(gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine)
	m.send('D', macros('R', "i", "4XQ2LOST"), false)
	if code := m.send('R', []byte("<b@example.org>\x00"), true); code != 'c' {
		t.Fatalf("RCPT: reply %c", code)
	}
	m.send('E', nil, false)
	// The MTA's timeout runs out before the filter answers.
	time.Sleep(50 * time.Millisecond)
	m.c.Close()

	wantNotDelivered(t, logs, "4XQ2LOST", "closed the connection before the reply")
}

// wantNotDelivered waits (5 s at most) for the warning that the final
// reply (a reject) of queue id did not reach the MTA, and checks it says
// so at WARN, with the verdict and why (because).
func wantNotDelivered(t *testing.T, logs fmt.Stringer, queueID, because string) {
	t.Helper()
	wantVerdictNotDelivered(t, logs, queueID, "reject", because)
}

// wantVerdictNotDelivered is wantNotDelivered for a final reply with the
// given verdict.
func wantVerdictNotDelivered(t *testing.T, logs fmt.Stringer, queueID, verdict, because string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "reply not delivered") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "reply not delivered") {
			line = l
		}
	}
	for _, want := range []string{"level=WARN", "queue_id=" + queueID, "verdict=" + verdict, because} {
		if !strings.Contains(line, want) {
			t.Errorf("no warning with %s that the reply did not reach the MTA; log:\n%s", want, logs)
			break
		}
	}
}

// The look for a closed connection before the final reply must not take
// the MTA's next packet from the stream or hold the reply when there is
// nothing to read: an MTA that waits gets its verdict, the session goes
// on with the next message, and nothing is logged as not delivered.
func TestFinalReplyDeliveredTCPNoWarning(t *testing.T) {
	for _, tc := range []struct {
		name string
		// ahead is sent after the end of message, before the reply is read.
		ahead bool
	}{
		{"quiet", false},
		{"packet ahead", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			slow := &filtertest.Fixed{FilterName: "slow", At: filters.StagesOf(filters.StageEOM), Delay: 200 * time.Millisecond,
				Verdict: filters.Verdict{Action: filters.Reject}}
			addr, logs := startServerLogged(t, milter.Config{Pipeline: pipeline(slow)})

			m := dialRaw(t, addr)
			m.startMessage(gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine)
			m.send('D', macros('R', "i", "4XQ3KEPT"), false)
			if code := m.send('R', []byte("<b@example.org>\x00"), true); code != 'c' {
				t.Fatalf("RCPT: reply %c", code)
			}
			if !tc.ahead {
				if code := m.send('E', nil, true); code != 'y' {
					t.Fatalf("end of message: reply %c, want y (reject)", code)
				}
			} else {
				m.send('E', nil, false)
				// The macros of the next MAIL FROM, already there to be
				// read while the filter works.
				time.Sleep(50 * time.Millisecond)
				m.send('D', macros('M', "{mail_addr}", "c@example.org"), false)
				if code := m.read("end of message"); code != 'y' {
					t.Fatalf("end of message: reply %c, want y (reject)", code)
				}
			}
			if code := m.send('M', []byte("<c@example.org>\x00"), true); code != 'c' {
				t.Fatalf("next MAIL: reply %c", code)
			}
			if strings.Contains(logs.String(), "reply not delivered") {
				t.Errorf("a reply the MTA read was logged as not delivered; log:\n%s", logs)
			}
		})
	}
}

// sendToLateMTA serves a pipeline whose one filter answers v at the end
// of the message after 300 ms, to a client that stands for an MTA whose
// timeout (100 ms) is shorter: it gives up and closes the connection
// before sluice writes what comes after the verdict. It returns the
// server's log and message summaries.
func sendToLateMTA(t *testing.T, v filters.Verdict, queueID string) (*syncLog, *summaries) {
	t.Helper()
	slow := &filtertest.Fixed{FilterName: "slow", At: filters.StagesOf(filters.StageEOM), Delay: 300 * time.Millisecond, Verdict: v}
	logs := &syncLog{}
	sums := &summaries{}
	srv := milter.NewServer(milter.Config{Pipeline: pipeline(slow)}, slog.New(slog.NewTextHandler(logs, nil)), sums)
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, srv, ln)

	c := gomilter.NewClientWithOptions("unix", sock, gomilter.ClientOptions{
		ReadTimeout: 100 * time.Millisecond, WriteTimeout: time.Second,
		ActionMask: gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine,
	})
	s, err := c.Session()
	if err != nil {
		t.Fatal(err)
	}
	must(t)(s.Conn("client.example", gomilter.FamilyInet, 4321, "192.0.2.7"))
	must(t)(s.Mail("a@example.org", nil))
	s.Macros(gomilter.CodeRcpt, "i", queueID)
	must(t)(s.Rcpt("b@example.org", nil))
	if _, _, err := s.End(); err == nil {
		t.Fatal("the reply came in time; the test needs it late")
	}
	s.Close()
	return logs, sums
}
