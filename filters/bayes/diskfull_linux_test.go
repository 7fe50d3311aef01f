package bayes_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/bayes"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory and returns
// it; it is unmounted when the test ends. Under CI (run as root) failing
// to is a test failure; elsewhere the test is skipped.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0755"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount tmpfs: %v", err)
		}
		t.Skipf("mount tmpfs: %v (run as root, or with CI=true to make this a failure)", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes the file name in dir until the file system is full,
// and returns its path.
func fillDisk(t *testing.T, dir, name string) string {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			return f.Name()
		}
	}
}

// autolearnOnTmpfs opens the filter, tagging and auto-learning, on a
// trained bbolt store of its own tmpfs of 16 MB, which the test can then
// fill; the filter logs to log, reports to obs and has the options extra
// besides. It returns the filter, closed when the test ends (before the
// tmpfs is unmounted), and the tmpfs's directory.
func autolearnOnTmpfs(t *testing.T, log *lockedBuffer, obs *recorder, extra string) (*bayes.Filter, string) {
	t.Helper()
	dir := mountTmpfs(t, "16m")
	db := filepath.Join(dir, "bayes.db")
	trainedStoreAt(t, db).Close()

	env := filters.Env{Name: "bayes", Logger: slog.New(slog.NewTextHandler(log, nil)), StateDir: t.TempDir(), Observer: obs}
	f, err := bayes.Open(env, fixtureOptions(t, "db: "+db+"\nspam: {action: tag}\nautolearn: {spam: 0.9, ham: 0.1}"+extra), "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, dir
}

// numbered makes m another message (for the store's digests) with a
// number in its subject and queue id, and returns it.
func numbered(m *filters.Message, n int) *filters.Message {
	m.QueueID = fmt.Sprintf("%s%d", m.QueueID, n)
	for i, h := range m.Headers {
		if h.Name == "Subject" {
			m.Headers[i].Value = fmt.Sprintf("%s %d", h.Value, n)
		}
	}
	return m
}

// A bbolt store whose disk fills up while the filter runs: every message
// still gets its verdict and header in time (classifying only reads);
// with a little room left, far less than the n-gram model's 4 MB,
// messages are learned; with none, auto-learning fails with a warning
// naming the disk's error, is not claimed in the header or counted
// (sluice_bayes_autolearned_total), and the store keeps what it had; once
// there is room again auto-learning works again, the messages it failed
// on included.
func TestAutolearnOnFullDisk(t *testing.T) {
	var log lockedBuffer
	obs := &recorder{}
	// The store opened as the daemon opens it (fsync on), measured often
	// so that its stats run beside the messages.
	f, dir := autolearnOnTmpfs(t, &log, obs, "\nstats_interval: 10ms")

	// check runs the filter at end of message as the pipeline would, with
	// a deadline, and returns the header, which must carry the verdict.
	check := func(m *filters.Message, want string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		v, err := f.Check(ctx, filters.StageEOM, m)
		if took := time.Since(start); took > 5*time.Second {
			return "", fmt.Errorf("message %s took %s", m.QueueID, took)
		}
		if err != nil {
			return "", fmt.Errorf("message %s: %w", m.QueueID, err)
		}
		h := added(v, "X-Sluice-Bayes")
		if v.Action != filters.Continue || !strings.HasPrefix(h, want+", spamicity=") {
			return h, fmt.Errorf("message %s: action %s, header %q, want %s", m.QueueID, v.Action, h, want)
		}
		return h, nil
	}
	learned := func(h string) bool { return strings.Contains(h, ", autolearn=") }
	totals := func() (spam, ham uint32) {
		st, err := f.Classifier().Store().Stats(context.Background())
		if err != nil {
			t.Fatalf("stats of the store: %v", err)
		}
		return st.Spam, st.Ham
	}

	if h, err := check(numbered(spamMessage(), 0), "Spam"); err != nil || !learned(h) {
		t.Fatalf("before the disk filled: %q, %v", h, err)
	}

	// Messages keep coming while the disk fills; the ones already learned
	// need no write of theirs, but still take the store's write path.
	stop := make(chan struct{})
	var background sync.WaitGroup
	var backgroundErr atomic.Value
	var backgroundN atomic.Int64
	background.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := check(numbered(spamMessage(), 0), "Spam"); err != nil {
				backgroundErr.CompareAndSwap(nil, err)
				return
			}
			backgroundN.Add(1)
		}
	})
	stopBackground := sync.OnceFunc(func() {
		close(stop)
		background.Wait()
	})
	t.Cleanup(stopBackground) // before the filter closes

	// A little room, far less than the store's 4 MB n-gram model: enough
	// for the pages a message's tokens take, and so for learning again.
	filler := fillDisk(t, dir, "filler")
	fi, err := os.Stat(filler)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filler, fi.Size()-256<<10); err != nil {
		t.Fatal(err)
	}
	n := 1
	for ; n <= 20; n++ {
		if h, err := check(numbered(spamMessage(), n), "Spam"); err != nil || !learned(h) {
			t.Fatalf("256 KiB free: %q, %v\n%s", h, err, log.String())
		}
	}

	// No room at all. bbolt writes into free pages of its file first,
	// which need no room: a few messages may still be learned before one
	// fails. The store must count exactly those learned.
	filler2 := fillDisk(t, dir, "filler2")
	spam0, ham0 := totals()
	var failed []*filters.Message
	learnedSpam, learnedHam := 0, 0
	for first := n; n < first+60 && len(failed) < 4; n++ {
		m, want := numbered(spamMessage(), n), "Spam"
		if n%2 == 0 {
			m, want = numbered(hamMessage(), n), "Ham"
		}
		h, err := check(m, want)
		if err != nil {
			t.Fatalf("disk full: %v", err)
		}
		switch {
		case !learned(h):
			failed = append(failed, m)
		case want == "Spam":
			learnedSpam++
		default:
			learnedHam++
		}
	}
	if len(failed) == 0 {
		t.Fatalf("disk full: %d messages auto-learned, none failed; the test did not fill it", learnedSpam+learnedHam)
	}
	if !strings.Contains(log.String(), "bayes: auto-learning failed") || !strings.Contains(log.String(), "no space left on device") {
		t.Errorf("the failed auto-learning is not logged with the disk's error:\n%s", log.String())
	}
	if spam, ham := totals(); spam != spam0+uint32(learnedSpam) || ham != ham0+uint32(learnedHam) {
		t.Errorf("disk full: %d spam and %d ham learned, %d failed, but the store went from %d spam and %d ham to %d and %d",
			learnedSpam, learnedHam, len(failed), spam0, ham0, spam, ham)
	}
	t.Logf("disk full: %d learned, %d failed", learnedSpam+learnedHam, len(failed))

	for _, name := range []string{filler, filler2} {
		if err := os.Remove(name); err != nil {
			t.Fatal(err)
		}
	}
	// Room again: the messages that failed are learned now (their failed
	// attempt left no trace of them in the store), and so are new ones.
	for _, m := range append(failed, numbered(spamMessage(), 100)) {
		want := "Spam"
		if strings.HasPrefix(m.QueueID, "4Q2HAM") {
			want = "Ham"
		}
		h, err := check(m, want)
		if err != nil {
			t.Fatalf("after room was made: %v", err)
		}
		if !learned(h) {
			t.Errorf("after room was made, message %s not auto-learned: %q\n%s", m.QueueID, h, log.String())
		}
	}
	stopBackground()
	if err, _ := backgroundErr.Load().(error); err != nil {
		t.Errorf("a message classified while the disk filled: %v", err)
	}
	obs.mu.Lock()
	counted := obs.autolearned["spam"] + obs.autolearned["ham"]
	obs.mu.Unlock()
	if want := 1 + 20 + learnedSpam + learnedHam + len(failed) + 1; counted != want {
		t.Errorf("auto-learned messages counted %d, want %d", counted, want)
	}
	t.Logf("%d messages classified beside them", backgroundN.Load())
}

// Auto-learns that fail because the disk is full are counted, by class,
// in BayesAutolearnFailed (sluice_bayes_autolearn_failures_total), once
// each, and not as learned; those that still fit in the store's free
// pages are counted as learned and not as failed. Nothing else writes to
// the store here, so every failure is one of these messages.
func TestAutolearnFailuresCounted(t *testing.T) {
	var log lockedBuffer
	obs := &recorder{}
	f, dir := autolearnOnTmpfs(t, &log, obs, "")
	counts := func() (learned, failed map[string]int) {
		obs.mu.Lock()
		defer obs.mu.Unlock()
		return maps.Clone(obs.autolearned), maps.Clone(obs.learnFailed)
	}

	fillDisk(t, dir, "filler")
	learned0, failed0 := counts()
	if len(failed0) != 0 {
		t.Fatalf("failures counted before any message: %v", failed0)
	}
	wantLearned, wantFailed := map[string]int{}, map[string]int{}
	for n := 0; n < 60 && wantFailed["spam"]+wantFailed["ham"] < 6; n++ {
		m, class := numbered(spamMessage(), n), "spam"
		if n%2 == 1 {
			m, class = numbered(hamMessage(), n), "ham"
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		v, err := f.Check(ctx, filters.StageEOM, m)
		cancel()
		if err != nil {
			t.Fatalf("message %s: %v", m.QueueID, err)
		}
		h := added(v, "X-Sluice-Bayes")
		switch {
		case strings.Contains(h, ", autolearn="+class):
			wantLearned[class]++
		case strings.HasPrefix(h, strings.ToUpper(class[:1])+class[1:]+", "):
			wantFailed[class]++
		default:
			t.Fatalf("message %s: header %q, want a %s verdict", m.QueueID, h, class)
		}
	}
	if wantFailed["spam"] == 0 || wantFailed["ham"] == 0 {
		t.Fatalf("disk full: failed %v, learned %v; the test did not fill it", wantFailed, wantLearned)
	}
	if got := strings.Count(log.String(), "bayes: auto-learning failed"); got != wantFailed["spam"]+wantFailed["ham"] {
		t.Errorf("%d failures logged, %v seen in the headers:\n%s", got, wantFailed, log.String())
	}
	learned, failed := counts()
	for _, class := range []string{"spam", "ham"} {
		if got := failed[class]; got != wantFailed[class] {
			t.Errorf("failed %s auto-learns counted %d, want %d", class, got, wantFailed[class])
		}
		if got := learned[class] - learned0[class]; got != wantLearned[class] {
			t.Errorf("auto-learned %s counted %d more, want %d (the failures must not count)", class, got, wantLearned[class])
		}
	}
	t.Logf("disk full: learned %v, failed %v", wantLearned, wantFailed)
}
