package milter_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/filtertest"
	"github.com/sluice-mail/sluice/milter"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// BenchmarkMTASteps times the envelope steps of an SMTP session through a
// real Postfix and Sendmail, with sluice over a unix socket and over TCP
// on loopback: one operation is MAIL FROM, RCPT TO and RSET, each of the
// first two a milter round trip after a macro packet. Over TCP, Sendmail's
// macro packet and the command after it are two writes, and without
// quickAck every step waited for sluice's delayed ACK (see quickAck):
//
//	go test -run '^$' -bench MTASteps -benchtime 50x ./milter
func BenchmarkMTASteps(b *testing.B) {
	for _, mta := range []string{"sendmail", "postfix"} {
		for _, network := range []string{"unix", "tcp"} {
			b.Run(mta+"/"+network, func(b *testing.B) {
				tag := &filtertest.Fixed{FilterName: "tag", At: filters.StagesOf(filters.StageHelo, filters.StageMailFrom, filters.StageRcptTo)}
				p := filters.NewPipeline([]filters.Step{{Filter: tag, Timeout: 5 * time.Second}}, nil)
				srv := milter.NewServer(milter.Config{Pipeline: p}, nil, nil)
				ln, spec := mtatest.MilterListener(b, network)
				go srv.Serve(ln)
				b.Cleanup(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					srv.Shutdown(ctx)
				})
				var m *mtatest.MTA
				if mta == "postfix" {
					m = mtatest.StartPostfix(b, mtatest.PostfixOptions{Milter: spec})
				} else {
					m = mtatest.StartSendmail(b, mtatest.SendmailOptions{Milter: spec})
				}
				c := mtatest.DialSMTP(b, m.Addr())
				defer c.Quit()
				if r := c.Cmd("EHLO client.example"); r.Code != 250 {
					b.Fatalf("EHLO: %v", r)
				}
				b.ResetTimer()
				for range b.N {
					if r := c.Cmd("MAIL FROM:<alice@lab.example>"); r.Code != 250 {
						b.Fatalf("MAIL FROM: %v", r)
					}
					if r := c.Cmd("RCPT TO:<bob@lab.example>"); r.Code != 250 {
						b.Fatalf("RCPT TO: %v", r)
					}
					c.Cmd("RSET")
				}
			})
		}
	}
}
