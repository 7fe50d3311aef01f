package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/milter/mtatest"
)

// TestDocPostfixDefaultActionReplies: what docs/postfix.md says a client
// sees when Postfix cannot reach sluice at connect, for the default
// actions that refuse mail, is what a real Postfix sends: the greeting,
// the answer to EHLO, and the reply to MAIL FROM quoted in the table.
func TestDocPostfixDefaultActionReplies(t *testing.T) {
	mtatest.Require(t, "postfix", "swaks")
	var rows map[string]string
	for _, tb := range mdTables(readDoc(t, "docs/postfix.md")) {
		value, effect := tb.column("Value"), tb.column("Effect on the SMTP session")
		if value < 0 || effect < 0 {
			continue
		}
		rows = map[string]string{}
		for _, r := range tb.rows {
			name, _, _ := strings.Cut(r.cell(value), " ")
			rows[strings.Trim(name, "`")] = r.cell(effect)
		}
	}
	reply := regexp.MustCompile("^[2-5][0-9][0-9] ")
	for _, action := range []string{"tempfail", "reject"} {
		t.Run(action, func(t *testing.T) {
			effect, ok := rows[action]
			if !ok {
				t.Fatalf("docs/postfix.md has no row for milter_default_action = %s", action)
			}
			greeting, mail := "", ""
			for _, s := range codeSpans(effect) {
				switch {
				case !reply.MatchString(s):
				case strings.Contains(s, "ESMTP"):
					greeting = s
				default:
					mail = s
				}
			}
			if mail == "" {
				t.Fatalf("docs/postfix.md, %s: the row quotes no reply to MAIL FROM: %s", action, effect)
			}
			mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: mtatest.DeadMilter(t, "unix"), DefaultAction: action})
			c := mtatest.DialSMTP(t, mta.Addr())
			if greeting == "" {
				if c.Greeting.Code != 220 {
					t.Errorf("greeting %v, want 220 as the row says nothing else", c.Greeting)
				}
			} else if want := strings.Replace(greeting, "HOSTNAME", mta.Hostname(), 1); c.Greeting.String() != want {
				t.Errorf("greeting %q, docs/postfix.md says %q", c.Greeting, want)
			}
			if r := c.Cmd("EHLO client.example"); r.Code != 250 {
				t.Errorf("EHLO: %v, want 250", r)
			}
			if r := c.Cmd("MAIL FROM:<alice@example.org>"); r.String() != mail {
				t.Errorf("MAIL FROM: %q, docs/postfix.md says %q", r, mail)
			}
			c.Quit()
		})
	}
}
