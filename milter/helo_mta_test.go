package milter_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/milter"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// A client says EHLO again in the middle of a transaction, which ends the
// transaction (RFC 5321 4.1.4). Both MTAs abandon the message, in
// different orders (observed with Postfix 3.7 and Sendmail 8.17):
// Sendmail aborts it and then reports the new HELO, Postfix reports the
// new HELO and then aborts it. Either way the abandoned message is logged
// with the HELO it was sent under, and the next message with the new one.
func TestHeloInMessageThroughBothMTAs(t *testing.T) {
	for _, name := range []string{"postfix", "sendmail"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sums := &summaries{}
			p := filters.NewPipeline([]filters.Step{{Filter: heloTagger{}, Timeout: 5 * time.Second}}, nil)
			srv := milter.NewServer(milter.Config{Pipeline: p}, nil, sums)
			ln, spec := mtatest.MilterListener(t, "unix")
			go srv.Serve(ln)
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				srv.Shutdown(ctx)
			})
			mta := startMTA(t, name, spec)

			c := mtatest.DialSMTP(t, mta.Addr())
			for _, cmd := range []string{"EHLO first.example", "MAIL FROM:<alice@lab.example>", "RCPT TO:<bob@lab.example>", "EHLO second.example"} {
				if r := c.Cmd(cmd); r.Code != 250 {
					t.Fatalf("%s: %v", cmd, r)
				}
			}
			if r := c.Send("carol@lab.example", []string{"bob@lab.example"}, []byte("Subject: x\r\n\r\nx\r\n")); r.Code != 250 {
				t.Fatalf("second message: %v", r)
			}
			c.Quit()

			var got []milter.Summary
			for range 500 {
				sums.mu.Lock()
				got = append(got[:0], sums.sums...)
				sums.mu.Unlock()
				if len(got) >= 2 {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if len(got) != 2 {
				t.Fatalf("%d message summaries, want 2", len(got))
			}
			if s := got[0]; !s.Aborted || s.From != "alice@lab.example" || s.Helo != "first.example" {
				t.Errorf("abandoned message: aborted=%v from %q helo %q, want aborted, alice@lab.example, first.example", s.Aborted, s.From, s.Helo)
			}
			if s := got[1]; s.Aborted || s.From != "carol@lab.example" || s.Helo != "second.example" {
				t.Errorf("next message: aborted=%v from %q helo %q, want delivered, carol@lab.example, second.example", s.Aborted, s.From, s.Helo)
			}
		})
	}
}
