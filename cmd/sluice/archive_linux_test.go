package main

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/sluice-mail/sluice/classifier"
)

// A reader that may read an archive but not take its locks (a group with
// read access) still gets its records from archive show, with a warning
// that they were read without the locks. Run as root, the command runs
// with the file-system uid of nobody (setfsuid(2), this thread only).
func TestArchiveShowWithoutWriteAccess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to act as another user")
	}
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src := filepath.Join(dir, "spam.mbox")
	rec := "From a Thu Jan  1 00:00:00 1970\nX-Sluice-Queue-ID: A\n\nwhole\n\n"
	if err := os.WriteFile(src, []byte(rec), 0o644); err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread()
	const nobody = 65534
	prev, _, _ := syscall.RawSyscall(syscall.SYS_SETFSUID, nobody, 0, 0)
	r := runCLI(t, "", "archive", "show", "--queue-id", "A", src)
	syscall.RawSyscall(syscall.SYS_SETFSUID, prev, 0, 0)
	runtime.UnlockOSThread()
	if r.code != 0 || r.stdout != rec || !strings.Contains(r.stderr, "without its dot-lock") {
		t.Errorf("show as a reader without write access: %+v", r)
	}
	if _, err := os.Stat(src + ".lock"); err == nil {
		t.Error("a dot-lock was left behind")
	}
}

// asNobody runs fn with the file-system uid of nobody (setfsuid(2), this
// thread only), in dir made searchable by others: a reader that may read
// an archive but not write to it. Only root can do that.
func asNobody(t *testing.T, dir string, fn func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to act as another user")
	}
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const nobody = 65534
	prev, _, _ := syscall.RawSyscall(syscall.SYS_SETFSUID, nobody, 0, 0)
	defer syscall.RawSyscall(syscall.SYS_SETFSUID, prev, 0, 0)
	fn()
}

// A reader who cannot make the dot-lock still takes the kernel locks:
// a record the daemon is appending (it holds them) is waited for, not
// shown cut short.
func TestArchiveShowWithoutWriteAccessWaitsForWriter(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "spam.mbox")
	good := "From a Thu Jan  1 00:00:00 1970\nX-Sluice-Queue-ID: A\n\nwhole\n\n"
	head := "From b Thu Jan  1 00:00:00 1970\nX-Sluice-Queue-ID: B\n\nthe first li"
	rest := "ne\n\n"
	// The writer, in the middle of its append, holds flock(2) as sluice
	// does.
	done := appendingWriter(t, src, good+head, rest, 0o644)
	var r cliResult
	asNobody(t, dir, func() {
		r = runCLI(t, "", "archive", "show", "--queue-id", "A", "--queue-id", "B", src)
	})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r.code != 0 || r.stdout != good+head+rest || !strings.Contains(r.stderr, "without its dot-lock") {
		t.Errorf("show as a reader without write access, during an append: %+v", r)
	}
}

// A reader who cannot cut off the half record of a daemon that died
// while appending does not show it either: it stops where the dead
// writer's dot-lock says the mbox ended.
func TestArchiveShowWithoutWriteAccessSkipsHalfWrittenRecord(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "spam.mbox")
	good := deadWriterMbox(t, src)
	for _, p := range []string{src, src + ".lock"} {
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var r cliResult
	asNobody(t, dir, func() {
		r = runCLI(t, "", "archive", "show", "--queue-id", "A", "--queue-id", "B", src)
	})
	if r.code != 0 || r.stdout != good || !strings.Contains(r.stderr, "without its dot-lock") {
		t.Errorf("show as a reader without write access, after a dead writer: %+v; want only record A", r)
	}
}

// Readers share the mbox: one that holds a read lock (Dovecot reads an
// mbox under an fcntl read lock, others under a shared flock) does not
// keep archive show waiting.
func TestArchiveShowBesideAnotherReader(t *testing.T) {
	src := filepath.Join(t.TempDir(), "spam.mbox")
	rec := "From a Thu Jan  1 00:00:00 1970\nX-Sluice-Queue-ID: A\n\nwhole\n\n"
	if err := os.WriteFile(src, []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	lk := syscall.Flock_t{Type: syscall.F_RDLCK}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := runCLI(t, "", "archive", "show", "--queue-id", "A", src)
	if r.code != 0 || r.stdout != rec || r.stderr != "" {
		t.Errorf("show beside another reader: %+v", r)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("show waited %s for another reader", d)
	}
}

// sluice config check creates nothing: run as root (as it often is, after
// every edit) it used to create a missing token store and its lock file
// owned by root, which the daemon's user could then not open, so the
// next start or reload failed. Run as the daemon's user it still finds a
// store that user could not open or create.
func TestConfigCheckCreatesNoStore(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "sluice.yml")
	text := "state_dir: " + state + "\nmetrics:\n  listen: \"\"\nfilters:\n  - type: bayes\n"
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	check := func() cliResult { return runCLI(t, "", "--config", cfg, "config", "check") }

	if r := check(); r.code != 0 {
		t.Fatalf("config check: %+v", r)
	}
	if entries, _ := os.ReadDir(state); len(entries) != 0 {
		t.Errorf("config check left %d files in the state directory: %v", len(entries), entries)
	}

	// As another user, a store it could not create is an error.
	var r cliResult
	asNobody(t, dir, func() { r = check() })
	if r.code == 0 || !strings.Contains(r.stderr, "bayes.db cannot be created") {
		t.Errorf("config check as a user who may not write the state directory: %+v", r)
	}
	// Nor could it open the one root made.
	db := filepath.Join(state, "bayes.db")
	st, err := classifier.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if err := os.Chmod(state, 0o777); err != nil {
		t.Fatal(err)
	}
	asNobody(t, dir, func() { r = check() })
	if r.code == 0 || !strings.Contains(r.stderr, "permission denied") {
		t.Errorf("config check as a user who may not open the store: %+v", r)
	}
}

// docs/bayes.md quotes what "config check", run as the daemon's user,
// reports for a store root made with the first "sluice train": it must be
// what the command prints, which is not the daemon's own error (see
// TestDocStoreMadeByRootErrors), since config check opens no store.
func TestDocConfigCheckOnAStoreOfRoot(t *testing.T) {
	doc := strings.Join(strings.Fields(readDoc(t, "docs/bayes.md")), " ")
	m := regexp.MustCompile("`config check` then reports `([^`]+)`").FindStringSubmatch(doc)
	if m == nil {
		t.Fatal("docs/bayes.md: no message quoted for config check on a store root made")
	}
	quoted := regexp.MustCompile(strings.ReplaceAll(regexp.QuoteMeta(m[1]), `\.\.\.`, ".*"))

	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(state, 0o777); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "sluice.yml")
	text := "state_dir: " + state + "\nmetrics:\n  listen: \"\"\nfilters:\n  - type: bayes\n"
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	// The first train, as root.
	st, err := classifier.Open(filepath.Join(state, "bayes.db"))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	var r cliResult
	asNobody(t, dir, func() { r = runCLI(t, "", "--config", cfg, "config", "check") })
	if r.code == 0 || !quoted.MatchString(r.stderr) {
		t.Errorf("config check as the daemon's user: %+v\ndocs/bayes.md says it reports %q", r, m[1])
	}
}

// A user training from a corpus of mboxes they may not write to is warned
// once a run that the dot-locks could not be taken, not once a mailbox.
func TestTrainWarnsOnceWithoutDotLocks(t *testing.T) {
	dir := t.TempDir()
	corpus := filepath.Join(dir, "corpus")
	if err := os.Mkdir(corpus, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a.mbox", "b.mbox", "c.mbox"} {
		rec := "From x Thu Jan  1 00:00:00 1970\nSubject: " + name + "\n\nbody of " + name + "\n\n"
		if err := os.WriteFile(filepath.Join(corpus, name), []byte(rec), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(out, 0o777); err != nil {
		t.Fatal(err)
	}
	var r cliResult
	asNobody(t, dir, func() {
		r = runCLI(t, "", "train", "--db", filepath.Join(out, "bayes.db"), "--spam", corpus)
	})
	if r.code != 0 || !strings.HasPrefix(r.stdout, "3 messages: 3 learned as spam") {
		t.Fatalf("train as a user who may not write the corpus: %+v", r)
	}
	if n := strings.Count(r.stderr, "without its dot-lock"); n != 1 {
		t.Errorf("%d warnings for 3 mboxes, want 1:\n%s", n, r.stderr)
	}
}

// openPty returns both ends of a new pseudo-terminal: what is written to
// the second (the terminal) is read from the first.
func openPty(t *testing.T) (master, term *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Skipf("unlockpt: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Skipf("ptsname: %v", e)
	}
	term, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open the terminal: %v", err)
	}
	t.Cleanup(func() { term.Close() })
	// Raw: no echo, no line-end translation, so what is read is what
	// was written.
	var tio syscall.Termios
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, term.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&tio))); e != 0 {
		t.Fatal(e)
	}
	tio.Oflag &^= syscall.OPOST
	tio.Lflag &^= syscall.ECHO | syscall.ICANON
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, term.Fd(), syscall.TCSETS, uintptr(unsafe.Pointer(&tio))); e != 0 {
		t.Fatal(e)
	}
	return master, term
}

// archive show prints records as stored, for a pipe into classify or
// train; on root's terminal the escape sequences of a hostile message
// would be obeyed (retitling the window, redefining keys, faking output),
// so there they are shown escaped.
func TestArchiveShowOnTerminalEscapes(t *testing.T) {
	src := filepath.Join(t.TempDir(), "a.mbox")
	rec := "From a@b Thu Jan  1 00:00:00 2025\nX-Sluice-Queue-ID: Q1\nSubject: \x1b]0;owned\x07hi\x9b2J\tx\n\nbo\rdy\x00\n"
	os.WriteFile(src, []byte(rec+"\n"), 0o644)

	master, term := openPty(t)
	root := newRootCmd(testRegistry())
	root.SetOut(term)
	root.SetErr(term)
	root.SetArgs([]string{"archive", "show", "--queue-id", "Q1", src})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	want := "From a@b Thu Jan  1 00:00:00 2025\nX-Sluice-Queue-ID: Q1\nSubject: \\x1b]0;owned\\x07hi\\x9b2J\tx\n\nbo\\x0ddy\\x00\n\n"
	// With the terminal closed, the master reads what is left, then
	// fails (EIO).
	term.Close()
	var got []byte
	for {
		buf := make([]byte, 4096)
		n, err := master.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil || n == 0 {
			break
		}
	}
	if string(got) != want {
		t.Errorf("on a terminal:\n%q\nwant\n%q", got, want)
	}

	// Piped, the record is printed byte for byte.
	if r := runCLI(t, "", "archive", "show", "--queue-id", "Q1", src); r.stdout != rec+"\n" {
		t.Errorf("piped:\n%q\nwant\n%q", r.stdout, rec+"\n")
	}
}

// The archive's directories below its top directory belong to the
// daemon's user, who could replace archive/lab.example with a link to
// /etc or /root. Root's "archive move --to VERDICT" must not create or
// append to the recipient's mbox where such a link leads, nor "archive
// show" and "archive move" read or rewrite an mbox from there; a link
// that root owns is followed.
func TestArchiveMoveRefusesUntrustedDirectoryLink(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a link another user owns")
	}
	const nobody = 65534
	dir := t.TempDir()
	top := filepath.Join(dir, "archive")
	cfg := filepath.Join(dir, "sluice.yml")
	if err := os.WriteFile(cfg, []byte("state_dir: "+dir+"\nfilters:\n  - type: archive\n    options:\n      targets:\n        spam: archive/{rcpt_domain}/spam.mbox\n        ham: archive/{rcpt_domain}/ham.mbox\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(top, "spam.example"), 0o750); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(top, "spam.example", "spam.mbox")
	rec := "From a@example.org Thu Jan  1 00:00:00 2026\nX-Sluice-Queue-ID: Q1\nX-Sluice-Envelope-To: bob@lab.example\nX-Sluice-Verdict: spam; action=accept\nSubject: hi\n\nbody\n\n"
	if err := os.WriteFile(src, []byte(rec), 0o640); err != nil {
		t.Fatal(err)
	}
	victim := t.TempDir()
	link := filepath.Join(top, "lab.example")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, nobody, nobody); err != nil {
		t.Fatal(err)
	}

	r := runCLI(t, "", "--config", cfg, "archive", "move", "--queue-id", "Q1", "--to", "ham", src)
	if r.code != 1 || !strings.Contains(r.stderr, link+": a symbolic link owned by uid 65534") {
		t.Errorf("move into a directory behind another user's link: %+v; want an error naming %s", r, link)
	}
	if ents, _ := os.ReadDir(victim); len(ents) != 0 {
		t.Errorf("created at the link's target: %v", ents)
	}
	if got := string(mustRead(t, src)); got != rec {
		t.Errorf("the source after a refused move: %q", got)
	}

	// An mbox behind such a link is neither shown nor moved from.
	secret := filepath.Join(victim, "spam.mbox")
	if err := os.WriteFile(secret, []byte(strings.Replace(rec, "body", "secret", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	behind := filepath.Join(link, "spam.mbox")
	r = runCLI(t, "", "--config", cfg, "archive", "show", "--queue-id", "Q1", behind)
	if r.code != 1 || strings.Contains(r.stdout, "secret") || !strings.Contains(r.stderr, link+": a symbolic link owned by uid 65534") {
		t.Errorf("show behind another user's link: %+v", r)
	}
	// Named relative to the working directory, it is judged the same.
	t.Chdir(dir)
	r = runCLI(t, "", "--config", cfg, "archive", "show", "--queue-id", "Q1", filepath.Join("archive", "lab.example", "spam.mbox"))
	if r.code != 1 || strings.Contains(r.stdout, "secret") {
		t.Errorf("show behind another user's link, by a relative path: %+v", r)
	}
	r = runCLI(t, "", "--config", cfg, "archive", "move", "--queue-id", "Q1", "--to", filepath.Join(dir, "out.mbox"), behind)
	if r.code != 1 || !strings.Contains(r.stderr, link+": a symbolic link owned by uid 65534") {
		t.Errorf("move from behind another user's link: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "out.mbox")); err == nil {
		t.Error("a record behind another user's link was copied")
	}
	os.Remove(secret)

	// root's own link, to an archive on another disk, is followed.
	if err := os.Lchown(link, 0, 0); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, "", "--config", cfg, "archive", "move", "--queue-id", "Q1", "--to", "ham", src)
	if r.code != 0 {
		t.Fatalf("move through root's own link: %+v", r)
	}
	if got := string(mustRead(t, filepath.Join(victim, "ham.mbox"))); got != rec {
		t.Errorf("the mbox behind root's link: %q", got)
	}
}
