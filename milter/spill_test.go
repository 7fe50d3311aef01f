package milter_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/milter"
)

// bodyWatcher reports, for each message, how much body it could read and
// whether the body was marked broken, and tags delivered mail.
type bodyWatcher struct {
	mu   sync.Mutex
	seen []bodySeen
}

type bodySeen struct {
	read    int64
	readErr error
	broken  bool
}

func (*bodyWatcher) Name() string { return "bodywatch" }
func (*bodyWatcher) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageEOM), Body: true}
}
func (w *bodyWatcher) Check(_ context.Context, _ filters.Stage, m *filters.Message) (filters.Verdict, error) {
	n, err := io.Copy(io.Discard, m.Body.Reader())
	w.mu.Lock()
	w.seen = append(w.seen, bodySeen{read: n, readErr: err, broken: m.Body.Err() != nil})
	w.mu.Unlock()
	return filters.Verdict{Edits: []filters.HeaderEdit{{Kind: filters.AddHeader, Name: "X-Seen", Value: "yes"}}}, nil
}

// mountTmpfs mounts a tmpfs of the given size on a fresh directory and
// unmounts it when the test ends. Without the privilege to mount, the test
// is skipped, except under CI, where that is a failure.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount tmpfs: %v", err)
		}
		t.Skipf("mount tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() {
		// Detach, so that a leaked spill file cannot keep the mount behind.
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func freeBytes(t *testing.T, dir string) uint64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Bfree * uint64(st.Bsize)
}

// A body too big for memory and for the spill directory's file system:
// the message is still delivered with its edits (the MTA holds the whole
// message; sluice only loses its own copy), the filter is told the body
// is incomplete, the space is given back, and the next message of the
// same connection is whole again.
func TestBodySpillOntoFullDisk(t *testing.T) {
	dir := mountTmpfs(t, "64k")
	free := freeBytes(t, dir)
	w := &bodyWatcher{}
	_, addr := startServer(t, milter.Config{Pipeline: pipeline(w), BodyMemoryLimit: 1024, TempDir: dir})
	s := dial(t, addr)
	must(t)(s.Conn("client.example", gomilter.FamilyInet, 4321, "192.0.2.7"))
	must(t)(s.Helo("client.example"))

	big := strings.Repeat("0123456789abcdef\r\n", 256<<10/18) // 256 kB, four times the file system
	for i, body := range []string{big, "small\r\n"} {
		mods, act := sendMessage(t, s, "a@example.org", "b@example.org", [][2]string{{"Subject", "hi"}}, body)
		if act.Code != gomilter.ActAccept {
			t.Fatalf("message %d: action %c, want accept", i, act.Code)
		}
		if len(mods) != 1 || mods[0].HeaderName != "X-Seen" {
			t.Errorf("message %d: modifications %+v, want the filter's header", i, mods)
		}
	}
	if got := freeBytes(t, dir); got != free {
		t.Errorf("spill file system has %d bytes free after the messages, %d before", got, free)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.seen) != 2 {
		t.Fatalf("filter saw %d messages: %+v", len(w.seen), w.seen)
	}
	if got := w.seen[0]; got.readErr != nil || !got.broken || got.read == 0 || got.read >= int64(len(big)) {
		t.Errorf("big message: filter saw %+v, want a readable partial body marked broken", got)
	}
	if got, want := w.seen[1], (bodySeen{read: 7}); got != want {
		t.Errorf("next message: filter saw %+v, want %+v", got, want)
	}
}

// The spill directory removed while the daemon runs (a cleaner of old
// files in /var/tmp, an rm) is made again, mode 0700, by the next body
// that needs it, as at start: every message larger than the memory limit
// would otherwise reach the filters with its body cut at the limit, and
// their failure policy, until a restart.
func TestBodySpillDirectoryRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spill")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	w := &bodyWatcher{}
	_, addr := startServer(t, milter.Config{Pipeline: pipeline(w), BodyMemoryLimit: 1024, TempDir: dir})
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	s := dial(t, addr)
	must(t)(s.Conn("client.example", gomilter.FamilyInet, 4321, "192.0.2.7"))
	big := strings.Repeat("0123456789abcdef\r\n", 1000)
	if _, act := sendMessage(t, s, "a@example.org", "b@example.org", [][2]string{{"Subject", "hi"}}, big); act.Code != gomilter.ActAccept {
		t.Fatalf("action %c, want accept", act.Code)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if want := (bodySeen{read: int64(len(big))}); len(w.seen) != 1 || w.seen[0] != want {
		t.Errorf("filter saw %+v, want %+v", w.seen, want)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("spill directory after the message: %v, %v; want it made again, mode 0700", fi, err)
	}
}

// The spill directory removed while the daemon runs and made again by
// another local user before the next large message (in /tmp anyone may)
// is not written in: the body breaks there, the error says whose the
// directory is, and the message is not lost (the MTA holds it whole) nor
// passed off as filtered whole: the filters see the body marked
// incomplete, and their failure policy decides.
func TestBodySpillDirectoryTakenOver(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spill")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	w := &bodyWatcher{}
	addr, logs := startServerLogged(t, milter.Config{Pipeline: pipeline(w), BodyMemoryLimit: 1024, TempDir: dir})
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chown: %v", err)
		}
		t.Skipf("chown (needs root): %v", err)
	}
	s := dial(t, addr)
	must(t)(s.Conn("client.example", gomilter.FamilyInet, 4321, "192.0.2.7"))
	big := strings.Repeat("0123456789abcdef\r\n", 1000)
	mods, act := sendMessage(t, s, "a@example.org", "b@example.org", [][2]string{{"Subject", "hi"}}, big)
	if act.Code != gomilter.ActAccept || len(mods) != 1 {
		t.Fatalf("action %c, modifications %+v; want the filter's verdict", act.Code, mods)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.seen) != 1 || !w.seen[0].broken || w.seen[0].read >= int64(len(big)) {
		t.Errorf("filter saw %+v, want a partial body marked broken", w.seen)
	}
	if l := logs.String(); !strings.Contains(l, "storing message body") || !strings.Contains(l, "owned by uid 65534") {
		t.Errorf("log does not say why the body was not spilled:\n%s", l)
	}
}

// A body that cannot be stored (the spill directory cannot be made) is
// still reported with the size the MTA sent in the message's log line
// ("size", documented as the body bytes received), not with the part
// kept in memory: a 50 MB message on a full disk must not read as a
// 1 MiB one when an administrator looks for it.
func TestBodySpillFailureReportsSizeReceived(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gone", "spill") // its parent is missing too: not made again
	sums := &summaries{}
	w := &bodyWatcher{}
	_, addr := startServerObserved(t, milter.Config{Pipeline: pipeline(w), BodyMemoryLimit: 1024, TempDir: dir}, sums)
	s := dial(t, addr)
	must(t)(s.Conn("client.example", gomilter.FamilyInet, 4321, "192.0.2.7"))
	big := strings.Repeat("0123456789abcdef\r\n", 6000) // 108 kB: two body chunks
	if _, act := sendMessage(t, s, "a@example.org", "b@example.org", [][2]string{{"Subject", "hi"}}, big); act.Code != gomilter.ActAccept {
		t.Fatalf("action %c, want accept", act.Code)
	}
	sums.wait()
	sums.mu.Lock()
	defer sums.mu.Unlock()
	if len(sums.sums) != 1 || sums.sums[0].BodySize != int64(len(big)) {
		t.Errorf("summaries %+v, want one with BodySize %d", sums.sums, len(big))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.seen) != 1 || !w.seen[0].broken {
		t.Errorf("filter saw %+v, want a body marked broken", w.seen)
	}
}
