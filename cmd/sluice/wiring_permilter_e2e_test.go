package main

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/milter/mtatest"
)

// TestDocPostfixPerMilterSettings: the smtpd_milters line with per-milter
// settings in docs/postfix.md, copied into main.cf as printed, lets mail
// through sluice, and its default_action (tempfail) overrides the global
// milter_default_action (accept here) once sluice is gone. Postfix splits
// the list on blanks as on commas, so "name = value" with blanks around
// the "=" is no setting to it: smtpd exits at every connection with
// "malformed option: missing '=' after attribute name", and clients get
// no greeting at all.
func TestDocPostfixPerMilterSettings(t *testing.T) {
	mtatest.Require(t, "postfix", "swaks")
	const docAddr = "inet:127.0.0.1:7357"
	var line string
	inFence := false
	for _, l := range strings.Split(readDoc(t, "docs/postfix.md"), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			inFence = !inFence
			continue
		}
		if inFence && strings.HasPrefix(l, "smtpd_milters = { "+docAddr+",") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("docs/postfix.md shows no line smtpd_milters = { %s, ... }; update this test", docAddr)
	}
	if !strings.Contains(line, "default_action") {
		t.Fatalf("docs/postfix.md: %q sets no default_action; update this test", line)
	}

	td := startDaemon(t, e2eConfig("address: inet:127.0.0.1:0"))
	line = strings.Replace(line, docAddr, "inet:"+td.info.Milter[0].String(), 1)
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{DefaultAction: "accept", ExtraConfig: []string{line}})

	msg := []byte("From: alice@example.org\r\nTo: ok@lab.example\r\nSubject: per-milter\r\n\r\nHello.\r\n")
	c := mtatest.DialSMTP(t, mta.Addr())
	c.Cmd("EHLO client.example")
	if r := c.Send("alice@example.org", []string{"ok@lab.example"}, msg); r.Code != 250 {
		t.Fatalf("%s: %v\n%s", line, r, mta.Log())
	}
	c.Quit()
	d := mta.WaitDelivered(t, 1, 20*time.Second)
	if got, want := d[0].Get("X-Sluice-Test"), "client=127.0.0.1 helo=client.example"; got != want {
		t.Errorf("delivered with X-Sluice-Test %q, want %q: the message did not pass sluice", got, want)
	}

	if err := td.stop(); err != nil {
		t.Fatalf("daemon exit: %v", err)
	}
	c = mtatest.DialSMTP(t, mta.Addr())
	c.Cmd("EHLO client.example")
	if r := c.Send("alice@example.org", []string{"late@lab.example"}, msg); r.Code < 400 || r.Code > 499 {
		t.Errorf("with sluice stopped, %s, and milter_default_action = accept: %v, want the per-milter tempfail (4xx)", line, r)
	}
	c.Quit()
}
