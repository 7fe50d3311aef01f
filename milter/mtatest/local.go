package mtatest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// submitTimeout bounds one run of sendmail(1) or postkick(1). Postfix's
// sendmail only writes the message into the maildrop queue (through
// postdrop) and returns; it does not wait for the milter.
const submitTimeout = 30 * time.Second

// SubmitLocal submits raw as a local user or program would, with the
// instance's own sendmail(1) command (Postfix only):
//
//	sendmail -C <instance>/etc -i -f from [args...] -- rcpts...
//
// postdrop(1) writes the message into the maildrop queue, pickup(8)
// hands it to cleanup(8), and cleanup runs the non_smtpd_milters
// (PostfixOptions.NonSMTPDMilters) with a simulated connect and HELO,
// then queues it as mail received over SMTP is queued. Lines of raw may
// end in LF or CRLF; a line holding only "." does not end the input
// (-i). args are further sendmail options, such as "-F", "Full Name".
//
// It returns the command's combined output and its error, a non-zero
// exit being an *exec.ExitError, for the test to judge: Postfix's
// sendmail exits 0 once the message is in the maildrop queue, whatever
// the milter later decides. The test fails if the command cannot be
// started or takes longer than 30 seconds.
func (m *MTA) SubmitLocal(t testing.TB, from string, rcpts []string, raw []byte, args ...string) (string, error) {
	t.Helper()
	if m.name != "postfix" {
		t.Fatalf("%v: SubmitLocal is implemented for Postfix only", m)
	}
	sendmail, err := m.postconf("sendmail_path")
	if err != nil {
		t.Fatalf("%v: %v", m, err)
	}
	argv := append([]string{"-C", m.configDir(), "-i", "-f", from}, args...)
	argv = append(append(argv, "--"), rcpts...)
	ctx, cancel := context.WithTimeout(context.Background(), submitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, sendmail, argv...)
	// MAIL_CONFIG as well as -C: postdrop, which sendmail runs, reads it.
	cmd.Env = append(os.Environ(), "MAIL_CONFIG="+m.configDir())
	cmd.Stdin = bytes.NewReader(raw)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%v: %s %s: timed out after %v\n%s", m, sendmail, strings.Join(argv, " "), submitTimeout, out)
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("%v: %s: %v", m, sendmail, err)
	}
	return string(out), err
}

// KickPickup asks the instance's pickup(8) to scan the maildrop queue now
// (postkick public pickup W) rather than at its next wakeup, 60 seconds
// at most. A message left in the maildrop queue, for instance because a
// non_smtpd milter answered with a temporary failure, is then tried
// again. Postfix only.
func (m *MTA) KickPickup(t testing.TB) {
	t.Helper()
	if m.name != "postfix" {
		t.Fatalf("%v: KickPickup is implemented for Postfix only", m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), submitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "postkick", "-c", m.configDir(), "public", "pickup", "W")
	cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/local/sbin:/usr/sbin:/sbin")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: postkick: %v\n%s", m, err, out)
	}
}

// Queued returns the messages still in the queue on their way to delivery
// or a bounce, as "subdir/queue-id" (e.g. "maildrop/3F2A1C0042",
// "deferred/3F2A1C0042"), sorted; quarantined (held) messages are not
// listed (see Held). A message submitted with SubmitLocal stays in
// maildrop/ under the name it got there until pickup(8) has queued it.
// Postfix only.
func (m *MTA) Queued(t testing.TB) []string {
	t.Helper()
	if m.name != "postfix" {
		t.Fatalf("%v: Queued is implemented for Postfix only", m)
	}
	q, err := m.queue()
	if err != nil {
		t.Fatalf("%v: %v", m, err)
	}
	return q.inFlight
}

func (m *MTA) configDir() string { return filepath.Join(m.dir, "etc") }

// postconf returns the value of a main.cf parameter of the instance.
func (m *MTA) postconf(name string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), submitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "postconf", "-c", m.configDir(), "-h", name)
	cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/local/sbin:/usr/sbin:/sbin")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("postconf %s: %w", name, err)
	}
	v := strings.TrimSpace(string(out))
	if v == "" {
		return "", fmt.Errorf("postconf %s: empty", name)
	}
	return v, nil
}
