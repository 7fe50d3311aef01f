package milter_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/filtertest"
	"github.com/sluice-mail/sluice/milter"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// The MTA's milter timeout (Postfix milter_content_timeout, Sendmail's
// R: of T=) runs out while a filter works at end of message: the MTA
// closes the milter connection and applies its default action (here
// accept, so the message is queued), and sluice's reject never reaches
// it. The warning names the message by the queue id the MTA gave it,
// over a unix socket, where sluice's write fails, and over TCP, where the
// write succeeds and sluice sees that the MTA closed (observed with
// Postfix 3.7 and Sendmail 8.17: both close without a QUIT). A message
// the filters let through with a header edit is no different: over a
// unix socket it is the edit, written before the reply, whose write
// fails.
func TestMTATimeoutReplyNotDelivered(t *testing.T) {
	reject := filters.Verdict{Action: filters.Reject}
	tag := filters.Verdict{Edits: []filters.HeaderEdit{{Kind: filters.AddHeader, Name: "X-Tag", Value: "checked"}}}
	for _, tc := range []struct {
		mta, network string
		verdict      filters.Verdict
		want         string
	}{
		{"postfix", "unix", reject, "reject"}, {"sendmail", "unix", reject, "reject"},
		{"postfix", "tcp", reject, "reject"}, {"sendmail", "tcp", reject, "reject"},
		{"postfix", "unix", tag, "accept"}, {"sendmail", "unix", tag, "accept"},
	} {
		t.Run(tc.mta+"/"+tc.network+"/"+tc.want, func(t *testing.T) {
			slow := &filtertest.Fixed{FilterName: "slow", At: filters.StagesOf(filters.StageEOM), Delay: 4 * time.Second,
				Verdict: tc.verdict}
			p := filters.NewPipeline([]filters.Step{{Filter: slow, Timeout: 10 * time.Second}}, nil)
			logs := &syncLog{}
			srv := milter.NewServer(milter.Config{Pipeline: p}, slog.New(slog.NewTextHandler(logs, nil)), nil)
			ln, spec := mtatest.MilterListener(t, tc.network)
			serveOn(t, srv, ln)
			var mta *mtatest.MTA
			if tc.mta == "postfix" {
				mta = mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: spec, DefaultAction: "accept",
					ExtraConfig: []string{"milter_content_timeout = 2s"}})
			} else {
				mta = mtatest.StartSendmail(t, mtatest.SendmailOptions{Milter: spec, DefaultAction: "accept",
					MilterTimeouts: "C:5s;S:10s;R:2s;E:30s"})
			}
			c := mtatest.DialSMTP(t, mta.Addr())
			c.Cmd("EHLO client.example")
			r := c.Send("a@example.org", []string{"ok@lab.example"}, []byte("From: a@example.org\r\nSubject: slow\r\n\r\nbody\r\n"))
			c.Quit()
			qid := r.QueueID()
			if qid == "" {
				t.Fatalf("reply %v, want the message queued by the MTA's default action (accept)", r)
			}
			want := "queue_id=" + qid + " verdict=" + tc.want
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				for _, l := range strings.Split(logs.String(), "\n") {
					if strings.Contains(l, "level=WARN") && strings.Contains(l, "reply not delivered") && strings.Contains(l, want) {
						return
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Errorf("no warning with %s that the reply did not reach the MTA; log:\n%s", want, logs)
		})
	}
}
