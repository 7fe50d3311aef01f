package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/milter/mtatest"
)

// End to end through real MTAs: the daemon runs in-process with the test
// filters registered; Postfix talks to it over a unix socket, Sendmail over
// TCP. The script filter decides by recipient local part (see filtertest).

func e2eConfig(listen string) string {
	return fmt.Sprintf(`listen:
  - %s
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
filters:
  - type: script
    options:
      reject_text: Rejected by test filter for 100%% sure
`, listen)
}

// socketDir returns a short directory Postfix's unprivileged smtpd can
// reach, for a unix milter socket.
func socketDir(t *testing.T) string {
	dir, err := os.MkdirTemp("/tmp", "sl-sock-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

type e2eCase struct {
	name  string
	start func(t *testing.T, milter, defaultAction string) *mtatest.MTA
	unix  bool
}

var e2eMTAs = []e2eCase{
	{"postfix", func(t *testing.T, milter, action string) *mtatest.MTA {
		return mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: milter, DefaultAction: action})
	}, true},
	{"sendmail", func(t *testing.T, milter, action string) *mtatest.MTA {
		return mtatest.StartSendmail(t, mtatest.SendmailOptions{Milter: milter, DefaultAction: action})
	}, false},
}

func TestEndToEnd(t *testing.T) {
	mtatest.Require(t)
	for _, mc := range e2eMTAs {
		t.Run(mc.name, func(t *testing.T) {
			var listen, spec string
			if mc.unix {
				sock := filepath.Join(socketDir(t), "sluice.sock")
				listen = fmt.Sprintf("address: unix:%s\n    mode: \"0666\"", sock)
				spec = "unix:" + sock
			} else {
				listen = "address: inet:127.0.0.1:0"
			}
			td := startDaemon(t, e2eConfig(listen))
			if !mc.unix {
				spec = "inet:" + td.info.Milter[0].String()
			}
			mta := mc.start(t, spec, "tempfail")

			c := mtatest.DialSMTP(t, mta.Addr())
			if r := c.Cmd("EHLO client.example"); r.Code != 250 {
				t.Fatalf("EHLO: %v", r)
			}
			msg := func(to, subject string) []byte {
				return []byte("From: alice@example.org\r\nTo: " + to + "\r\nSubject: " + subject +
					"\r\nMessage-ID: <" + subject + "@example.org>\r\n\r\nHello.\r\n")
			}
			// Five messages in one SMTP session: the two delivered ones
			// must both carry the connection's client IP and HELO.
			steps := []struct {
				rcpt     string
				code     int
				contains string
			}{
				{"ok@lab.example", 250, ""},
				{"reject@lab.example", 550, "5.7.1 Rejected by test filter for 100% sure"},
				{"tempfail@lab.example", 451, "4.7.1 Deferred by test filter"},
				{"discard@lab.example", 250, ""},
				{"ok2@lab.example", 250, ""},
			}
			for i, st := range steps {
				r := c.Send("alice@example.org", []string{st.rcpt}, msg(st.rcpt, fmt.Sprintf("m%d", i)))
				if r.Code != st.code || !strings.Contains(r.Text, st.contains) {
					t.Errorf("message to %s: reply %v, want %d containing %q", st.rcpt, r, st.code, st.contains)
				}
				c.Cmd("RSET")
			}
			c.Quit()

			ds := mta.WaitDelivered(t, 2, 20*time.Second)
			mta.WaitIdle(t, 20*time.Second)
			ds = mta.Delivered(t)
			if len(ds) != 2 {
				t.Fatalf("%d messages delivered, want 2 (discarded, rejected and deferred ones must not arrive)", len(ds))
			}
			for _, d := range ds {
				want := "client=127.0.0.1 helo=client.example"
				if got := d.Get("X-Sluice-Test"); got != want {
					t.Errorf("delivered to %s: X-Sluice-Test %q, want %q", d.Recipient(), got, want)
				}
				if !strings.HasPrefix(d.Recipient(), "ok") {
					t.Errorf("unexpected delivery to %s", d.Recipient())
				}
			}

			// The queue id reaches the end of the message: Sendmail, with
			// its own macro lists after MAIL FROM (docs/sendmail.md),
			// sends it at MAIL FROM only, and sluice keeps it.
			accepted := 0
			for _, line := range strings.Split(td.log.String(), "\n") {
				if !strings.Contains(line, "msg=message") || !strings.Contains(line, "verdict=accept") {
					continue
				}
				accepted++
				if !regexp.MustCompile(`queue_id=[0-9A-Za-z]`).MatchString(line) {
					t.Errorf("accepted message logged without its queue id: %s", line)
				}
			}
			if accepted != 2 {
				t.Errorf("%d accepted messages logged, want 2:\n%s", accepted, td.log)
			}

			metrics := td.metrics(t)
			for _, want := range []string{
				`sluice_messages_total{verdict="accept"} 2`,
				`sluice_messages_total{verdict="reject"} 1`,
				`sluice_messages_total{verdict="tempfail"} 1`,
				`sluice_messages_total{verdict="discard"} 1`,
			} {
				if !strings.Contains(metrics, want) {
					t.Errorf("metrics lack %s", want)
				}
			}
			if mc.name == "postfix" {
				// A real Prometheus scrapes the daemon after real mail flowed.
				prom := mtatest.StartPrometheus(t, td.info.Metrics.String())
				if v := prom.WaitForSeries(t, `sluice_messages_total{verdict="accept"}`, 30*time.Second); v != 2 {
					t.Errorf("Prometheus: sluice_messages_total{verdict=\"accept\"} = %v, want 2", v)
				}
			}

			// With sluice stopped the MTA applies its default action:
			// tempfail here; a second instance configured with accept
			// delivers without the milter.
			if err := td.stop(); err != nil {
				t.Fatalf("daemon exit: %v", err)
			}
			c = mtatest.DialSMTP(t, mta.Addr())
			c.Cmd("EHLO client.example")
			r := c.Send("alice@example.org", []string{"late@lab.example"}, msg("late@lab.example", "late"))
			if r.Code < 400 || r.Code > 499 {
				t.Errorf("with sluice stopped and default tempfail: %v, want 4xx", r)
			}
			c.Quit()

			acc := mc.start(t, spec, "accept")
			c = mtatest.DialSMTP(t, acc.Addr())
			c.Cmd("EHLO client.example")
			if r := c.Send("alice@example.org", []string{"open@lab.example"}, msg("open@lab.example", "open")); r.Code != 250 {
				t.Errorf("with sluice stopped and default accept: %v, want 250", r)
			}
			c.Quit()
			got := acc.WaitDelivered(t, 1, 20*time.Second)
			if got[0].Get("X-Sluice-Test") != "" {
				t.Error("a message delivered without sluice carries its header")
			}
		})
	}
}

// Quarantine through Postfix puts the message on hold.
func TestEndToEndQuarantine(t *testing.T) {
	mtatest.Require(t)
	td := startDaemon(t, e2eConfig("address: inet:127.0.0.1:0"))
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "inet:" + td.info.Milter[0].String(), DefaultAction: "tempfail"})
	c := mtatest.DialSMTP(t, mta.Addr())
	c.Cmd("EHLO client.example")
	r := c.Send("alice@example.org", []string{"quarantine@lab.example"}, []byte("Subject: hold me\r\n\r\nx\r\n"))
	if r.Code != 250 {
		t.Fatalf("quarantined message: %v", r)
	}
	c.Quit()
	deadline := time.Now().Add(10 * time.Second)
	for len(mta.Held(t)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("message not held")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if held := mta.Held(t); len(held) != 1 || held[0] != r.QueueID() {
		t.Errorf("held %v, want [%s]", held, r.QueueID())
	}
	mta.AssertNothingDelivered(t, 5*time.Second)
}
