package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/cmd/sluice/internal/config"
	"github.com/sluice-mail/sluice/milter"
)

// dryRunConfig writes a config file for sluice test and returns its path.
func dryRunConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sluice.yml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func dryRunMessage(to string) string {
	return "From: alice@example.org\nTo: " + to + "\nSubject: test\nMessage-ID: <1@example.org>\n\nHello.\n"
}

// Every verdict has its exit status, and the report names the filter,
// the stage, the reply and the edits.
func TestDryRunVerdicts(t *testing.T) {
	cfg := dryRunConfig(t, `filters:
  - type: script
    name: rules
`)
	tests := []struct {
		rcpt string
		code int
		want []string
	}{
		{"ok@lab.example", 0, []string{"eom      rules        continue", "add     X-Sluice-Test: client=192.0.2.5 helo=mx.example.net",
			"header edits sent to the MTA:", "verdict:  accept at eom", "reply:    250 (delivered)"}},
		{"reject@lab.example", 13, []string{"verdict:  reject by rules at eom", "reply:    550 5.7.1 Rejected by test filter", "reason:   recipient reject@lab.example"}},
		{"tempfail@lab.example", 12, []string{"verdict:  tempfail by rules at eom", "reply:    451 4.7.1 Deferred by test filter"}},
		{"quarantine@lab.example", 11, []string{"verdict:  quarantine by rules at eom", "held by the MTA: sluice: rules: held by test filter"}},
		{"discard@lab.example", 10, []string{"verdict:  discard by rules at eom", "250 (accepted, then dropped)"}},
	}
	for _, tc := range tests {
		r := runCLI(t, dryRunMessage(tc.rcpt), "test", "--config", cfg, "--client-ip", "192.0.2.5", "--helo", "mx.example.net")
		if r.code != tc.code {
			t.Errorf("%s: exit %d, want %d\n%s%s", tc.rcpt, r.code, tc.code, r.stdout, r.stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("%s: output lacks %q:\n%s", tc.rcpt, w, r.stdout)
			}
		}
		if tc.code != 0 && strings.Contains(r.stdout, "header edits") {
			t.Errorf("%s: a message not delivered shows edits:\n%s", tc.rcpt, r.stdout)
		}
	}

	// Several messages: one JSON line each, and the strongest verdict's
	// status. The envelope comes from the headers.
	dir := t.TempDir()
	for _, to := range []string{"ok@lab.example", "quarantine@lab.example", "discard@lab.example"} {
		os.WriteFile(filepath.Join(dir, to+".eml"), []byte(dryRunMessage(to)), 0o644)
	}
	r := runCLI(t, "", "test", "--config", cfg, "--format", "json", "--queue-id", "QID1", dir)
	if r.code != 11 {
		t.Errorf("three messages: exit %d, want 11 (quarantine)\n%s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d JSON lines, want 3:\n%s", len(lines), r.stdout)
	}
	// Files are read in name order: discard, ok, quarantine.
	var rep testReport
	if err := json.Unmarshal([]byte(lines[1]), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Verdict != "accept" || rep.Envelope.From != "alice@example.org" || strings.Join(rep.Envelope.Rcpts, ",") != "ok@lab.example" ||
		rep.Envelope.QueueID != "QID1" || len(rep.Edits) != 1 || rep.Edits[0].Name != "X-Sluice-Test" || len(rep.Decisions) != 1 ||
		rep.Decisions[0].Filter != "rules" || rep.Decisions[0].Stage != "eom" ||
		rep.HeadersSent == nil || *rep.HeadersSent || rep.BodySent == nil || *rep.BodySent {
		t.Errorf("JSON report %+v", rep)
	}

	// Usage errors and unreadable input.
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"--format", "xml"}, 2},
		{[]string{"--client-ip", "nowhere"}, 2},
		{[]string{"--mta", "exim"}, 2},
		{[]string{"--nosuchflag"}, 2},
		{[]string{filepath.Join(dir, "missing.eml")}, 1},
	} {
		r := runCLI(t, dryRunMessage("ok@lab.example"), append([]string{"test", "--config", cfg}, tc.args...)...)
		if r.code != tc.code {
			t.Errorf("sluice test %v: exit %d, want %d\n%s", tc.args, r.code, tc.code, r.stderr)
		}
	}
	r = runCLI(t, "Subject: nobody\n\nx\n", "test", "--config", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, "give --rcpt") {
		t.Errorf("message without recipients: %+v", r)
	}
}

// A dry run changes no lasting state: bayes does not auto-learn, the
// senders filter's seen file is not written and the archive filter
// writes no copy, unless --archive asks for it. The same configuration
// run for real (the daemon's registry) does change all three, so the
// test would see a dry run that did.
func TestDryRunLeavesStateAlone(t *testing.T) {
	state := t.TempDir()
	db := filepath.Join(state, "bayes.db")
	trainFixtures(t, db)
	rules := filepath.Join(t.TempDir(), "access")
	os.WriteFile(rules, []byte("watched.*\tWATCH\n"), 0o644)
	cfgPath := dryRunConfig(t, `state_dir: `+state+`
filters:
  - type: senders
    options:
      files: [`+rules+`]
  - type: bayes
    options:
      autolearn:
        spam: 0.5
        ham: 0.5
  - type: archive
    options:
      targets:
        default: copies/all.mbox
`)
	stats := func() string {
		t.Helper()
		r := runCLI(t, "", "db", "stats", "--db", db)
		m := regexp.MustCompile(`messages: +(\d+ spam, \d+ ham)`).FindStringSubmatch(r.stdout)
		if r.code != 0 || m == nil {
			t.Fatalf("db stats: %+v", r)
		}
		return m[1]
	}
	before := stats()
	seen := filepath.Join(state, "senders.seen")
	mbox := filepath.Join(state, "copies", "all.mbox")
	ham, err := os.ReadFile(fixture("check", "ham.eml"))
	if err != nil {
		t.Fatal(err)
	}

	r := runCLI(t, string(ham), "test", "--config", cfgPath, "--from", "news@watched.example", "--rcpt", "bob@lab.example")
	if r.code != 0 {
		t.Fatalf("dry run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, w := range []string{"eom      bayes", "add     X-Sluice-Bayes: Ham", "archive:  would write " + mbox} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("dry run output lacks %q:\n%s", w, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "autolearn=") {
		t.Errorf("dry run auto-learned:\n%s", r.stdout)
	}
	if got := stats(); got != before {
		t.Errorf("store after the dry run: %s, before: %s", got, before)
	}
	for _, p := range []string{seen, filepath.Dir(mbox)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("dry run left %s (stat: %v)", p, err)
		}
	}

	r = runCLI(t, string(ham), "test", "--config", cfgPath, "--archive", "--from", "news@watched.example", "--rcpt", "bob@lab.example")
	if r.code != 0 || strings.Contains(r.stdout, "would write") {
		t.Fatalf("dry run with --archive: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if data, err := os.ReadFile(mbox); err != nil || !strings.Contains(string(data), "X-Sluice-Bayes: Ham") {
		t.Errorf("--archive wrote no copy to %s: %v", mbox, err)
	}
	if got := stats(); got != before {
		t.Errorf("store after the dry run with --archive: %s, before: %s", got, before)
	}

	// The same configuration run for real learns and records.
	c := &cli{configPath: cfgPath, configSet: true, reg: testRegistry()}
	cfg, err := c.loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	p, err := config.Build(cfg, c.reg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	tf := testFlags{from: "news@watched.example", fromSet: true, rcpts: []string{"bob@lab.example"}, clientIP: "127.0.0.1", clientName: "localhost", mta: "postfix"}
	conn, _ := tf.conn()
	tx, err := tf.transaction(conn, ham, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := milter.Replay(context.Background(), milter.Config{Pipeline: p}, tx, nil)
	p.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Edits) == 0 || !strings.Contains(res.Edits[len(res.Edits)-1].Value, "autolearn=ham") {
		t.Errorf("the real pipeline did not auto-learn: %+v", res.Edits)
	}
	if got := stats(); got == before {
		t.Errorf("the real pipeline left the store at %s", got)
	}
	if _, err := os.Stat(seen); err != nil {
		t.Errorf("the real pipeline wrote no seen file: %v", err)
	}
}

// sluice test reads an mbox under its writers' locks, as train does: the
// half record a sluice process left when it died while appending is cut
// off, not replayed as a message.
func TestDryRunSkipsHalfWrittenRecord(t *testing.T) {
	cfg := dryRunConfig(t, `filters:
  - type: script
    name: rules
`)
	src := filepath.Join(t.TempDir(), "archive.mbox")
	deadWriterMbox(t, src)
	r := runCLI(t, "", "test", "--config", cfg, "--format", "json", "--rcpt", "ok@lab.example", src)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 1 {
		t.Fatalf("test of an mbox a dead writer left: exit %d, %d reports, want 0 and 1:\n%s\n%s", r.code, len(lines), r.stdout, r.stderr)
	}
	var rep testReport
	if err := json.Unmarshal([]byte(lines[0]), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Verdict != "accept" {
		t.Errorf("report %+v", rep)
	}
}

// A directory or maildir without a message has no verdict to report:
// exit 0 would read as "delivered" to a script, as it would for classify.
func TestDryRunNoMessage(t *testing.T) {
	cfg := dryRunConfig(t, "filters:\n  - type: script\n")
	empty := t.TempDir()
	maildir := t.TempDir()
	for _, sub := range []string{"new", "cur", "tmp"} {
		os.Mkdir(filepath.Join(maildir, sub), 0o755)
	}
	for _, dir := range []string{empty, maildir} {
		r := runCLI(t, "", "test", "--config", cfg, dir)
		if r.code != testExitError || !strings.Contains(r.stderr, "no messages found in "+dir) {
			t.Errorf("test %s: exit %d, stderr %q; want 1 and \"no messages found\"", dir, r.code, r.stderr)
		}
	}
}

// A message larger than a test holds in memory is reported as an error
// and not tested, and the messages after it still are: a device or a
// disk image named by mistake took all memory ("sluice test /dev/zero"
// held 400 MB after 3 seconds, and grew on). The big message is a sparse
// file: no disk is written.
func TestDryRunRefusesHugeMessage(t *testing.T) {
	cfg := dryRunConfig(t, "filters:\n  - type: script\n")
	dir := t.TempDir()
	big := filepath.Join(dir, "a-big.eml")
	if err := os.WriteFile(big, []byte(dryRunMessage("ok@lab.example")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, maxTestBytes+1<<20); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "b-small.eml"), []byte(dryRunMessage("ok@lab.example")), 0o644)
	r := runCLI(t, "", "test", "--config", cfg, dir)
	if r.code != testExitError || !strings.Contains(r.stderr, "a-big.eml: larger than 256 MiB, more than a test holds in memory: not tested") {
		t.Errorf("exit %d, stderr %q; want 1 and the big message refused", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "b-small.eml") || !strings.Contains(r.stdout, "verdict:  accept at eom") {
		t.Errorf("the message after the big one was not tested:\n%s", r.stdout)
	}
}

// --from takes the sender as SMTP writes it, in angle brackets, as
// --rcpt does: the daemon never sees the brackets (the milter library
// takes them off MAIL FROM), so the filters and the archive copy must
// not either. "<>" is the null sender.
func TestDryRunFromInAngleBrackets(t *testing.T) {
	state := t.TempDir()
	cfg := dryRunConfig(t, "state_dir: "+state+`
filters:
  - type: archive
    options:
      targets:
        default: all.mbox
`)
	for _, tc := range []struct{ flag, want, fromLine string }{
		{"<alice@example.org>", "alice@example.org", "From alice@example.org "},
		{"<>", "", "From MAILER-DAEMON "},
	} {
		mbox := filepath.Join(state, "all.mbox")
		os.Remove(mbox)
		r := runCLI(t, dryRunMessage("bob@lab.example"), "test", "--config", cfg, "--format", "json", "--archive", "--from", tc.flag)
		var rep testReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 {
			t.Fatalf("--from %s: exit %d, %v\n%s%s", tc.flag, r.code, err, r.stdout, r.stderr)
		}
		if rep.Envelope.From != tc.want {
			t.Errorf("--from %s: envelope sender %q, want %q", tc.flag, rep.Envelope.From, tc.want)
		}
		copy, err := os.ReadFile(mbox)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(copy), tc.fromLine) {
			t.Errorf("--from %s: archive copy does not start with %q:\n%s", tc.flag, tc.fromLine, copy)
		}
	}
}

// A dry run before the daemon ever ran does not create the bayes store:
// made by root (who runs sluice test on a new installation), the store
// and its lock would belong to root, and the daemon's user could not
// open them. A missing store scores as an empty one, as in the daemon.
func TestDryRunCreatesNoBayesStore(t *testing.T) {
	state := t.TempDir()
	cfg := dryRunConfig(t, "state_dir: "+state+"\nfilters:\n  - type: bayes\n")
	r := runCLI(t, dryRunMessage("bob@lab.example"), "test", "--config", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "not enough training: 0 spam and 0 ham learned") {
		t.Errorf("dry run on a missing store: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if left, _ := filepath.Glob(filepath.Join(state, "*")); len(left) > 0 {
		t.Errorf("dry run left %v in state_dir", left)
	}
}

// TestDryRunEscapesControlCharacters: the report shows the sender's text
// (a header address in a reason) and file names of a maildir anyone may
// have delivered into; terminal escape sequences in them must not reach
// the administrator's terminal as they are.
func TestDryRunEscapesControlCharacters(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	os.WriteFile(rules, []byte("HeaderFrom:example.org QUARANTINE:held\n"), 0o644)
	cfg := dryRunConfig(t, "state_dir: "+dir+"\nfilters:\n  - type: senders\n    options:\n      files: ["+rules+"]\n")
	msg := filepath.Join(dir, "m\x1b]0;owned\x07.eml")
	os.WriteFile(msg, []byte("From: <a\x1b[2J\x9b1m@example.org>\nTo: b@example.org\nSubject: hi\n\nbody\n"), 0o644)
	r := runCLI(t, "", "test", "--config", cfg, msg)
	if r.code != 11 {
		t.Fatalf("exit %d, want 11\n%s%s", r.code, r.stdout, r.stderr)
	}
	if strings.ContainsAny(r.stdout, "\x1b\x07") || strings.Contains(r.stdout, "\x9b") {
		t.Errorf("control characters reach the report:\n%q", r.stdout)
	}
	for _, w := range []string{`m\x1b]0;owned\x07.eml`, `header_from a\x1b[2j`} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("report lacks %q:\n%q", w, r.stdout)
		}
	}
	// A message that cannot be tested names its file on standard error.
	os.WriteFile(msg, []byte("Subject: no recipient\n\nbody\n"), 0o644)
	r = runCLI(t, "", "test", "--config", cfg, msg)
	if r.code != 1 || strings.ContainsAny(r.stdout+r.stderr, "\x1b\x07") || !strings.Contains(r.stderr, `m\x1b]0;owned\x07.eml`) {
		t.Errorf("exit %d:\n%q\n%q", r.code, r.stdout, r.stderr)
	}
}

// A dry run with --macro {auth_authen}=USER is mail from a user who
// authenticated with SMTP AUTH: by default bayes does not classify it, so
// spam that would be rejected is delivered with the skip header. Without
// the macro, or with skip_authenticated: false, the same message is
// rejected. A bad value of the option is a config error with file and
// line.
func TestDryRunBayesSkipsAuthenticated(t *testing.T) {
	state := t.TempDir()
	trainFixtures(t, filepath.Join(state, "bayes.db"))
	spam, err := os.ReadFile(fixture("check", "spam.eml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := dryRunConfig(t, "state_dir: "+state+"\nfilters:\n  - type: bayes\n")
	args := []string{"test", "--config", cfg, "--rcpt", "bob@lab.example", "--queue-id", "4QAUTH"}

	r := runCLI(t, string(spam), append(args, "--macro", "{auth_authen}=alice")...)
	for _, w := range []string{"eom      bayes", "add     X-Sluice-Bayes: Skipped, authenticated, queue_id=4QAUTH, version=", "verdict:  accept at eom"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("authenticated: output lacks %q:\n%s", w, r.stdout)
		}
	}
	if r.code != 0 {
		t.Errorf("authenticated: exit %d, want 0\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = runCLI(t, string(spam), args...)
	if r.code != 13 || !strings.Contains(r.stdout, "verdict:  reject by bayes at eom") {
		t.Errorf("not authenticated: exit %d, want 13 (reject)\n%s%s", r.code, r.stdout, r.stderr)
	}

	off := dryRunConfig(t, "state_dir: "+state+"\nfilters:\n  - type: bayes\n    options:\n      skip_authenticated: false\n")
	r = runCLI(t, string(spam), "test", "--config", off, "--rcpt", "bob@lab.example", "--macro", "{auth_authen}=alice")
	if r.code != 13 {
		t.Errorf("skip_authenticated false: exit %d, want 13 (reject)\n%s%s", r.code, r.stdout, r.stderr)
	}

	bad := dryRunConfig(t, "state_dir: "+state+"\nfilters:\n  - type: bayes\n    options:\n      skip_authenticated: sometimes\n")
	r = runCLI(t, string(spam), "test", "--config", bad, "--rcpt", "bob@lab.example")
	if want := bad + ":5: filters[0].options.skip_authenticated"; r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Errorf("bad skip_authenticated: want an error containing %q, got %+v", want, r)
	}
}

// With --archive the copies are written for real, and the report names
// each one, in text and in JSON, so that the administrator can find the
// copy just made: the mbox, or the message's file in the maildir.
func TestDryRunArchiveReportsCopiesWritten(t *testing.T) {
	for _, format := range []string{"mbox", "maildir"} {
		dir := t.TempDir()
		cfg := dryRunConfig(t, `state_dir: `+dir+`
filters:
  - type: archive
    options:
      format: `+format+`
      targets:
        default: copies/all
`)
		wantHolds := func(how, path, subject string) {
			t.Helper()
			if !strings.HasPrefix(path, filepath.Join(dir, "copies", "all")) {
				t.Errorf("%s %s: reported %q, not under the target", format, how, path)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("%s %s: reported copy: %v", format, how, err)
				return
			}
			if !strings.Contains(string(data), "Subject: "+subject) {
				t.Errorf("%s %s: %s does not hold the message:\n%s", format, how, path, data)
			}
		}

		msg := strings.Replace(dryRunMessage("bob@lab.example"), "Subject: test", "Subject: text run", 1)
		r := runCLI(t, msg, "test", "--config", cfg, "--archive")
		if r.code != 0 {
			t.Fatalf("%s text: exit %d\n%s%s", format, r.code, r.stdout, r.stderr)
		}
		m := regexp.MustCompile(`(?m)^archive:  wrote (.+)$`).FindAllStringSubmatch(r.stdout, -1)
		if len(m) != 1 {
			t.Fatalf("%s text: want one \"archive:  wrote\" line:\n%s", format, r.stdout)
		}
		wantHolds("text", m[0][1], "text run")

		msg = strings.Replace(dryRunMessage("bob@lab.example"), "Subject: test", "Subject: json run", 1)
		r = runCLI(t, msg, "test", "--config", cfg, "--archive", "--format", "json")
		if r.code != 0 {
			t.Fatalf("%s json: exit %d\n%s%s", format, r.code, r.stdout, r.stderr)
		}
		var rep struct {
			Archived     []string `json:"archived"`
			WouldArchive []string `json:"would_archive"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("%s json: %v\n%s", format, err, r.stdout)
		}
		if len(rep.Archived) != 1 || len(rep.WouldArchive) != 0 {
			t.Fatalf("%s json: archived %q, would_archive %q", format, rep.Archived, rep.WouldArchive)
		}
		wantHolds("json", rep.Archived[0], "json run")
	}
}
