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
// postdrop) and returns; it does not wait for the milter. Sendmail's
// waits for the daemon's answer to the relayed message, milter included.
const submitTimeout = 30 * time.Second

// SubmitLocal submits raw as a local user or program would, with the
// instance's own sendmail(1) command:
//
//	sendmail -C <config> -i -f from [args...] -- rcpts...
//
// Lines of raw may end in LF or CRLF; a line holding only "." does not end
// the input (-i). args are further sendmail options, such as "-F", "Full
// Name". It returns the command's combined output and its error, a
// non-zero exit being an *exec.ExitError, for the test to judge. The test
// fails if the command cannot be started or takes longer than 30 seconds.
//
// Postfix: postdrop(1) writes the message into the maildrop queue,
// pickup(8) hands it to cleanup(8), and cleanup runs the non_smtpd_milters
// (PostfixOptions.NonSMTPDMilters) with a simulated connect and HELO,
// then queues it as mail received over SMTP is queued. sendmail exits 0
// once the message is in the maildrop queue, whatever the milter later
// decides.
//
// Sendmail: the mail submission program (etc/submit.cf, as Debian's
// submit.cf with FEATURE(msp)) queues the message in spool/clientmqueue
// and, in delivery mode "interactive", relays it at once over SMTP to the
// daemon on 127.0.0.1, which runs the milter as for any SMTP client; the
// command returns after that SMTP transaction. It runs in the daemon's
// UTS and mount namespaces (nsenter), so it has the instance's fully
// qualified host name (it would sleep 60 seconds on an unqualified one)
// and logs into the instance's maillog.
func (m *MTA) SubmitLocal(t testing.TB, from string, rcpts []string, raw []byte, args ...string) (string, error) {
	t.Helper()
	var argv []string
	var env []string
	switch m.name {
	case "postfix":
		sendmail, err := m.postconf("sendmail_path")
		if err != nil {
			t.Fatalf("%v: %v", m, err)
		}
		argv = []string{sendmail, "-C", m.configDir()}
		// MAIL_CONFIG as well as -C: postdrop, which sendmail runs,
		// reads it.
		env = []string{"MAIL_CONFIG=" + m.configDir()}
	case "sendmail":
		pid, err := os.ReadFile(filepath.Join(m.dir, "run", "sendmail.pid"))
		if err != nil {
			t.Fatalf("%v: %v", m, err)
		}
		first, _, _ := strings.Cut(string(pid), "\n")
		argv = []string{"nsenter", "-t", strings.TrimSpace(first), "-u", "-m", "--",
			m.sendmail, "-C", filepath.Join(m.configDir(), "submit.cf")}
	default:
		t.Fatalf("%v: SubmitLocal is not implemented for %s", m, m.name)
	}
	argv = append(argv, "-i", "-f", from)
	argv = append(append(append(argv, args...), "--"), rcpts...)
	ctx, cancel := context.WithTimeout(context.Background(), submitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = bytes.NewReader(raw)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%v: %s: timed out after %v\n%s", m, strings.Join(argv, " "), submitTimeout, out)
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("%v: %s: %v", m, argv[0], err)
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
// or a bounce, sorted; quarantined (held) messages are not listed (see
// Held). Postfix lists them as "subdir/queue-id" (e.g.
// "maildrop/3F2A1C0042", "deferred/3F2A1C0042"); a message submitted with
// SubmitLocal stays in maildrop/ under the name it got there until
// pickup(8) has queued it. Sendmail lists them by control file, "qfID" in
// the daemon's queue and "clientmqueue/qfID" for a message that
// SubmitLocal's submission program could not relay to the daemon.
func (m *MTA) Queued(t testing.TB) []string {
	t.Helper()
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
