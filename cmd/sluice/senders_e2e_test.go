package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/milter/mtatest"
)

// sendersE2ERules are the rules of the end-to-end tests: an access file as
// an administrator fighting a campaign writes it.
const sendersE2ERules = `# look-alike domains
linkedin-mail.com	ERROR:"550 Sender banned. Please use legitimate domain to send email."
linkedinmail.com	DISCARD
banned.example		REJECT
ok.banned.example	OK
phish.example		REJECT
HeaderFrom:paypa1.example	ERROR:"550 5.7.1 Forged PayPal"
Helo:dialup.example	ERROR:5.7.1:550 No dial-up clients
emalsrv.*		WATCH
`

// sendersConfig is a daemon config with one senders filter on a unix
// socket Postfix can reach.
func sendersConfig(sock, state, rules, extra string) string {
	return fmt.Sprintf(`listen:
  - address: unix:%s
    mode: "0666"
metrics:
  listen: 127.0.0.1:0
log:
  level: debug
shutdown_timeout: 5s
state_dir: %s
filters:
  - type: senders
    options:
      files:
        - %s
%s`, sock, state, rules, extra)
}

// sendersMessage is a message with the given header From:.
func sendersMessage(from, to, subject string) []byte {
	return []byte("From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + subject + "@client.example>\r\n\r\nHello.\r\n")
}

// sendersMetric returns the value of one series in the daemon's metrics,
// or -1 when it is absent.
func sendersMetric(t *testing.T, td *testDaemon, series string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(td.metrics(t))
	if m == nil {
		return -1
	}
	var v float64
	fmt.Sscan(m[1], &v)
	return v
}

const sendersWatchSeries = `sluice_sender_watch_new_domains_total{filter="senders",pattern="emalsrv.*"}`

// End to end through real Postfix: a banned envelope sender is refused at
// MAIL FROM with the file's own reply, a DISCARD sender gets 250 and
// nothing arrives, a forged header From: is refused at the end of the
// header block, an OK entry lets a sub-domain of a blocked domain through,
// a HELO rule refuses, and WATCH matches arrive and are counted once per
// new domain, also across a restart.
func TestSendersEndToEndPostfix(t *testing.T) {
	mtatest.Require(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o755)
	rules := filepath.Join(dir, "senders")
	sendersWriteFile(t, rules, sendersE2ERules)
	sock := filepath.Join(socketDir(t), "sluice.sock")
	cfg := sendersConfig(sock, state, rules, "")
	td := startDaemonWith(t, cfg)
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + sock, DefaultAction: "tempfail"})
	if got := sendersMetric(t, td, sendersWatchSeries); got != 0 {
		t.Errorf("before any mail the WATCH counter is %v, want 0 (it must exist for alerts)", got)
	}

	c := mtatest.DialSMTP(t, mta.Addr())
	if r := c.Cmd("EHLO client.example"); r.Code != 250 {
		t.Fatalf("EHLO: %v", r)
	}
	mailFrom := func(from string, code int, text string) {
		t.Helper()
		r := c.Cmd("MAIL FROM:<" + from + ">")
		if r.Code != code || !strings.Contains(r.Text, text) {
			t.Errorf("MAIL FROM:<%s>: %v, want %d with %q", from, r, code, text)
		}
		c.Cmd("RSET")
	}
	// Refused at MAIL FROM, before any recipient or data, with the
	// file's text; a BATV-tagged and an upper-case form too.
	mailFrom("bob@linkedin-mail.com", 550, "Sender banned. Please use legitimate domain to send email.")
	mailFrom("prvs=1234abcdef=bob@LinkedIn-Mail.COM.", 550, "Sender banned. Please use legitimate domain to send email.")
	mailFrom("x@banned.example", 550, "5.7.1 Access denied")

	send := func(from, header, rcpt, subject string) mtatest.Reply {
		t.Helper()
		r := c.Send(from, []string{rcpt}, sendersMessage(header, rcpt, subject))
		c.Cmd("RSET")
		return r
	}
	// DISCARD: the client is told all is well.
	if r := send("news@linkedinmail.com", "news@linkedinmail.com", "discard@lab.example", "discard"); r.Code != 250 {
		t.Errorf("discarded sender: %v, want 250", r)
	}
	// The header From: is checked at the end of the header block.
	if r := send("alice@client.example", "Support <help@phish.example>", "header@lab.example", "header"); r.Code != 550 || !strings.Contains(r.Text, "5.7.1 Access denied") {
		t.Errorf("header From: in a blocked domain: %v, want 550 Access denied", r)
	}
	if r := send("alice@client.example", "=?utf-8?q?PayPal?= <service@paypa1.example>", "header2@lab.example", "header2"); r.Code != 550 || !strings.Contains(r.Text, "Forged PayPal") {
		t.Errorf("header From: with HeaderFrom: tag: %v", r)
	}
	// OK overrides the broader block.
	if r := send("x@mx.ok.banned.example", "x@mx.ok.banned.example", "ok@lab.example", "ok"); r.Code != 250 {
		t.Errorf("sender under an OK entry: %v, want 250", r)
	}
	// WATCH never blocks; two domains, one of them twice.
	for i, from := range []string{"a@emalsrv.ups.com", "b@EMALSRV.ups.com", "c@emalsrv.fedex.com"} {
		rcpt := fmt.Sprintf("watch%d@lab.example", i+1)
		if r := send(from, from, rcpt, fmt.Sprintf("watch%d", i+1)); r.Code != 250 {
			t.Errorf("watched sender %s: %v, want 250", from, r)
		}
	}
	c.Quit()

	// A HELO rule refuses the client's messages at MAIL FROM.
	c = mtatest.DialSMTP(t, mta.Addr())
	c.Cmd("EHLO dialup.example")
	mailFrom("x@client.example", 550, "5.7.1 No dial-up clients")
	c.Quit()

	mta.WaitDelivered(t, 4, 20*time.Second)
	mta.WaitIdle(t, 20*time.Second)
	var got []string
	for _, d := range mta.Delivered(t) {
		got = append(got, d.Recipient())
	}
	slices.Sort(got)
	if want := []string{"ok@lab.example", "watch1@lab.example", "watch2@lab.example", "watch3@lab.example"}; !slices.Equal(got, want) {
		t.Errorf("delivered to %v, want %v: refused and discarded mail must not arrive", got, want)
	}

	if got := sendersMetric(t, td, sendersWatchSeries); got != 2 {
		t.Errorf("%s = %v, want 2 (emalsrv.ups.com and emalsrv.fedex.com)", sendersWatchSeries, got)
	}
	log := td.log.String()
	for _, d := range []string{"emalsrv.ups.com", "emalsrv.fedex.com"} {
		if n := strings.Count(log, "new sender domain matching emalsrv.*: "+d); n != 1 {
			t.Errorf("%d log lines for the new domain %s, want 1", n, d)
		}
	}
	for series, want := range map[string]float64{
		`sluice_filter_decisions_total{filter="senders",stage="mail",verdict="reject"}`:    4,
		`sluice_filter_decisions_total{filter="senders",stage="mail",verdict="discard"}`:   1,
		`sluice_filter_decisions_total{filter="senders",stage="headers",verdict="reject"}`: 2,
		`sluice_messages_total{verdict="discard"}`:                                         1,
		`sluice_sender_rules{filter="senders"}`:                                            8,
	} {
		if got := sendersMetric(t, td, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	mtatest.CheckMetrics(t, []byte(td.metrics(t)))

	// Restart: the seen file keeps the domains; only a new one counts.
	if err := td.stop(); err != nil {
		t.Fatal(err)
	}
	seen, err := os.ReadFile(filepath.Join(state, "senders.seen"))
	if err != nil || !strings.Contains(string(seen), "\temalsrv.fedex.com\temalsrv.*\n") {
		t.Fatalf("seen file after stop: %v\n%s", err, seen)
	}
	td = startDaemonWith(t, cfg)
	c = mtatest.DialSMTP(t, mta.Addr())
	c.Cmd("EHLO client.example")
	for i, from := range []string{"d@emalsrv.ups.com", "e@emalsrv.dhl.com"} {
		if r := send(from, from, fmt.Sprintf("again%d@lab.example", i), fmt.Sprintf("again%d", i)); r.Code != 250 {
			t.Errorf("after restart, %s: %v", from, r)
		}
	}
	c.Quit()
	mta.WaitDelivered(t, 6, 20*time.Second)
	if got := sendersMetric(t, td, sendersWatchSeries); got != 1 {
		t.Errorf("after restart %s = %v, want 1 (emalsrv.dhl.com only)", sendersWatchSeries, got)
	}
	if strings.Contains(td.log.String(), "new sender domain matching emalsrv.*: emalsrv.ups.com") {
		t.Error("a domain seen before the restart was reported again")
	}
}

// An edited rules file applies to the next message without restart; a
// broken edit keeps the rules in force; SIGHUP reloads the files too.
func TestSendersEndToEndReload(t *testing.T) {
	mtatest.Require(t)
	dir := t.TempDir()
	rules := filepath.Join(dir, "senders")
	sendersWriteFile(t, rules, "spam.example REJECT\n")
	sock := filepath.Join(socketDir(t), "sluice.sock")
	td := startDaemonWith(t, sendersConfig(sock, dir, rules, "      reload_interval: 100ms\n"))
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + sock, DefaultAction: "tempfail"})

	c := mtatest.DialSMTP(t, mta.Addr())
	c.Cmd("EHLO client.example")
	mailFrom := func(from string) mtatest.Reply {
		t.Helper()
		r := c.Cmd("MAIL FROM:<" + from + ">")
		c.Cmd("RSET")
		return r
	}
	if r := mailFrom("x@new.example"); r.Code != 250 {
		t.Fatalf("before the edit: %v", r)
	}
	countLog := func(s string) int { return strings.Count(td.log.String(), s) }

	// Edit while the daemon runs, in the same SMTP session.
	sendersWriteFile(t, rules, "spam.example REJECT\nnew.example ERROR:\"550 5.7.1 Added while running\"\n")
	waitFor(t, func() bool { return countLog("senders: rules reloaded") == 1 })
	if r := mailFrom("x@new.example"); r.Code != 550 || !strings.Contains(r.Text, "Added while running") {
		t.Errorf("after the edit: %v, want the new rule's 550", r)
	}

	// A broken edit: logged with file and line, the rules in force stay.
	sendersWriteFile(t, rules, "spam.example REJECT\nnew.example OK\nhalf-written.example ERR\n")
	waitFor(t, func() bool { return countLog("cannot be used") == 1 })
	if want := rules + `:3: unknown action \"ERR\"`; !strings.Contains(td.log.String(), want) {
		t.Errorf("the log does not name file, line and reason (%s)", want)
	}
	if r := mailFrom("x@new.example"); r.Code != 550 || !strings.Contains(r.Text, "Added while running") {
		t.Errorf("after a broken edit: %v, want the rule in force", r)
	}
	if r := mailFrom("x@spam.example"); r.Code != 550 {
		t.Errorf("after a broken edit, spam.example: %v", r)
	}
	if got := sendersMetric(t, td, `sluice_sender_rules_last_reload_successful{filter="senders"}`); got != 0 {
		t.Errorf("last_reload_successful = %v after a broken edit", got)
	}

	// The fix applies.
	sendersWriteFile(t, rules, "spam.example REJECT\nnew.example OK\n")
	waitFor(t, func() bool { return countLog("senders: rules reloaded") == 2 })
	if r := mailFrom("x@new.example"); r.Code != 250 {
		t.Errorf("after the fix: %v", r)
	}
	for series, want := range map[string]float64{
		`sluice_sender_rules_last_reload_successful{filter="senders"}`:        1,
		`sluice_sender_rules_reloads_total{filter="senders",result="ok"}`:     2,
		`sluice_sender_rules_reloads_total{filter="senders",result="failed"}`: 1,
		`sluice_sender_rules{filter="senders"}`:                               2,
	} {
		if got := sendersMetric(t, td, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}

	c.Quit()

	// With the check turned off, SIGHUP rebuilds the filter and reads the
	// file, for new connections, as any configuration reload; a later
	// edit waits for the next signal.
	sendersWriteFile(t, rules, "spam.example REJECT\nnew.example DISCARD\nsighup.example REJECT\n")
	os.WriteFile(td.config, []byte(sendersConfig(sock, dir, rules, "      reload_interval: 0s\n")), 0o644)
	td.signal(t, syscall.SIGHUP)
	waitFor(t, func() bool { return countLog("config reloaded") == 1 })
	c = mtatest.DialSMTP(t, mta.Addr())
	c.Cmd("EHLO client.example")
	if r := mailFrom("x@sighup.example"); r.Code != 550 {
		t.Errorf("after SIGHUP: %v, want 550", r)
	}
	c.Quit()
	sendersWriteFile(t, rules, "spam.example REJECT\n")
	time.Sleep(500 * time.Millisecond)
	c = mtatest.DialSMTP(t, mta.Addr())
	c.Cmd("EHLO client.example")
	if r := mailFrom("x@sighup.example"); r.Code != 550 {
		t.Errorf("with reload_interval 0s an edit applied without SIGHUP: %v", r)
	}
	c.Quit()
	mta.AssertNothingDelivered(t, 5*time.Second)
}

// A SIGHUP that comes while a rules file is rewritten in place
// ("generate-rules > senders": the shell has emptied it, the program
// has not written yet) keeps the rules in force for the new
// connections; the finished file is read once it is complete.
func TestSendersEndToEndReloadWhileWritten(t *testing.T) {
	mtatest.Require(t)
	dir := t.TempDir()
	rules := filepath.Join(dir, "senders")
	sendersWriteFile(t, rules, "spam.example REJECT\n")
	sock := filepath.Join(socketDir(t), "sluice.sock")
	td := startDaemonWith(t, sendersConfig(sock, dir, rules, "      reload_interval: 100ms\n"))
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + sock, DefaultAction: "tempfail"})
	mailFrom := func(from string) mtatest.Reply {
		t.Helper()
		c := mtatest.DialSMTP(t, mta.Addr())
		defer c.Quit()
		c.Cmd("EHLO client.example")
		return c.Cmd("MAIL FROM:<" + from + ">")
	}
	countLog := func(s string) int { return strings.Count(td.log.String(), s) }

	out, err := os.OpenFile(rules, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	td.signal(t, syscall.SIGHUP)
	waitFor(t, func() bool { return countLog("config reloaded") == 1 })
	if r := mailFrom("x@spam.example"); r.Code != 550 {
		t.Errorf("after a SIGHUP while the file is empty: %v, want the rule in force (550)", r)
	}
	if !strings.Contains(td.log.String(), "the rules in force stay") {
		t.Errorf("the rules kept are not logged:\n%s", td.log.String())
	}

	if _, err := out.WriteString("spam.example REJECT\nnew.example REJECT\n"); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return countLog("senders: rules reloaded") == 1 })
	if r := mailFrom("x@new.example"); r.Code != 550 {
		t.Errorf("the finished file: %v, want 550", r)
	}
	mta.AssertNothingDelivered(t, 5*time.Second)
}

// sendersWriteFile replaces path by a complete new file, as editors and
// configuration managers do.
func sendersWriteFile(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// A senders filter that a reload removes takes its series with it: left
// behind, a broken rules file's last_reload_successful 0 would keep
// SluiceSenderRulesBroken firing until a restart. The filter that stays
// keeps its series.
func TestSendersReloadDropsSeriesOfRemovedFilter(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "senders")
	sendersWriteFile(t, rules, "spam.example REJECT\n")
	two := "  - type: senders\n    name: senders-b\n    options:\n      files:\n        - " + rules + "\n"
	cfg := sendersConfig(filepath.Join(socketDir(t), "sluice.sock"), dir, rules, "")
	td := startDaemonWith(t, cfg+two)
	for _, f := range []string{"senders", "senders-b"} {
		if got := sendersMetric(t, td, `sluice_sender_rules{filter="`+f+`"}`); got != 1 {
			t.Fatalf("sluice_sender_rules of %s = %v, want 1", f, got)
		}
	}
	os.WriteFile(td.config, []byte(cfg), 0o644)
	td.signal(t, syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(td.log.String(), "config reloaded") })
	// No session holds the old configuration: it is closed at once.
	waitFor(t, func() bool {
		return sendersMetric(t, td, `sluice_sender_rules_last_reload_successful{filter="senders-b"}`) == -1
	})
	for _, series := range []string{
		`sluice_sender_rules{filter="senders-b"}`,
		`sluice_sender_rules_reloads_total{filter="senders-b",result="failed"}`,
	} {
		if got := sendersMetric(t, td, series); got != -1 {
			t.Errorf("%s = %v after the filter was removed", series, got)
		}
	}
	if got := sendersMetric(t, td, `sluice_sender_rules_last_reload_successful{filter="senders"}`); got != 1 {
		t.Errorf("the filter kept: last_reload_successful = %v, want 1", got)
	}
}

// A reload that gives the senders filter other rules files leaves the
// old filter reloading its own files for the connections opened before
// the reload (they take an edit for their next message), but its
// reloads are not reported under the filter name the new configuration
// owns: an edit of a file it no longer reads must not change
// sluice_sender_rules, and a broken one must not fire
// SluiceSenderRulesBroken.
func TestSendersReloadOldFilterReportsNothing(t *testing.T) {
	dir := t.TempDir()
	oldRules := filepath.Join(dir, "old.rules")
	newRules := filepath.Join(dir, "new.rules")
	sendersWriteFile(t, oldRules, "spam.example REJECT\n")
	sendersWriteFile(t, newRules, "b1.example REJECT\nb2.example REJECT\nb3.example REJECT\n")
	sock := filepath.Join(socketDir(t), "sluice.sock")
	td := startDaemonWith(t, sendersConfig(sock, dir, oldRules, "      reload_interval: 100ms\n"))

	a := td.info.Milter[0]
	c := gomilter.NewClientWithOptions(a.Network(), a.String(), gomilter.ClientOptions{ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
	s, err := c.Session()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Conn("client.example", gomilter.FamilyInet, 25, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}

	os.WriteFile(td.config, []byte(sendersConfig(sock, dir, newRules, "      reload_interval: 100ms\n")), 0o644)
	td.signal(t, syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(td.log.String(), "config reloaded") })
	waitFor(t, func() bool { return sendersMetric(t, td, `sluice_sender_rules{filter="senders"}`) == 3 })

	// An edit of the old file: the old filter reloads it.
	sendersWriteFile(t, oldRules, "spam.example REJECT\nlate.example REJECT\n")
	reloaded := regexp.MustCompile(`rules reloaded.* rules=2 files=\S*old\.rules`)
	waitFor(t, func() bool { return reloaded.MatchString(td.log.String()) })
	want := map[string]float64{
		`sluice_sender_rules{filter="senders"}`:                               3,
		`sluice_sender_rules_last_reload_successful{filter="senders"}`:        1,
		`sluice_sender_rules_reloads_total{filter="senders",result="ok"}`:     0,
		`sluice_sender_rules_reloads_total{filter="senders",result="failed"}`: 0,
	}
	for series, v := range want {
		if got := sendersMetric(t, td, series); got != v {
			t.Errorf("after an edit of a file only the replaced filter reads: %s = %v, want %v (the new configuration's)", series, got, v)
		}
	}
	// The connection opened before the reload has the edit.
	act, err := s.Mail("someone@late.example", nil)
	if err != nil {
		t.Fatal(err)
	}
	if act.SMTPCode != 550 {
		t.Errorf("MAIL FROM late.example on the connection opened before the reload: %d %s, want 550 (the old filter's edited rules)", act.SMTPCode, act.SMTPText)
	}

	// A broken edit of the old file.
	sendersWriteFile(t, oldRules, "spam.example REJECT\nbroken.example NOPE\n")
	waitFor(t, func() bool { return strings.Contains(td.log.String(), "old.rules:2: unknown action") })
	for series, v := range want {
		if got := sendersMetric(t, td, series); got != v {
			t.Errorf("after a broken edit of a file only the replaced filter reads: %s = %v, want %v (the new configuration's)", series, got, v)
		}
	}
	if strings.Contains(td.log.String(), "a rules file changed but cannot be used") {
		t.Error("the replaced filter logged its broken file in the words of the running configuration's filter (SluiceSenderRulesBroken tells to grep for them)")
	}
}

// A From: field hidden by a bare CR at the end of the line above, as a
// mail reader still shows it, is refused when headerfix runs before
// senders (docs/senders.md, Getting started). Postfix turns the CR into a
// space and makes up a From: of the envelope sender: the senders filter
// alone never sees the forged field, which is what the docs warn of.
func TestSendersEndToEndFromHiddenByBareCR(t *testing.T) {
	mtatest.Require(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o755)
	rules := filepath.Join(dir, "senders")
	sendersWriteFile(t, rules, sendersE2ERules)
	raw := []byte("Date: " + headerfixDate + "\rFrom: Support <help@phish.example>\r\nTo: x@lab.example\r\n" +
		"Subject: hidden\r\nMessage-ID: <hidden@client.example>\r\n\r\nHello.\r\n")
	for _, tc := range []struct {
		name      string
		headerfix bool
		code      int
	}{
		{"headerfix first", true, 550},
		{"senders alone", false, 250},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := filepath.Join(socketDir(t), "sluice.sock")
			cfg := sendersConfig(sock, state, rules, "")
			if tc.headerfix {
				cfg = strings.Replace(cfg, "filters:\n", "filters:\n  - type: headerfix\n", 1)
			}
			startDaemonWith(t, cfg)
			mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + sock, DefaultAction: "tempfail"})
			c := mtatest.DialSMTP(t, mta.Addr())
			if r := c.Cmd("EHLO client.example"); r.Code != 250 {
				t.Fatalf("EHLO: %v", r)
			}
			r := c.Send("alice@client.example", []string{"x@lab.example"}, raw)
			if r.Code != tc.code || tc.code == 550 && !strings.Contains(r.Text, "5.7.1 Access denied") {
				t.Errorf("From hidden by a bare CR: %v, want %d (550: the senders filter's Access denied)", r, tc.code)
			}
			c.Quit()
		})
	}
}

// Postfix accepts MAIL FROM forms that are not RFC 5321 addresses and
// delivers the message from an address it makes of them: a comment never
// closed is dropped (<bob@x (c> is bob@x), a UUCP path is swapped
// (swap_bangpath: x!bob is bob@x), so is bob%x (the percent hack),
// quotes and backslashes in the domain are dropped, and one quoted
// string holding an address is that address, and commas and semicolons
// around the address are dropped. The senders filter compares what
// Postfix delivers from, so a banned domain written so is refused too.
func TestSendersEndToEndPostfixRewrittenSender(t *testing.T) {
	postfixSenderForms(t, "", []string{"<bob@banned.example (x>", "<bob@mx.banned.example(x>", "<banned.example!bob>", "<mx.banned.example!relay.example!bob>",
		"<banned.example!>", "<bob%banned.example>", "<bob % banned.example>", `<bob@"banned.example">`, `<bob@banned.example\ >`, `<"bob@banned.example">`,
		`<"bob"%banned.example>`, "<%banned.example>", "<bob@banned.example,>", "<bob@banned.example ;,>", "<bob%banned.example,>",
		"<x<>bob@banned.example>", "<x <> y <> <bob@banned.example>>", "<x:y<>bob@banned.example;>", `<bob\(x@banned.example>`},
		// The same forms from a domain not banned arrive, from the
		// address Postfix made of them.
		[]senderForm{
			{"<carol@client.example (x>", "<carol@client.example>"},
			{"<client.example!dave>", "<dave@client.example>"},
			{"<client.example!>", `<""@client.example>`},
			{"<erin%client.example>", "<erin@client.example>"},
			{`<frank@"client.example">`, "<frank@client.example>"},
			{`<grace@client.example\ >`, "<grace@client.example>"},
			{`<"heidi@client.example">`, "<heidi@client.example>"},
			{`<"ivan"%client.example>`, "<ivan@client.example>"},
			{"<%client.example>", `<""@client.example>`},
			// A source route to no address is the null sender.
			{"<@client.example:>", "<>"},
			// Commas and semicolons around the address are empty
			// elements of an address list to Postfix.
			{"<kate@client.example,>", "<kate@client.example>"},
			{"<;,liam@client.example>", "<liam@client.example>"},
			{"<,>", "<>"},
			// An empty "<>" before the address is part of a name.
			{"<x<>mike@client.example>", "<mike@client.example>"},
			// A backslash quotes a "(": no comment opens there.
			{`<nina\(x@client.example>`, `<"nina(x"@client.example>`},
		})
}

// Postfix unquotes MAIL FROM's one quoted string and quotes anew only
// what needs it: a dot-atom in quotes is read as if written bare, the
// percent hack and the UUCP path included, and <"bob%x"> is delivered
// from bob@x. A rule on the domain refuses it so written too.
func TestSendersEndToEndPostfixQuotedSender(t *testing.T) {
	postfixSenderForms(t, "", []string{`<"bob%banned.example">`, `<"banned.example!bob">`, `<"bob\%banned.example">`, `<x:"bob%banned.example";>`},
		[]senderForm{
			{`<"judy%client.example">`, "<judy@client.example>"},
			{`<"client.example!x.example!judy">`, "<x.example!judy@client.example>"},
			{`<"client.example!">`, `<""@client.example>`},
		})
}

// Postfix reads MAIL FROM as an RFC 822 address list, in which
// "name:address;" is a group: it delivers MAIL FROM:<x:bob@x;> from
// bob@x, the member being what follows the last colon, and an empty
// group from the null sender; without the ";" the colon is part of the
// local part ("x:bob"@x). A rule on an address, not only one on its
// domain, refuses it written as a group, or with a name before it in
// angle brackets (<"x" <bob@x>>, which Postfix delivers from bob@x).
func TestSendersEndToEndPostfixGroupSender(t *testing.T) {
	postfixSenderForms(t, "mallory@client.example\tREJECT\n", []string{"<mallory@client.example>", "<x:mallory@client.example;>", "<x: mallory@client.example ;>",
		"<x y:mallory@client.example;>", `<"x":mallory@client.example;>`, "<x:mallory@client.example;,>", "<;x:mallory@client.example;>",
		"<x:@relay.example:mallory@client.example;>", "<x:y:mallory@client.example;>", "<bob:mallory@client.example;>",
		"<x:<mallory@client.example>;>", `<"x" <mallory@client.example>>`, "<x <mallory@client.example>>", "<x:client.example!mallory;>", "<x:<bob@banned.example>;>", "<x:banned.example!bob;>"},
		[]senderForm{
			{"<x:kate@client.example;>", "<kate@client.example>"},
			{"<x:@relay.example:liam@client.example;>", "<liam@client.example>"},
			{"<x:;>", "<>"},
			{"<x:mallory@client.example:;>", "<>"},
			// No group without the ";": the colon is the local part's,
			// and "x:mallory" is another address than mallory.
			{"<x:mallory@client.example>", `<"x:mallory"@client.example>`},
			{`<x\:mallory@client.example;>`, `<"x:mallory"@client.example>`},
			{`<"x:mallory"@client.example;>`, `<"x:mallory"@client.example>`},
		})
}

// senderForm is a MAIL FROM form and the Return-Path Postfix delivers
// the message with.
type senderForm struct{ from, returnPath string }

// postfixSenderForms runs a daemon with the senders filter on
// sendersE2ERules and extraRules behind a private Postfix, and checks
// that each of refused is refused at MAIL FROM and each of delivered
// arrives with its Return-Path.
func postfixSenderForms(t *testing.T, extraRules string, refused []string, delivered []senderForm) {
	t.Helper()
	mtatest.Require(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o755)
	rules := filepath.Join(dir, "senders")
	sendersWriteFile(t, rules, sendersE2ERules+extraRules)
	sock := filepath.Join(socketDir(t), "sluice.sock")
	startDaemonWith(t, sendersConfig(sock, state, rules, ""))
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + sock, DefaultAction: "tempfail"})
	c := mtatest.DialSMTP(t, mta.Addr())
	if r := c.Cmd("EHLO client.example"); r.Code != 250 {
		t.Fatalf("EHLO: %v", r)
	}
	for _, from := range refused {
		if r := c.Cmd("MAIL FROM:" + from); r.Code != 550 || !strings.Contains(r.Text, "5.7.1 Access denied") {
			t.Errorf("MAIL FROM:%s: %v, want 550 Access denied", from, r)
		}
		c.Cmd("RSET")
	}
	want := map[string]string{}
	for i, form := range delivered {
		rcpt := fmt.Sprintf("form%d@lab.example", i)
		if r := c.Cmd("MAIL FROM:" + form.from); r.Code != 250 {
			t.Fatalf("MAIL FROM:%s: %v", form.from, r)
		}
		if r := c.Cmd("RCPT TO:<" + rcpt + ">"); r.Code != 250 {
			t.Fatalf("RCPT TO: %v", r)
		}
		if r := c.Data(sendersMessage("x@client.example", rcpt, fmt.Sprintf("form%d", i))); r.Code != 250 {
			t.Fatalf("DATA from %s: %v", form.from, r)
		}
		want[rcpt] = form.returnPath
	}
	c.Quit()
	mta.WaitDelivered(t, len(want), 20*time.Second)
	for _, d := range mta.Delivered(t) {
		if rp := d.Get("Return-Path"); rp != want[d.Recipient()] {
			t.Errorf("%s: Return-Path %q, want %q", d.Recipient(), rp, want[d.Recipient()])
		}
	}
}

// Sendmail swaps a UUCP path too (site!user is delivered from
// user@site), so it is refused by a rule on the site, and drops a final
// ";"; a comment never closed it refuses itself ("Unbalanced '('").
func TestSendersEndToEndSendmailRewrittenSender(t *testing.T) {
	mtatest.Require(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o755)
	rules := filepath.Join(dir, "senders")
	sendersWriteFile(t, rules, sendersE2ERules)
	sock := filepath.Join(socketDir(t), "sluice.sock")
	startDaemonWith(t, sendersConfig(sock, state, rules, ""))
	mta := mtatest.StartSendmail(t, mtatest.SendmailOptions{Milter: "unix:" + sock, DefaultAction: "tempfail"})
	c := mtatest.DialSMTP(t, mta.Addr())
	if r := c.Cmd("EHLO client.example"); r.Code != 250 {
		t.Fatalf("EHLO: %v", r)
	}
	if r := c.Cmd("MAIL FROM:<banned.example!bob>"); r.Code != 550 || !strings.Contains(r.Text, "Access denied") {
		t.Errorf("MAIL FROM:<banned.example!bob>: %v, want 550 Access denied", r)
	}
	c.Cmd("RSET")
	// A final ";" Sendmail drops.
	if r := c.Cmd("MAIL FROM:<bob@banned.example ;>"); r.Code != 550 || !strings.Contains(r.Text, "Access denied") {
		t.Errorf("MAIL FROM:<bob@banned.example ;>: %v, want 550 Access denied", r)
	}
	c.Cmd("RSET")
	if r := c.Cmd("MAIL FROM:<bob@banned.example (x>"); r.Code != 553 || !strings.Contains(r.Text, "Unbalanced '('") {
		t.Errorf("MAIL FROM:<bob@banned.example (x>: %v, want Sendmail's 553 Unbalanced '('", r)
	}
	c.Cmd("RSET")
	want := map[string]string{"uucp@lab.example": "<dave@client.example>", "semicolon@lab.example": "<judy@client.example>"}
	if r := c.Send("client.example!dave", []string{"uucp@lab.example"}, sendersMessage("x@client.example", "uucp@lab.example", "uucp")); r.Code != 250 {
		t.Fatalf("MAIL FROM:<client.example!dave>: %v", r)
	}
	c.Cmd("RSET")
	if r := c.Send("judy@client.example ;", []string{"semicolon@lab.example"}, sendersMessage("x@client.example", "semicolon@lab.example", "semicolon")); r.Code != 250 {
		t.Fatalf("MAIL FROM:<judy@client.example ;>: %v", r)
	}
	c.Quit()
	mta.WaitDelivered(t, len(want), 30*time.Second)
	for _, d := range mta.Delivered(t) {
		if rp := d.Get("Return-Path"); rp != want[d.Recipient()] {
			t.Errorf("%s: Return-Path %q, want %q", d.Recipient(), rp, want[d.Recipient()])
		}
	}
}
