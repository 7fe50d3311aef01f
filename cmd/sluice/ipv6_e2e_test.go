package main

import (
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/milter/mtatest"
)

// The listener on an IPv6 address, as the start-up line writes it, is
// pasted into Postfix's smtpd_milters, as docs/postfix.md says to: Postfix
// must reach sluice there. Postfix (3.7) knows no inet6: kind; it logged
// "invalid transport name: inet6 in Milter service" and applied
// milter_default_action to every message. The listener is written as
// Postfix writes it too, inet:[::1]:PORT.
func TestPostfixReachesIPv6ListenerAsLogged(t *testing.T) {
	mtatest.Require(t)
	for _, listen := range []string{"inet:[::1]:0", "inet6:[::1]:0"} {
		t.Run(listen, func(t *testing.T) {
			td := startDaemon(t, e2eConfig("address: "+listen))
			logged := addrStrings(td.info.Milter)[0]
			if !strings.Contains(td.log.String(), logged) {
				t.Fatalf("start-up line does not show %s:\n%s", logged, td.log)
			}
			// Milter is left empty: the harness checks it against its
			// own idea of the syntax; the line goes to main.cf as is.
			// The harness's Postfix speaks IPv4 only, where Debian's
			// speaks both (inet_protocols = all).
			mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{DefaultAction: "tempfail",
				ExtraConfig: []string{"inet_protocols = all", "smtpd_milters = " + logged}})
			c := mtatest.DialSMTP(t, mta.Addr())
			if r := c.Cmd("EHLO client.example"); r.Code != 250 {
				t.Fatalf("EHLO with smtpd_milters = %s: %v\n%s", logged, r, mta.Log())
			}
			r := c.Send("alice@example.org", []string{"reject@lab.example"},
				[]byte("From: alice@example.org\r\nTo: reject@lab.example\r\nSubject: v6\r\n\r\nHello.\r\n"))
			if r.Code != 550 || !strings.Contains(r.Text, "Rejected by test filter") {
				t.Errorf("smtpd_milters = %s: reply %v, want sluice's 550\n%s", logged, r, mta.Log())
			}
			c.Quit()
		})
	}
}
