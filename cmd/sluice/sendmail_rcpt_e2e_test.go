package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/milter/mtatest"
)

// TestRejectedRcptsSendmail: recipients Sendmail itself refuses never
// reach sluice, whether Sendmail refuses them while parsing the address
// (a rule in ruleset 0, before the milter's turn in the SMTP code), after
// looking the user up (User unknown, with the local mailer's F=w) or for
// one too many (confMAX_RCPTS_PER_MESSAGE).
// Sendmail 8.17 asks the milter about a recipient only after its own
// checks, and sends refused ones only to a milter that negotiated
// SMFIP_RCPT_REJ, which sluice does not. So the per-recipient archive,
// the log line and the filters at end of message name only the
// recipients that get the message; the archive names a recipient the
// client gave twice once.
func TestRejectedRcptsSendmail(t *testing.T) {
	mtatest.Require(t)
	dir := t.TempDir()
	td := startDaemonWith(t, fmt.Sprintf(`listen:
  - address: inet:127.0.0.1:0
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
state_dir: %s
filters:
  - type: script
  - type: archive
    options:
      targets:
        default: archive/{rcpt}.mbox
`, dir))
	// F=w: the local mailer's users must exist (root and nobody do), as
	// in a stock Sendmail; the harness turns it off by default.
	mta := mtatest.StartSendmail(t, mtatest.SendmailOptions{Milter: "inet:" + td.info.Milter[0].String(),
		ExtraConfig: []string{"MODIFY_MAILER_FLAGS(`LOCAL', `+w')dnl", "define(`confMAX_RCPTS_PER_MESSAGE', `4')dnl",
			"define(`confMAX_MESSAGE_SIZE', `2000')dnl"}})

	c := mtatest.DialSMTP(t, mta.Addr())
	if r := c.Cmd("EHLO client.example"); r.Code != 250 {
		t.Fatalf("EHLO: %v", r)
	}
	if r := c.Cmd("MAIL FROM:<alice@example.org>"); r.Code != 250 {
		t.Fatalf("MAIL: %v", r)
	}
	for _, st := range []struct {
		rcpt  string
		reply string
	}{
		{"root@lab.example", "250 2.1.5 <root@lab.example>... Recipient ok"},
		{"nosuchuser@lab.example", "550 5.1.1 <nosuchuser@lab.example>... User unknown"},
		{"x@remote.example", "550 5.7.1 <x@remote.example>... outbound mail disabled in this test instance"},
		{"nobody@lab.example", "250 2.1.5 <nobody@lab.example>... Recipient ok"},
		// The same mailbox again: Sendmail accepts it, shows it to
		// sluice, and delivers one copy.
		{"root@lab.example", "250 2.1.5 <root@lab.example>... Recipient ok"},
		{"root@LAB.example", "250 2.1.5 <root@lab.example>... Recipient ok"},
		// One more than confMAX_RCPTS_PER_MESSAGE allows.
		{"daemon@lab.example", "452 4.5.3 Too many recipients"},
	} {
		if r := c.Cmd("RCPT TO:<" + st.rcpt + ">"); r.String() != st.reply {
			t.Errorf("RCPT TO:<%s>: %q, want %q", st.rcpt, r.String(), st.reply)
		}
	}
	r := c.Data([]byte("From: alice@example.org\r\nSubject: multi\r\n\r\nHi.\r\n"))
	if r.Code != 250 {
		t.Fatalf("DATA: %v", r)
	}
	id := r.QueueID()

	// A message over confMAX_MESSAGE_SIZE: Sendmail refuses it at the end
	// of the data and aborts it with sluice before the end of message,
	// so it is neither archived nor logged as accepted.
	c.Cmd("MAIL FROM:<alice@example.org>")
	c.Cmd("RCPT TO:<root@lab.example>")
	if r := c.Data([]byte("Subject: big\r\n\r\n" + strings.Repeat("0123456789012345678901234567890123456789\r\n", 100))); r.String() != "552 5.2.3 Message exceeds maximum fixed size (2000)" {
		t.Errorf("DATA over the size limit: %q", r.String())
	}

	// A message whose every recipient Sendmail refused: there is no DATA,
	// and sluice, which saw none of them, archives nothing.
	c.Cmd("RSET")
	c.Cmd("MAIL FROM:<alice@example.org>")
	if r := c.Cmd("RCPT TO:<nosuchuser@lab.example>"); r.Code != 550 {
		t.Errorf("RCPT TO:<nosuchuser@lab.example>: %v", r)
	}
	if r := c.Cmd("DATA"); r.Code != 503 {
		t.Errorf("DATA without a recipient: %v, want 503", r)
	}
	c.Quit()

	mta.WaitDelivered(t, 2, 20*time.Second)
	mta.WaitIdle(t, 20*time.Second)
	var got []string
	for _, d := range mta.Delivered(t) {
		got = append(got, d.Recipient())
	}
	slices.Sort(got)
	if want := []string{"nobody@lab.example", "root@lab.example"}; !slices.Equal(got, want) {
		t.Errorf("delivered to %v, want %v", got, want)
	}

	// The message line names the recipients as the client gave them,
	// the archive (below) each mailbox once. The second message was
	// aborted. The third message,
	// with no recipient, ends with the client's QUIT, which Sendmail
	// passes on to sluice as a QUIT without an abort: abandoned by the
	// MTA, not a lost connection.
	// The last line is written when sluice reads that QUIT, which may
	// come after Sendmail is idle.
	var lines []string
	messageLines := func() bool {
		lines = lines[:0]
		for _, line := range strings.Split(td.log.String(), "\n") {
			if strings.Contains(line, "msg=message ") {
				lines = append(lines, line)
			}
		}
		return len(lines) >= 3
	}
	waitFor(t, messageLines)
	if len(lines) != 3 || !strings.Contains(lines[0], " queue_id="+id+" ") ||
		!strings.Contains(lines[0], " rcpts=root@lab.example,nobody@lab.example,root@lab.example,root@LAB.example verdict=accept ") ||
		!strings.Contains(lines[1], ` rcpts=root@lab.example verdict=aborted reason="aborted by MTA" `) ||
		!strings.Contains(lines[2], ` rcpts="" verdict=aborted reason="aborted by MTA" `) {
		t.Errorf("message lines %q, want one for %s to root and nobody, accepted, one aborted to root and one aborted without recipients", lines, id)
	}

	// One archive file per recipient that got the message, each with one
	// copy naming that recipient.
	files, err := filepath.Glob(filepath.Join(dir, "archive", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range files {
		files[i] = filepath.Base(files[i])
	}
	if want := []string{"nobody@lab.example.mbox", "root@lab.example.mbox"}; !slices.Equal(files, want) {
		t.Fatalf("archive files %v, want %v", files, want)
	}
	for _, rcpt := range []string{"root@lab.example", "nobody@lab.example"} {
		b, err := os.ReadFile(filepath.Join(dir, "archive", rcpt+".mbox"))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if n := strings.Count(s, "\nX-Sluice-Envelope-To: "); n != 1 || !strings.Contains(s, "\nX-Sluice-Envelope-To: "+rcpt+"\n") ||
			strings.Count(s, "From alice@example.org ") != 1 || !strings.Contains(s, "\nX-Sluice-Queue-ID: "+id+"\n") {
			t.Errorf("%s.mbox:\n%s\nwant one copy of %s for %s", rcpt, s, id, rcpt)
		}
	}
}
