package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/milter/mtatest"
)

// Quarantine beats discard: spam that the bayes filter would discard,
// from a sender a senders rule holds at MAIL FROM, waits in Postfix's
// hold queue. Released (postsuper -H), it is delivered as it was held,
// and must carry the bayes verdict then, or the spam reaches the inbox
// past every filing rule that looks for "X-Sluice-Bayes: Spam".
func TestBayesDiscardedSpamHeldBySendersKeepsVerdictPostfix(t *testing.T) {
	mtatest.Require(t)
	state := t.TempDir()
	db := filepath.Join(state, "bayes.db")
	trainFixtures(t, db)
	rules := filepath.Join(state, "access")
	if err := os.WriteFile(rules, []byte("From:casino-royal.example QUARANTINE:suspicious sender\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(socketDir(t), "sluice.sock")
	startDaemonWith(t, fmt.Sprintf(`listen:
  - address: unix:%s
    mode: "0666"
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
state_dir: %s
filters:
  - type: senders
    options:
      files: [%s]
  - type: bayes
    options:
      spam:
        action: discard
`, sock, state, rules))
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + sock, DefaultAction: "tempfail"})

	raw, err := os.ReadFile(fixture("check", "spam.eml"))
	if err != nil {
		t.Fatal(err)
	}
	c := mtatest.DialSMTP(t, mta.Addr())
	c.Cmd("EHLO client.example")
	r := c.Send("promo@casino-royal.example", []string{"bob@lab.example"}, []byte(strings.ReplaceAll(string(raw), "\n", "\r\n")))
	c.Quit()
	if r.Code != 250 || r.QueueID() == "" {
		t.Fatalf("spam: reply %v, want 250 with a queue id", r)
	}
	mta.WaitIdle(t, 20*time.Second)
	if held := mta.Held(t); len(held) != 1 || held[0] != r.QueueID() {
		t.Fatalf("held %v, want %s", held, r.QueueID())
	}

	// postsuper -H moves the message to the deferred queue; postqueue -f
	// has it delivered now rather than at the next queue run.
	for _, args := range [][]string{{"postsuper", "-H", r.QueueID()}, {"postqueue", "-f"}} {
		cmd := exec.Command(args[0], append([]string{"-c", filepath.Join(mta.Dir(), "etc")}, args[1:]...)...)
		cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/local/sbin:/usr/sbin:/sbin")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	d := mta.WaitDelivered(t, 1, 30*time.Second)[0]
	if vs := d.Values("X-Sluice-Bayes"); len(vs) != 1 || !strings.HasPrefix(vs[0], "Spam,") {
		t.Errorf("released spam delivered with X-Sluice-Bayes %q, want one Spam verdict", vs)
	}
}
