package milter_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/headerfix"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// A repair of a long field reaches the mailbox whole: a field of about
// 59,000 bytes, folded into lines of 900, split off behind a bare CR
// goes to the MTA as one header edit of that size. Through Postfix with
// its defaults (which hands a milter at most about 60,000 bytes of a
// field, and turns the CR into a space after a Date), and through
// Sendmail accepting bare CRs, its header limit raised to let such a
// field in (it writes no header line longer than 2,303 bytes, folded or
// not, hence the folding).
func TestHeaderfixRepairsALongField(t *testing.T) {
	lines := make([]string, 65)
	for i := range lines {
		lines[i] = strings.Repeat(string(rune('a'+i%26)), 900)
	}
	big := strings.Join(lines, "\n ")
	for _, name := range []string{"postfix", "sendmail"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			hf, err := headerfix.New(filters.Env{Name: "headerfix"}, headerfix.Config{})
			if err != nil {
				t.Fatal(err)
			}
			spec := serveUnix(t, filters.NewPipeline([]filters.Step{{Filter: hf}}, nil))
			var mta *mtatest.MTA
			broken, want := "Date", "Mon, 23 Nov 2026 12:00:00 +0000"
			if name == "postfix" {
				mta = mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: spec})
			} else {
				mta = mtatest.StartSendmail(t, mtatest.SendmailOptions{Milter: spec, ExtraConfig: []string{
					"define(`confMAX_HEADERS_LENGTH', `131072')dnl",
					"LOCAL_RULESETS\nSsrv_features\nR$*\t$# U G",
				}})
				broken, want = "Subject", "long"
			}
			raw := "From: alice@lab.example\r\n" + broken + ": " + want + "\rX-Big: " + strings.ReplaceAll(big, "\n", "\r\n") + "\r\n" +
				"Message-ID: <long@lab.example>\r\n\r\nbody\r\n"
			if broken == "Subject" {
				raw = "Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n" + raw
			}
			c := mtatest.DialSMTP(t, mta.Addr())
			c.Cmd("EHLO client.example")
			if r := c.Send("alice@lab.example", []string{"bob@lab.example"}, []byte(raw)); r.Code != 250 {
				t.Fatalf("DATA: %v", r)
			}
			c.Quit()
			d := mta.WaitDelivered(t, 1, 30*time.Second)[0]
			if got := d.Values(broken); len(got) != 1 || got[0] != want {
				t.Errorf("%s delivered as %.80q, want %q", broken, got, want)
			}
			if got := d.Values("X-Big"); len(got) != 1 || got[0] != big {
				t.Errorf("X-Big delivered %d times, %d bytes, want once, whole", len(got), len(strings.Join(got, "")))
			}
			if got := d.Get("X-Sluice-Repaired"); got != "split "+broken+"/X-Big" {
				t.Errorf("X-Sluice-Repaired: %q", got)
			}
		})
	}
}
