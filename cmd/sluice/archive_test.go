package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/cmd/sluice/internal/config"
	"github.com/sluice-mail/sluice/cmd/sluice/internal/mailbox"
	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/archive"
)

// archiveFixture archives fixture messages into dir the way the daemon
// does, with the given verdicts: one record per message, queue ids
// Q0, Q1, ...
func archiveFixture(t *testing.T, dir string, msgs []string, verdicts []string) {
	t.Helper()
	f, err := archive.New(filters.Env{Name: "archive", StateDir: dir}, archive.Config{Targets: map[string]string{
		"spam": "spam.mbox", "ham": "ham.mbox", "unsure": "unsure.mbox",
	}})
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range msgs {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		hdr, body, _ := strings.Cut(strings.ReplaceAll(string(raw), "\n", "\r\n"), "\r\n\r\n")
		m := &filters.Message{QueueID: fmt.Sprintf("Q%d", i), From: filters.Address{Addr: "sender@example.org"},
			Rcpts: []filters.Address{{Addr: "bob@lab.example"}}, Body: filters.NewBody(1<<20, "")}
		for _, line := range strings.Split(hdr, "\r\n") {
			if line[0] == ' ' || line[0] == '\t' {
				m.Headers[len(m.Headers)-1].Value += "\r\n" + line
				continue
			}
			k, v, _ := strings.Cut(line, ":")
			m.Headers = append(m.Headers, filters.Header{Name: k, Value: strings.TrimPrefix(v, " ")})
		}
		m.Headers = append(m.Headers, filters.Header{Name: "X-Sluice-Bayes", Value: verdicts[i] + ", spamicity=0.5"})
		m.Body.Write([]byte(body))
		if _, err := f.Check(context.Background(), filters.StageEOM, m); err != nil {
			t.Fatal(err)
		}
	}
}

// readArchive reads the records of the mbox at path, without locks.
func readArchive(path string, fn func(archive.Record) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := archive.ReadMbox(f, fn); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func countRecords(t *testing.T, path string) []string {
	t.Helper()
	var ids []string
	if err := readArchive(path, func(r archive.Record) error {
		ids = append(ids, r.QueueID())
		return nil
	}); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return ids
}

// Retraining by queue id from an archive: only the picked message is
// learned, and one learned in the other class moves.
func TestArchiveTrainBySelection(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "bayes.db")
	trainFixtures(t, db)
	// Q0 and Q1 are fixtures the store learned as ham; they were filed as
	// spam.
	archiveFixture(t, dir, []string{fixture("ham", "00.eml"), fixture("ham", "01.eml"), fixture("check", "unsure.eml")}, []string{"Spam", "Spam", "Spam"})
	spam := filepath.Join(dir, "spam.mbox")

	r := runCLI(t, "", "train", "--db", db, "--spam", "--queue-id", "Q1", spam)
	if want := "1 message: 0 learned as spam, 0 already learned, 1 moved from ham to spam, 0 errors\n"; r.code != 0 || r.stdout != want {
		t.Errorf("train --queue-id: %+v, want %q", r, want)
	}
	r = runCLI(t, "", "train", "--db", db, "--ham", "--queue-id", "Q1", "--queue-id", "Q2", spam)
	if want := "2 messages: 1 learned as ham, 0 already learned, 1 moved from spam to ham, 0 errors\n"; r.code != 0 || r.stdout != want {
		t.Errorf("train two queue ids: %+v, want %q", r, want)
	}
	msgID := strings.Join(archive.HeaderValues(mustRead(t, fixture("ham", "00.eml")), "Message-ID"), "")
	if msgID == "" {
		t.Fatal("fixture has no Message-ID")
	}
	r = runCLI(t, "", "train", "--db", db, "--ham", "--message-id", strings.Trim(msgID, "<>"), spam)
	if want := "1 message: 0 learned as ham, 1 already learned, 0 moved from spam to ham, 0 errors\n"; r.code != 0 || r.stdout != want {
		t.Errorf("train --message-id: %+v, want %q", r, want)
	}
	r = runCLI(t, "", "train", "--db", db, "--ham", "--queue-id", "NOPE", spam)
	if r.code != 1 || !strings.Contains(r.stderr, "no message with queue id NOPE in "+spam) {
		t.Errorf("no match: %+v", r)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestArchiveShowAndMove(t *testing.T) {
	dir := t.TempDir()
	archiveFixture(t, dir, []string{fixture("ham", "00.eml"), fixture("ham", "01.eml"), fixture("spam", "00.eml")}, []string{"Spam", "Spam", "Spam"})
	spam, ham := filepath.Join(dir, "spam.mbox"), filepath.Join(dir, "ham.mbox")
	before := mustRead(t, spam)

	r := runCLI(t, "", "archive", "show", "--queue-id", "Q1", spam)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "From sender@example.org ") || strings.Count(r.stdout, "\nX-Sluice-Queue-ID: ") != 1 || !strings.Contains(r.stdout, "X-Sluice-Queue-ID: Q1\n") {
		t.Errorf("show: %+v", r)
	}
	if !strings.Contains(string(before), r.stdout) {
		t.Error("show does not print the record as stored")
	}
	if r := runCLI(t, "", "archive", "show", "--queue-id", "Q9", spam); r.code != 1 {
		t.Errorf("show without a match: %+v", r)
	}
	if r := runCLI(t, "", "archive", "show", spam); r.code != statusUsage || !strings.Contains(r.stderr, "--queue-id or --message-id") {
		t.Errorf("show without selection: %+v", r)
	}

	// --to a verdict goes through the configuration's archive filter.
	cfg := filepath.Join(dir, "sluice.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("state_dir: %s\nfilters:\n  - type: archive\n    options:\n      targets:\n        spam: spam.mbox\n        ham: ham.mbox\n", dir)), 0o644)
	r = runCLI(t, "", "--config", cfg, "archive", "move", "--queue-id", "Q1", "--to", "ham", spam)
	if r.code != 0 || r.stdout != "moved Q1 from "+spam+" to "+ham+"\n" {
		t.Fatalf("move: %+v", r)
	}
	if got := countRecords(t, spam); strings.Join(got, ",") != "Q0,Q2" {
		t.Errorf("spam archive after the move: %v", got)
	}
	if got := countRecords(t, ham); strings.Join(got, ",") != "Q1" {
		t.Errorf("ham archive after the move: %v", got)
	}
	// The record moved byte for byte.
	if !strings.Contains(string(before), string(mustRead(t, ham))) {
		t.Error("the moved record changed")
	}
	if r := runCLI(t, "", "--config", cfg, "archive", "move", "--queue-id", "Q0", "--to", "unsure", spam); r.code != 1 || !strings.Contains(r.stderr, `no archive target for "unsure"`) {
		t.Errorf("move to a verdict without target: %+v", r)
	}
	if r := runCLI(t, "", "--config", cfg, "archive", "move", "--queue-id", "Q0", "--to", "spam", spam); r.code != 1 || !strings.Contains(r.stderr, "already in") {
		t.Errorf("move onto itself: %+v", r)
	}
	// --to a path needs no configuration.
	other := filepath.Join(dir, "sub", "other.mbox")
	if r := runCLI(t, "", "archive", "move", "--queue-id", "Q0", "--queue-id", "Q2", "--to", other, spam); r.code != 0 {
		t.Fatalf("move to a path: %+v", r)
	}
	if got := countRecords(t, other); strings.Join(got, ",") != "Q0,Q2" {
		t.Errorf("moved to a path: %v", got)
	}
	if got := countRecords(t, spam); len(got) != 0 {
		t.Errorf("left in spam: %v", got)
	}
}

// TestDocArchive: docs/archive.md documents exactly the options of the
// filter and its path placeholders, and the configuration examples there
// and in docs/training.md are valid, filter options included.
func TestDocArchive(t *testing.T) {
	text := readDoc(t, "docs/archive.md")
	want := map[string]bool{}
	ct := reflect.TypeOf(archive.Config{})
	for i := 0; i < ct.NumField(); i++ {
		want[strings.Split(ct.Field(i).Tag.Get("yaml"), ",")[0]] = true
	}
	placeholders := map[string]bool{}
	for _, p := range archive.Placeholders {
		placeholders["{"+p+"}"] = true
	}
	gotOpts, gotPh := map[string]bool{}, map[string]bool{}
	for _, tbl := range mdTables(text) {
		switch {
		case tbl.column("Option") == 0:
			for _, r := range tbl.rows {
				name, ok := onlyCode(r.cell(0))
				if !ok || !want[name] {
					t.Errorf("docs/archive.md:%d: %q is not an option of the archive filter", r.line, r.cell(0))
				}
				gotOpts[name] = true
			}
		case tbl.column("Placeholder") == 0:
			for _, r := range tbl.rows {
				for _, p := range codeSpans(r.cell(0)) {
					if !placeholders[p] {
						t.Errorf("docs/archive.md:%d: %s is not a placeholder", r.line, p)
					}
					gotPh[p] = true
				}
			}
		}
	}
	for k := range want {
		if !gotOpts[k] {
			t.Errorf("docs/archive.md does not document option %s", k)
		}
	}
	for k := range placeholders {
		if !gotPh[k] {
			t.Errorf("docs/archive.md does not document placeholder %s", k)
		}
	}
	for _, v := range archive.Verdicts {
		if !strings.Contains(text, "`"+v+"`") {
			t.Errorf("docs/archive.md does not name the verdict %s", v)
		}
	}
	n := 0
	blocks := append(yamlBlocks("docs/archive.md", text), yamlBlocks("docs/training.md", readDoc(t, "docs/training.md"))...)
	for _, b := range blocks {
		if !strings.HasPrefix(b.text, "# sluice.yml") {
			continue
		}
		n++
		cfg, err := config.Parse(fmt.Sprintf("%s, example at line %d", b.file, b.line), []byte(b.text), registry())
		if err != nil {
			t.Errorf("%s:%d: %v", b.file, b.line, err)
			continue
		}
		// Build the filters too, which checks their options; in a
		// state_dir of the test's own, where a bayes store may be made.
		cfg.StateDir = t.TempDir()
		p, err := config.Build(cfg, registry(), slog.New(slog.DiscardHandler), nil)
		if err != nil {
			t.Errorf("%s:%d: %v", b.file, b.line, err)
			continue
		}
		p.Close()
	}
	if n == 0 {
		t.Error("docs/archive.md has no configuration example")
	}
}

// archive move reads the source under the append locks: the half record
// a daemon left when it died mid-append (its dot-lock names it) is cut
// off, not copied into the destination as a truncated message.
func TestArchiveMoveSkipsHalfWrittenRecord(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "spam.mbox"), filepath.Join(dir, "ham.mbox")
	good := deadWriterMbox(t, src)
	app := archive.NewAppender(time.Second, nil)
	var out strings.Builder
	n, err := moveRecords(context.Background(), &out, app, src, mailbox.Select{QueueIDs: []string{"B"}},
		func(archive.Record) (string, error) { return dst, nil })
	if err != nil || n != 0 {
		t.Errorf("moved %d, err %v, output %q; want nothing moved", n, err, out.String())
	}
	if got, err := os.ReadFile(dst); err == nil && bytes.Contains(got, []byte("the first li")) {
		t.Errorf("the half-written record was copied into %s:\n%q", dst, got)
	}
	if got, _ := os.ReadFile(src); string(got) != good {
		t.Errorf("source after the move: %q, want the whole record only", got)
	}
	// The whole record moves.
	n, err = moveRecords(context.Background(), &out, app, src, mailbox.Select{QueueIDs: []string{"A"}},
		func(archive.Record) (string, error) { return dst, nil })
	if err != nil || n != 1 {
		t.Fatalf("moved %d, err %v", n, err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Contains(got, []byte("whole")) {
		t.Errorf("destination %q", got)
	}
}

// archive show reads under the append locks too: the half record of a
// daemon that died mid-append is not printed (and piped into sluice
// train as a whole message).
func TestArchiveShowSkipsHalfWrittenRecord(t *testing.T) {
	src := filepath.Join(t.TempDir(), "spam.mbox")
	good := deadWriterMbox(t, src)
	r := runCLI(t, "", "archive", "show", "--queue-id", "A", "--queue-id", "B", src)
	if r.code != 0 || r.stdout != good || r.stderr != "" {
		t.Errorf("show A and B: %+v; want only the whole record A", r)
	}
	r = runCLI(t, "", "archive", "show", "--queue-id", "B", src)
	if r.code != 1 || strings.Contains(r.stdout, "the first li") {
		t.Errorf("show B: %+v; want no message", r)
	}
}

// deadWriterMbox writes at path an mbox holding the whole record A, then
// the start of record B that a sluice process was appending when it died:
// its dot-lock names it and the length of the mbox before B. It returns
// record A as stored.
func deadWriterMbox(t *testing.T, path string) string {
	t.Helper()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	good := "From a Thu Jan  1 00:00:00 1970\nX-Sluice-Queue-ID: A\n\nwhole\n\n"
	half := "From b Thu Jan  1 00:00:00 1970\nX-Sluice-Queue-ID: B\nSubject: half\n\nthe first li"
	if err := os.WriteFile(path, []byte(good+half), 0o600); err != nil {
		t.Fatal(err)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	host = strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, host)
	lock := fmt.Sprintf("sluice pid=%d start=1 host=%s size=%d\n", dead.Process.Pid, host, len(good))
	if err := os.WriteFile(path+".lock", []byte(lock), 0o600); err != nil {
		t.Fatal(err)
	}
	return good
}

// Error messages of archive move name things once, and the configuration
// by what it is.
func TestArchiveMoveErrorMessages(t *testing.T) {
	c := &cli{configPath: filepath.Join(t.TempDir(), "missing.yml"), reg: testRegistry()}
	if _, err := c.archiveDestination("spam"); err == nil || !strings.Contains(err.Error(), "the built-in configuration has no archive filter") {
		t.Errorf("no configuration file: %v", err)
	}
	src := filepath.Join(t.TempDir(), "a.mbox")
	if err := os.WriteFile(src, []byte("From a@b Thu Jan  1 00:00:00 2025\nX-Sluice-Queue-ID: Q1\nSubject: hi\n\nbody\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "", "archive", "move", "--queue-id", "Q1", "--to", src, src)
	if r.code != 1 || strings.Count(r.stderr, src) != 2 || !strings.Contains(r.stderr, "already in") {
		t.Errorf("move into the same file: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestArchiveMoveEscapesReport: the "moved ..." line shows the Message-ID
// of a record without a queue id, which the sender wrote; printed as is,
// terminal escape sequences in it would reach the administrator's
// terminal (often root's) when the line is shown there.
func TestArchiveMoveEscapesReport(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "a.mbox"), filepath.Join(dir, "b.mbox")
	id := "<x\x1b]0;owned\x07\x9b2J@example.org>"
	if err := os.WriteFile(src, []byte("From a@b Thu Jan  1 00:00:00 2025\nMessage-ID: "+id+"\nSubject: hi\n\nbody\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "", "archive", "move", "--message-id", id, "--to", dst, src)
	if r.code != 0 {
		t.Fatalf("move: %+v", r)
	}
	if strings.ContainsAny(r.stdout, "\x1b\x07\x9b") || strings.ContainsRune(r.stdout, '\u009b') {
		t.Errorf("control characters reach the report: %q", r.stdout)
	}
	if want := `moved <x\x1b]0;owned\x07\x9b2J@example.org> from ` + src + " to " + dst + "\n"; r.stdout != want {
		t.Errorf("report %q, want %q", r.stdout, want)
	}
}

// TestArchiveMovePartialFailure: when an append fails half-way through a
// move (a full disk, an unwritable target), the records already appended
// to their new mbox are still removed from the old one. Left in both, a
// second "archive move" after the fix would append them once more.
func TestArchiveMovePartialFailure(t *testing.T) {
	dir := t.TempDir()
	src, good := filepath.Join(dir, "a.mbox"), filepath.Join(dir, "good.mbox")
	// A regular file where a directory should be: the append to bad fails
	// even for root.
	blocker := filepath.Join(dir, "blocker")
	os.WriteFile(blocker, nil, 0o644)
	bad := filepath.Join(blocker, "bad.mbox")
	rec := func(q string) string {
		return "From a@b Thu Jan  1 00:00:00 2025\nX-Sluice-Queue-ID: " + q + "\nSubject: " + q + "\n\nbody\n\n"
	}
	os.WriteFile(src, []byte(rec("A")+rec("B")+rec("C")), 0o644)
	dest := map[string]string{"A": good, "B": bad, "C": good}
	var out bytes.Buffer
	app := archive.NewAppender(time.Second, nil)
	sel := mailbox.Select{QueueIDs: []string{"A", "B", "C"}}
	n, err := moveRecords(context.Background(), &out, app, src, sel, func(r archive.Record) (string, error) { return dest[r.QueueID()], nil })
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("moved %d, error %v", n, err)
	}
	if got := countRecords(t, good); strings.Join(got, ",") != "A" {
		t.Errorf("new mbox: %v", got)
	}
	if got := countRecords(t, src); strings.Join(got, ",") != "B,C" {
		t.Errorf("old mbox keeps %v, want B,C", got)
	}
	if n != 1 || out.String() != "moved A from "+src+" to "+good+"\n" {
		t.Errorf("moved %d, report %q", n, out.String())
	}
	// Run again once the target is fixed: each message ends up once.
	dest["B"] = good
	if _, err := moveRecords(context.Background(), &out, app, src, sel, func(r archive.Record) (string, error) { return dest[r.QueueID()], nil }); err != nil {
		t.Fatal(err)
	}
	if got := countRecords(t, good); strings.Join(got, ",") != "A,B,C" {
		t.Errorf("new mbox after the second move: %v", got)
	}
	if got := countRecords(t, src); len(got) != 0 {
		t.Errorf("old mbox after the second move: %v", got)
	}
}

// TestArchiveMaildirArgument: show and move read mbox files; a maildir
// given (the archive filter writes those too) is named as such, before
// anything is moved from the mbox files given with it.
func TestArchiveMaildirArgument(t *testing.T) {
	dir := t.TempDir()
	md := filepath.Join(dir, "spam")
	for _, sub := range []string{"tmp", "new", "cur"} {
		os.MkdirAll(filepath.Join(md, sub), 0o755)
	}
	os.WriteFile(filepath.Join(md, "new", "1.x:2,"), []byte("X-Sluice-Queue-ID: Q1\n\nbody\n"), 0o644)
	src := filepath.Join(dir, "a.mbox")
	os.WriteFile(src, []byte("From a@b Thu Jan  1 00:00:00 2025\nX-Sluice-Queue-ID: Q1\n\nbody\n\n"), 0o644)
	want := md + " is a directory, not an mbox"
	if r := runCLI(t, "", "archive", "show", "--queue-id", "Q1", md); r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("show: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runCLI(t, "", "archive", "move", "--queue-id", "Q1", "--to", filepath.Join(dir, "b.mbox"), src, md); r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("move: exit %d, stderr %q", r.code, r.stderr)
	}
	if got := countRecords(t, src); strings.Join(got, ",") != "Q1" {
		t.Errorf("moved from %s before refusing %s: %v left", src, md, got)
	}
}

// A move over every archive ("sluice archive move --queue-id Q --to spam
// archive/*.mbox") reads the destination too. A record it had just moved
// there, found again when the destination's turn came, failed the
// command (exit 1, "already in") after a move that worked, depending on
// whether the destination sorted after the source. Records already in
// their destination are left there; only a move that finds nothing but
// such records is an error.
func TestArchiveMoveOverAllArchives(t *testing.T) {
	dir := t.TempDir()
	ham, spam := filepath.Join(dir, "ham.mbox"), filepath.Join(dir, "spam.mbox")
	if err := os.WriteFile(ham, []byte("From a@b Thu Jan  1 00:00:00 2025\nX-Sluice-Queue-ID: Q1\nSubject: one\n\nbody\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spam, []byte("From a@b Thu Jan  1 00:00:00 2025\nX-Sluice-Queue-ID: Q2\nSubject: two\n\nbody\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "", "archive", "move", "--queue-id", "Q1", "--queue-id", "Q2", "--to", spam, ham, spam)
	if r.code != 0 || !strings.Contains(r.stdout, "moved Q1 from "+ham+" to "+spam) {
		t.Errorf("move over both archives: %+v, want exit 0 and Q1 moved", r)
	}
	if got := countRecords(t, spam); strings.Join(got, ",") != "Q2,Q1" {
		t.Errorf("spam archive after the move: %v, want Q2,Q1", got)
	}
	if got := countRecords(t, ham); len(got) != 0 {
		t.Errorf("ham archive after the move: %v, want none", got)
	}
	// Nothing left to move: every record picked is already there.
	r = runCLI(t, "", "archive", "move", "--queue-id", "Q1", "--to", spam, ham, spam)
	if r.code != 1 || !strings.Contains(r.stderr, "already in") {
		t.Errorf("move of a record already in place: %+v, want exit 1 and already in", r)
	}
}

// An error in a later MBOX (missing, unreadable, no mbox) stops show, but
// what it printed before is whole records: piped into "sluice train", a
// record cut where the output buffer happened to end would be learned as
// a message. It printed the records of the earlier files up to the last
// full buffer, and the last of them cut short.
func TestArchiveShowErrorPrintsWholeRecords(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "a.mbox")
	var mbox strings.Builder
	args := []string{"archive", "show"}
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&mbox, "From a@b Thu Jan  1 00:00:00 2025\nX-Sluice-Queue-ID: Q%d\nSubject: %d\n\n%s\n", i, i, strings.Repeat("0123456789\n", 100))
		args = append(args, "--queue-id", fmt.Sprintf("Q%d", i))
	}
	if err := os.WriteFile(src, []byte(mbox.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.mbox")
	r := runCLI(t, "", append(args, src, missing)...)
	if r.code != 1 || !strings.Contains(r.stderr, missing) {
		t.Fatalf("show with a missing MBOX: exit %d, stderr %q", r.code, r.stderr)
	}
	var got []string
	if err := archive.ReadMbox(strings.NewReader(r.stdout), func(rec archive.Record) error {
		got = append(got, string(rec.Raw)+"\n")
		return nil
	}); err != nil {
		t.Fatalf("the output is no mbox: %v", err)
	}
	if r.stdout != mbox.String() || len(got) != 10 {
		t.Errorf("show printed %d bytes in %d records before the error, want the %d bytes of all 10 whole; output ends %q",
			len(r.stdout), len(got), mbox.Len(), r.stdout[max(0, len(r.stdout)-40):])
	}
}
