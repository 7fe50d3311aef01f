package milter_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/filtertest"
	"github.com/sluice-mail/sluice/milter"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// sluice stops (a restart) while Postfix waits for its verdict on a new
// client, which a blocklist lookup at connect finds listed. The session
// is between messages and closes, but only after its reply: Postfix then
// refuses the client's mail with sluice's reply. Cut off before the
// reply, Postfix applied milter_default_action to the whole SMTP
// session, and with accept the listed client's mail was delivered.
func TestShutdownLetsPostfixHaveTheConnectVerdict(t *testing.T) {
	listed := &filtertest.Fixed{FilterName: "dnsbl", At: filters.StagesOf(filters.StageConnect), Delay: time.Second,
		Verdict: filters.Verdict{Action: filters.Reject, Reply: &filters.Reply{Code: 554, Enhanced: "5.7.1", Text: "Client listed"}}}
	srv := milter.NewServer(milter.Config{Pipeline: pipeline(listed)}, nil, nil)
	ln, spec := mtatest.MilterListener(t, "unix")
	go srv.Serve(ln)
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: spec, DefaultAction: "accept"})

	stopped := make(chan error, 1)
	go func() {
		for listed.Calls() == 0 {
			time.Sleep(time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- srv.Shutdown(ctx)
	}()
	c := mtatest.DialSMTP(t, mta.Addr()) // Postfix greets once sluice answered the connect
	if err := <-stopped; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	c.Cmd("EHLO client.example")
	r := c.Send("alice@example.org", []string{"bob@lab.example"}, []byte("Subject: listed\r\n\r\nbody\r\n"))
	if r.Code != 554 || !strings.Contains(r.Text, "5.7.1 Client listed") {
		t.Errorf("greeting %v; mail of the listed client: %v, want sluice's 554 5.7.1 Client listed", c.Greeting, r)
	}
	c.Quit()
}
