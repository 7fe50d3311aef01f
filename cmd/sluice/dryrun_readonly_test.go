package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/classifier/redistest"
)

// readOnlyTestConfig writes, into dir, a configuration whose bayes filter
// reads the store db, auto-learns both sides and looks for a stale
// n-gram model every millisecond: run for real, it would write the store
// while the test runs. It returns the file's path.
func readOnlyTestConfig(t *testing.T, dir, db string) string {
	t.Helper()
	path := filepath.Join(dir, "sluice.yml")
	text := "state_dir: " + dir + `
filters:
  - type: bayes
    options:
      db: ` + db + `
      refit: 1ms
      autolearn:
        spam: 0.5
        ham: 0.5
`
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// readOnlyTestMessages copies the ham and spam fixtures into dir, for a
// user who may not read the fixtures' directory, and returns their paths
// with the directories of the fixtures of both classes after them, four
// times: a run long enough for the 1 ms refit of readOnlyTestConfig to
// come round many times.
func readOnlyTestMessages(t *testing.T, dir string) []string {
	t.Helper()
	var paths []string
	for _, class := range []string{"ham", "spam"} {
		data, err := os.ReadFile(fixture("check", class+".eml"))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, class+".eml")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	for _, class := range []string{"ham", "spam"} {
		src := fixture(class)
		dst := filepath.Join(dir, class)
		if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
			t.Fatal(err)
		}
		if err := filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			mode := os.FileMode(0o644)
			if d.IsDir() {
				mode = 0o755
			}
			return os.Chmod(p, mode)
		}); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, dst)
	}
	// Named again: a longer run, more refit intervals.
	for range 3 {
		paths = append(paths, paths[2:4]...)
	}
	return paths
}

// dryRunReports runs sluice test through run on msgs (see
// readOnlyTestMessages) and checks what the bayes filter decided on the
// first two, the ham and the spam fixture: their verdicts, their
// header, and that auto-learning would have learned each, which the
// report says rather than the header. It returns the reports.
func dryRunReports(t *testing.T, run func(stdin string, args ...string) cliResult, cfg string, msgs []string) []testReport {
	t.Helper()
	r := run("", append([]string{"test", "--config", cfg, "--format", "json", "--rcpt", "bob@lab.example"}, msgs...)...)
	if r.code != testExitReject {
		t.Fatalf("sluice test: exit %d, want %d (a spam rejected)\n%s%s", r.code, testExitReject, r.stdout, r.stderr)
	}
	var reports []testReport
	for line := range strings.Lines(r.stdout) {
		var rep testReport
		if err := json.Unmarshal([]byte(line), &rep); err != nil {
			t.Fatalf("report %q: %v", line, err)
		}
		reports = append(reports, rep)
	}
	if want := 2 + 28*(len(msgs)-2)/2; len(reports) != want {
		t.Fatalf("%d reports, want %d (2 messages and 28 fixtures in each pair of directories)", len(reports), want)
	}
	ham, spam := reports[0], reports[1]
	header := func(rep testReport) string {
		for _, e := range rep.Edits {
			if e.Kind == "add" && e.Name == "X-Sluice-Bayes" {
				return e.Value
			}
		}
		return ""
	}
	if ham.Verdict != "accept" || !strings.HasPrefix(header(ham), "Ham, spamicity=") || strings.Contains(header(ham), "autolearn=") {
		t.Errorf("ham: verdict %s, header %q; want accept, Ham, and no autolearn note", ham.Verdict, header(ham))
	}
	if spam.Verdict != "reject" || spam.Filter != "bayes" || !strings.HasPrefix(spam.Reply, "550 5.7.1 ") {
		t.Errorf("spam: verdict %s by %s, reply %q; want reject by bayes, 550 5.7.1", spam.Verdict, spam.Filter, spam.Reply)
	}
	for _, tc := range []struct {
		rep   testReport
		class string
	}{{ham, "ham"}, {spam, "spam"}} {
		if want := []testAutolearn{{Filter: "bayes", Class: tc.class}}; !reflect.DeepEqual(tc.rep.WouldAutolearn, want) {
			t.Errorf("%s: would_autolearn %+v, want %+v", tc.class, tc.rep.WouldAutolearn, want)
		}
	}
	return reports
}

// sameDecisions checks that two runs' reports give the same verdicts,
// replies, reasons and header edits, message by message.
func sameDecisions(t *testing.T, got, want []testReport) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d reports, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Verdict != w.Verdict || g.Reply != w.Reply || g.Reason != w.Reason || !reflect.DeepEqual(g.Edits, w.Edits) ||
			!reflect.DeepEqual(g.WouldAutolearn, w.WouldAutolearn) {
			t.Errorf("%s: verdict %s %q %q, edits %+v, would_autolearn %+v\nwant %s %q %q, edits %+v, would_autolearn %+v",
				g.Message, g.Verdict, g.Reply, g.Reason, g.Edits, g.WouldAutolearn, w.Verdict, w.Reply, w.Reason, w.Edits, w.WouldAutolearn)
		}
	}
}

// dirFiles returns the files in dir and their contents (not those of
// its subdirectories).
func dirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(data)
	}
	return files
}

// changedFiles names the files of before that after lacks or holds
// other bytes of, and those after has that before had not.
func changedFiles(before, after map[string]string) []string {
	var changed []string
	for name, data := range before {
		if got, ok := after[name]; !ok || got != data {
			changed = append(changed, name)
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			changed = append(changed, name+" (new)")
		}
	}
	slices.Sort(changed)
	return changed
}

// readOnlyTestStore copies a store trained on the fixtures, whose n-gram
// model is stale (one message learned with --no-refit after the fit),
// into dir as bayes.db, with its lock file if lock is set, and returns
// its path.
func readOnlyTestStore(t *testing.T, dir string, lock bool) string {
	t.Helper()
	src := trainedDB(t)
	extra := filepath.Join(t.TempDir(), "extra.eml")
	os.WriteFile(extra, []byte("From: ann@example.org\nSubject: the stale model\n\nlearned after the fit, with no refit\n"), 0o644)
	if r := runCLI(t, "", "train", "--db", src, "--ham", "--no-refit", extra); r.code != 0 {
		t.Fatalf("train --no-refit: %+v", r)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "bayes.db")
	if err := os.WriteFile(db, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if lock {
		if err := os.WriteFile(db+".lock", nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// sluice test opens the bayes store read-only and writes nothing: the
// store stays byte for byte what it was, and no lock file is created
// beside a store copied without one. It used to open the store as the
// daemon does, read-write: it created bayes.db.lock (owned by whoever
// ran the test, often root), and its filter fitted a stale n-gram model
// again into the store when the refit interval came round during a long
// run (here 1 ms). What auto-learning would learn is reported instead
// of learned.
func TestDryRunReadOnlyLeavesStoreAlone(t *testing.T) {
	for _, tc := range []struct {
		name string
		lock bool
	}{
		{"lock file", true},
		{"no lock file", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			db := readOnlyTestStore(t, dir, tc.lock)
			msgs := readOnlyTestMessages(t, t.TempDir())
			cfg := readOnlyTestConfig(t, t.TempDir(), db)
			before := dirFiles(t, dir)
			dryRunReports(t, func(stdin string, args ...string) cliResult { return runCLI(t, stdin, args...) }, cfg, msgs)
			// The text report says it too.
			r := runCLI(t, "", "test", "--config", cfg, "--rcpt", "bob@lab.example", msgs[0])
			if want := "\nautolearn: bayes would learn it as ham (dry run: not learned, so the header has no autolearn note)\n"; r.code != 0 || !strings.Contains(r.stdout, want) {
				t.Errorf("text report: exit %d, lacks %q:\n%s%s", r.code, want, r.stdout, r.stderr)
			}
			if changed := changedFiles(before, dirFiles(t, dir)); len(changed) > 0 {
				t.Errorf("sluice test changed or made %v beside the store", changed)
			}
		})
	}
}

// sluice test works on a store on a read-only file system, which stops
// root too, with the verdicts and headers it gives on a writable copy:
// it used to fail opening (creating) the lock file ("read-only file
// system").
func TestDryRunReadOnlyFilesystem(t *testing.T) {
	run := func(stdin string, args ...string) cliResult { return runCLI(t, stdin, args...) }
	for _, tc := range []struct {
		name string
		lock bool
	}{
		{"lock file", true},
		{"no lock file", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk := tinyDisk(t, 64<<20)
			db := readOnlyTestStore(t, disk, tc.lock)
			msgs := readOnlyTestMessages(t, t.TempDir())
			writable := readOnlyTestStore(t, t.TempDir(), tc.lock)
			want := dryRunReports(t, run, readOnlyTestConfig(t, t.TempDir(), writable), msgs)
			remountReadOnly(t, disk)
			before := dirFiles(t, disk)
			got := dryRunReports(t, run, readOnlyTestConfig(t, t.TempDir(), db), msgs)
			sameDecisions(t, got, want)
			if changed := changedFiles(before, dirFiles(t, disk)); len(changed) > 0 {
				t.Errorf("sluice test changed or made %v on the read-only disk", changed)
			}
		})
	}
}

// A user who may read the store and its lock file, but write neither
// them nor their directory (the files are root's, mode 0644), can run
// sluice test, with the verdicts and headers root gets; it used to fail
// opening the lock file for writing ("permission denied"). Run as
// nobody, which needs root to switch to.
func TestDryRunReadOnlyAsUserWhoCannotWrite(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the commands as another user")
	}
	runuser := lookRunuser(t)
	bin, dir, db := rootOwnedStore(t, 0o644)
	msgs := readOnlyTestMessages(t, dir)
	cfg := readOnlyTestConfig(t, dir, db)
	want := dryRunReports(t, func(stdin string, args ...string) cliResult { return runCLI(t, stdin, args...) }, cfg, msgs)
	before := dirFiles(t, filepath.Dir(db))
	got := dryRunReports(t, func(stdin string, args ...string) cliResult {
		return runAsNobody(t, runuser, bin, stdin, args...)
	}, cfg, msgs)
	sameDecisions(t, got, want)
	if changed := changedFiles(before, dirFiles(t, filepath.Dir(db))); len(changed) > 0 {
		t.Errorf("sluice test changed or made %v beside the store", changed)
	}
}

// A store file that is empty (made with install or touch for its owner
// and mode, before the daemon's first start) scores as the empty store
// the daemon would make of it, and stays empty: sluice test used to
// write the store into it, and create its lock file.
func TestDryRunReadOnlyEmptyStoreFile(t *testing.T) {
	state := t.TempDir()
	db := filepath.Join(state, "bayes.db")
	if err := os.WriteFile(db, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	cfg := dryRunConfig(t, "state_dir: "+state+"\nfilters:\n  - type: bayes\n")
	r := runCLI(t, dryRunMessage("bob@lab.example"), "test", "--config", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "not enough training: 0 spam and 0 ham learned") {
		t.Errorf("dry run on an empty store file: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if changed := changedFiles(map[string]string{"bayes.db": ""}, dirFiles(t, state)); len(changed) > 0 {
		t.Errorf("sluice test changed or made %v in state_dir", changed)
	}
}

// With a Redis store, sluice test only reads: no message is learned, and
// a stale n-gram model is not fitted again into the shared store, where
// it used to be once the refit interval came round during the run.
func TestDryRunReadOnlyRedis(t *testing.T) {
	srv := redistest.Start(t)
	url := redisURL(srv, "dryrun")
	redisTrainFixtures(t, url)
	extra := filepath.Join(t.TempDir(), "extra.eml")
	os.WriteFile(extra, []byte("From: ann@example.org\nSubject: the stale model\n\nlearned after the fit, with no refit\n"), 0o644)
	if r := runCLI(t, "", "train", "--db", url, "--ham", "--no-refit", extra); r.code != 0 {
		t.Fatalf("train --no-refit: %+v", r)
	}
	rdb := srv.Client(t)
	ctx := context.Background()
	snapshot := func() map[string]string {
		t.Helper()
		keys, err := rdb.Keys(ctx, "{dryrun}*").Result()
		if err != nil || len(keys) == 0 {
			t.Fatalf("keys: %v, %v", keys, err)
		}
		// Read by type, not with DUMP: a hash's serialisation follows
		// its table's order, which lookups may rehash.
		values := map[string]string{}
		for _, k := range keys {
			typ, err := rdb.Type(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			var v any
			switch typ {
			case "hash":
				v, err = rdb.HGetAll(ctx, k).Result()
			case "string":
				v, err = rdb.Get(ctx, k).Result()
			case "stream":
				v, err = rdb.XRange(ctx, k, "-", "+").Result()
			case "set":
				var m []string
				m, err = rdb.SMembers(ctx, k).Result()
				slices.Sort(m)
				v = m
			case "zset":
				v, err = rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
			default:
				t.Fatalf("key %s of type %s", k, typ)
			}
			if err != nil {
				t.Fatalf("read %s: %v", k, err)
			}
			values[k] = fmt.Sprint(v)
		}
		return values
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sluice.yml")
	text := `filters:
  - type: bayes
    options:
      store: redis
      redis:
        addrs: [` + srv.Addr + `]
        key_prefix: dryrun
      refit: 1ms
      autolearn:
        spam: 0.5
        ham: 0.5
`
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot()
	dryRunReports(t, func(stdin string, args ...string) cliResult { return runCLI(t, stdin, args...) }, cfg, readOnlyTestMessages(t, t.TempDir()))
	if changed := changedFiles(before, snapshot()); len(changed) > 0 {
		t.Errorf("sluice test changed or made the Redis keys %v", changed)
	}
}

// learnedBeforeMessages writes into dir the messages of
// TestDryRunAutolearnLearnedBefore and returns their paths: the spam
// and ham fixtures, and the spam fixture under another subject, a
// message no store has learned.
func learnedBeforeMessages(t *testing.T, dir string) (spam, ham, unknown string) {
	t.Helper()
	copyTo := func(src, dst string, edit func(string) string) string {
		data, err := os.ReadFile(fixture("check", src))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, dst)
		if err := os.WriteFile(p, []byte(edit(string(data))), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	same := func(s string) string { return s }
	spam = copyTo("spam.eml", "spam.eml", same)
	ham = copyTo("ham.eml", "ham.eml", same)
	unknown = copyTo("spam.eml", "unknown.eml", func(s string) string {
		return strings.Replace(s, "Subject: Congratulations, you are selected", "Subject: Never learned", 1)
	})
	return spam, ham, unknown
}

// learnedBeforeConfig writes a configuration whose bayes filter reads
// the store that store (YAML of the filter's options, a line each)
// names, and auto-learns both sides, and returns its path. The ham
// cutoff is raised: the fixture store, of 14 messages of each class,
// finds the ham fixture unsure once it has learned it as spam.
func learnedBeforeConfig(t *testing.T, store string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sluice.yml")
	text := `filters:
  - type: bayes
    options:
      ` + strings.ReplaceAll(store, "\n", "\n      ") + `
      ham_cutoff: 0.4
      autolearn:
        spam: 0.5
        ham: 0.5
`
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// sluice test says what the daemon's auto-learning would do with a
// message the store has learned already: nothing. A message learned as
// spam is not learned again, and one learned as spam that now scores as
// ham stays spam (auto-learning never moves a message); only a message
// the store does not know would be learned. The store is looked up
// under the digest the daemon records, and only read. sluice test used
// to report every message past an autolearn threshold as one it would
// learn, whatever the store held.
func TestDryRunAutolearnLearnedBefore(t *testing.T) {
	want := []testAutolearn{
		{Filter: "bayes", Class: "spam", LearnedAs: "spam"},
		{Filter: "bayes", Class: "ham", LearnedAs: "spam"},
		{Filter: "bayes", Class: "spam"},
	}
	wantText := []string{
		"autolearn: bayes already learned it as spam: nothing to learn (the daemon adds no autolearn note either)\n",
		"autolearn: bayes already learned it as spam: not moved to ham, auto-learning never moves a message (the daemon adds no autolearn note either)\n",
		"autolearn: bayes would learn it as spam (dry run: not learned, so the header has no autolearn note)\n",
	}
	// check runs sluice test on msgs with cfg, in JSON and in text, and
	// checks what each report says of auto-learning against want.
	check := func(t *testing.T, cfg string, msgs []string) {
		t.Helper()
		r := runCLI(t, "", append([]string{"test", "--config", cfg, "--format", "json", "--rcpt", "bob@lab.example"}, msgs...)...)
		if r.code != testExitReject {
			t.Fatalf("sluice test: exit %d, want %d\n%s%s", r.code, testExitReject, r.stdout, r.stderr)
		}
		var got [][]testAutolearn
		for line := range strings.Lines(r.stdout) {
			var rep testReport
			if err := json.Unmarshal([]byte(line), &rep); err != nil {
				t.Fatalf("report %q: %v", line, err)
			}
			got = append(got, rep.WouldAutolearn)
		}
		if len(got) != len(want) {
			t.Fatalf("%d reports, want %d:\n%s", len(got), len(want), r.stdout)
		}
		for i := range want {
			if !reflect.DeepEqual(got[i], []testAutolearn{want[i]}) {
				t.Errorf("%s: would_autolearn %+v, want %+v", filepath.Base(msgs[i]), got[i], want[i])
			}
		}
		for i, msg := range msgs {
			r := runCLI(t, "", "test", "--config", cfg, "--rcpt", "bob@lab.example", msg)
			if !strings.Contains(r.stdout, "\n"+wantText[i]) {
				t.Errorf("%s: text report lacks %q:\n%s%s", filepath.Base(msg), wantText[i], r.stdout, r.stderr)
			}
		}
	}

	t.Run("bolt", func(t *testing.T) {
		dir := t.TempDir()
		db := readOnlyTestStore(t, dir, true)
		spam, ham, unknown := learnedBeforeMessages(t, t.TempDir())
		for _, m := range []string{spam, ham} {
			if r := runCLI(t, "", "train", "--db", db, "--spam", "--no-refit", m); r.code != 0 {
				t.Fatalf("train: %+v", r)
			}
		}
		cfg := learnedBeforeConfig(t, "db: "+db)
		before := dirFiles(t, dir)
		check(t, cfg, []string{spam, ham, unknown})
		if changed := changedFiles(before, dirFiles(t, dir)); len(changed) > 0 {
			t.Errorf("sluice test changed or made %v beside the store", changed)
		}
	})

	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		url := redisURL(srv, "learnedbefore")
		redisTrainFixtures(t, url)
		spam, ham, unknown := learnedBeforeMessages(t, t.TempDir())
		for _, m := range []string{spam, ham} {
			if r := runCLI(t, "", "train", "--db", url, "--spam", "--no-refit", m); r.code != 0 {
				t.Fatalf("train: %+v", r)
			}
		}
		cfg := learnedBeforeConfig(t, "store: redis\nredis: {addrs: ["+srv.Addr+"], key_prefix: learnedbefore}")
		rdb := srv.Client(t)
		ctx := context.Background()
		// What sluice test could write: the counts and totals, the
		// learned messages, the change log.
		snapshot := func() string {
			var b strings.Builder
			for _, k := range []string{"{learnedbefore}:meta", "{learnedbefore}:tokens", "{learnedbefore}:digests", "{learnedbefore}:features"} {
				v, err := rdb.HGetAll(ctx, k).Result()
				if err != nil || (k != "{learnedbefore}:features" && len(v) == 0) {
					t.Fatalf("read %s: %d fields, %v", k, len(v), err)
				}
				fmt.Fprintf(&b, "%s=%v\n", k, v)
			}
			n, err := rdb.XLen(ctx, "{learnedbefore}:log").Result()
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "log=%d\n", n)
			return b.String()
		}
		before := snapshot()
		check(t, cfg, []string{spam, ham, unknown})
		if snapshot() != before {
			t.Error("sluice test changed the Redis store")
		}
	})
}
