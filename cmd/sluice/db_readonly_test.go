package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// remountReadOnly makes the tmpfs at dir (see tinyDisk) read-only: not
// even root may then create or write a file there.
func remountReadOnly(t *testing.T, dir string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s read-only: %v: %s", dir, err, out)
	}
}

// checkReadOnlyCommands runs the commands that only read the store at db
// through run and checks that they work; then that train, which writes,
// fails with an error that names the lock file.
func checkReadOnlyCommands(t *testing.T, db string, run func(stdin string, args ...string) cliResult) {
	t.Helper()
	if r := run("", "db", "stats", "--db", db); r.code != 0 || !strings.Contains(r.stdout, "messages:  14 spam, 14 ham\n") {
		t.Errorf("db stats: %+v", r)
	}
	if r := run("", "db", "dump", "--db", db); r.code != 0 || !strings.Contains(r.stdout, "casino") {
		t.Errorf("db dump: exit status %d, stderr %q", r.code, r.stderr)
	}
	if r := run("", "db", "export", "--db", db, "-"); r.code != 0 || !strings.HasPrefix(r.stdout, "sluice-classifier-export") {
		t.Errorf("db export: exit status %d, stderr %q", r.code, r.stderr)
	}
	msg := "From: a@example.com\nSubject: casino offer\n\ncasino jackpot winner\n"
	if r := run(msg, "classify", "--db", db); r.code == statusError || !strings.HasPrefix(r.stdout, "-: ") {
		t.Errorf("classify: %+v", r)
	}
	r := run(msg, "train", "--spam", "--db", db)
	if r.code == 0 || !strings.Contains(r.stderr, db+".lock") {
		t.Errorf("train on a store it may not write: %+v, want an error naming the lock file", r)
	}
}

// The commands that only read the store (classify, db stats, db dump,
// db export) work on a store they may not write: one on a read-only
// file system here, which stops root too. They used to open the lock
// file beside the store read-write, creating it if missing, and failed
// with "open store lock: ... read-only file system". With the lock file
// there, they take it for reading, so that writers still get their
// turn; without it (a store copied without one), they read without it.
// A command that writes still fails, naming the lock file.
func TestReadOnlyCommandsOnReadOnlyFilesystem(t *testing.T) {
	src := trainedDB(t)
	for _, tc := range []struct {
		name string
		lock bool
	}{
		{"lock file", true},
		{"no lock file", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk := tinyDisk(t, 64<<20)
			db := filepath.Join(disk, "bayes.db")
			data, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(db, data, 0o640); err != nil {
				t.Fatal(err)
			}
			if tc.lock {
				if err := os.WriteFile(db+".lock", nil, 0o640); err != nil {
					t.Fatal(err)
				}
			}
			remountReadOnly(t, disk)
			checkReadOnlyCommands(t, db, func(stdin string, args ...string) cliResult { return runCLI(t, stdin, args...) })
			names, _ := os.ReadDir(disk)
			if want := map[bool]int{true: 2, false: 1}[tc.lock]; len(names) != want {
				t.Errorf("%d files beside the store, want %d", len(names), want)
			}
		})
	}
}

// A user who may read the store and its lock file, but write neither
// them nor their directory (the files are root's, mode 0644), can run
// the commands that only read the store; train fails naming the lock
// file. Run as nobody, which needs root to switch to.
func TestReadOnlyCommandsAsUserWhoCannotWrite(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the commands as another user")
	}
	runuser := lookRunuser(t)
	bin, _, db := rootOwnedStore(t, 0o644)
	checkReadOnlyCommands(t, db, func(stdin string, args ...string) cliResult {
		return runAsNobody(t, runuser, bin, stdin, args...)
	})
}

// runAsNobody runs the sluice binary bin as the user nobody.
func runAsNobody(t *testing.T, runuser, bin, stdin string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(runuser, append([]string{"-u", "nobody", "--", bin}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return cliResult{stdout: out.String(), stderr: errb.String(), code: code}
}

// docs/bayes.md, "Getting started", warns that a store the first train
// made as root with the usual umask (files 0640) cannot be opened by the
// daemon's user, and quotes what config check and the daemon then say,
// for the administrator to recognise and grep for. Both quotes are what
// the commands print, run as nobody on such a store.
func TestDocStoreMadeByRootErrors(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the commands as another user")
	}
	runuser := lookRunuser(t)
	doc := strings.Join(strings.Fields(readDoc(t, "docs/bayes.md")), " ")
	m := regexp.MustCompile("`config check` then reports `([^`]+)`, the daemon `([^`]+)`").FindStringSubmatch(doc)
	if m == nil {
		t.Fatal("docs/bayes.md no longer quotes what config check and the daemon say about a store they cannot open")
	}
	// What "sluice train" as root with umask 022 leaves: 0660 less 022.
	bin, dir, _ := rootOwnedStore(t, 0o640)
	// A spill directory nobody may write in, as /tmp is: the store is
	// what the daemon must fail on, and a directory it cannot spill
	// bodies into stops it first. Sticky as /tmp is (os.Chmod takes the
	// bit as os.ModeSticky, not as the 01000 of chmod(1)): one that
	// every user may write without it is refused.
	spill := t.TempDir()
	if err := os.Chmod(spill, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "sluice.yml")
	text := "listen:\n  - address: inet:127.0.0.1:0\nmetrics:\n  listen: \"\"\nstate_dir: " + dir +
		"\nbody:\n  temp_dir: " + spill + "\nfilters:\n  - type: bayes\n"
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	// The quotes elide the path with "...".
	matches := func(quote, got string) bool {
		re := regexp.QuoteMeta(quote)
		re = strings.ReplaceAll(re, regexp.QuoteMeta("..."), ".*")
		return regexp.MustCompile(re).MatchString(got)
	}
	check := runAsNobody(t, runuser, bin, "", "config", "check", cfg)
	if check.code != 1 || !matches(m[1], check.stderr) {
		t.Errorf("config check as nobody: %+v; docs/bayes.md quotes %q", check, m[1])
	}
	serve := runAsNobody(t, runuser, bin, "", "serve", "--config", cfg)
	if serve.code != 1 || !matches(m[2], serve.stderr) {
		t.Errorf("serve as nobody: %+v; docs/bayes.md quotes %q", serve, m[2])
	}
}

// rootOwnedStore builds the binary and trains a store on the fixtures in
// a directory of its own, as root, and returns the binary, the directory
// and the store. The binary's directory and the store's are the test's,
// under one parent: all readable by nobody, writable by root alone; the
// store and its lock file get mode.
func rootOwnedStore(t *testing.T, mode os.FileMode) (bin, dir, db string) {
	t.Helper()
	bin = redisBuildSluice(t)
	dir = t.TempDir()
	db = filepath.Join(dir, "bayes.db")
	trainFixtures(t, db)
	for _, p := range []string{filepath.Dir(dir), filepath.Dir(bin), dir, bin} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{db, db + ".lock"} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	return bin, dir, db
}

// lookRunuser returns the path of runuser(1), from util-linux, which lives
// in /usr/sbin, a directory a test's PATH may lack. Without it the test is
// skipped, or fails under CI=true, where a test must never pass by
// skipping.
func lookRunuser(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("runuser"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/runuser"); err == nil {
		return "/usr/sbin/runuser"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("required under CI=true: runuser (util-linux)")
	}
	t.Skip("no runuser")
	return ""
}
