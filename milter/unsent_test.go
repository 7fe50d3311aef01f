package milter_test

import (
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
	slow := &filtertest.Fixed{FilterName: "slow", At: filters.StagesOf(filters.StageEOM), Delay: 300 * time.Millisecond,
		Verdict: filters.Verdict{Action: filters.Reject}}
	logs := &syncLog{}
	srv := milter.NewServer(milter.Config{Pipeline: pipeline(slow)}, slog.New(slog.NewTextHandler(logs, nil)), nil)
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, srv, ln)

	// The client stands for an MTA whose timeout is shorter than the
	// filter's answer.
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
	s.Macros(gomilter.CodeRcpt, "i", "4XQ1LOST")
	must(t)(s.Rcpt("b@example.org", nil))
	if _, _, err := s.End(); err == nil {
		t.Fatal("the reply came in time; the test needs it late")
	}
	s.Close()

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
	for _, want := range []string{"level=WARN", "queue_id=4XQ1LOST", "verdict=reject", "broken pipe"} {
		if !strings.Contains(line, want) {
			t.Errorf("no warning with %s that the reply did not reach the MTA; log:\n%s", want, logs)
			break
		}
	}
}
