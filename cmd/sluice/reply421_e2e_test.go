package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/milter/mtatest"
)

// A filter's reply with code 421 is sent as the filter's tempfail, and
// both MTAs then close the client's connection (RFC 5321 3.8: 421 is the
// reply of a server that closes the channel): Postfix and Sendmail each
// send the 421 and hang up, so nothing more is taken in that session. An
// administrator may want that for a client not worth talking to, but a
// message pipelined after the refused one is then not taken either (its
// client retries it); docs/filters.md says so. Checked at MAIL FROM and
// at the end of a message.
func TestReply421ClosesTheClientsConnection(t *testing.T) {
	for _, mtaName := range []string{"postfix", "sendmail"} {
		t.Run(mtaName, func(t *testing.T) {
			mtatest.Require(t)
			dir := t.TempDir()
			state := filepath.Join(dir, "state")
			os.Mkdir(state, 0o755)
			rules := filepath.Join(dir, "senders")
			sendersWriteFile(t, rules, "gone.example\tERROR:\"421 4.7.0 Closing, go away\"\n"+
				"HeaderFrom:gone-header.example\tERROR:\"421 4.7.0 Closing after the header\"\n")
			sock := filepath.Join(socketDir(t), "sluice.sock")
			startDaemonWith(t, sendersConfig(sock, state, rules, ""))
			var mta *mtatest.MTA
			if mtaName == "postfix" {
				mta = mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + sock, DefaultAction: "tempfail"})
			} else {
				mta = mtatest.StartSendmail(t, mtatest.SendmailOptions{Milter: "unix:" + sock, DefaultAction: "tempfail"})
			}
			closed := func(c *mtatest.Client, after string) {
				t.Helper()
				// Whatever the server wrote after its 421, and then the
				// end of the connection: a bounded number of reads.
				for range 3 {
					r, err := c.Exchange("NOOP")
					if err != nil {
						return
					}
					t.Logf("after %s: NOOP answered %v", after, r)
				}
				t.Errorf("the connection is still open after %s", after)
			}

			c := mtatest.DialSMTP(t, mta.Addr())
			if r := c.Cmd("EHLO client.example"); r.Code != 250 {
				t.Fatalf("EHLO: %v", r)
			}
			if r := c.Cmd("MAIL FROM:<bob@gone.example>"); r.Code != 421 || !strings.Contains(r.Text, "Closing, go away") {
				t.Errorf("MAIL FROM:<bob@gone.example>: %v, want 421 with the rule's text", r)
			}
			closed(c, "a 421 at MAIL FROM")
			c.Close()

			c = mtatest.DialSMTP(t, mta.Addr())
			if r := c.Cmd("EHLO client.example"); r.Code != 250 {
				t.Fatalf("EHLO: %v", r)
			}
			r := c.Send("alice@client.example", []string{"rcpt@lab.example"}, sendersMessage("x@gone-header.example", "rcpt@lab.example", "gone"))
			if r.Code != 421 || !strings.Contains(r.Text, "Closing after the header") {
				t.Errorf("a header From: at gone-header.example: %v, want 421 with the rule's text", r)
			}
			closed(c, "a 421 at the end of a message")
			c.Close()
		})
	}
}
