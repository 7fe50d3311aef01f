package archive

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
)

// Bodies a sender controls, through the filter and back: each copy reads
// back (ReadMbox, then Python's mailbox module) as exactly the message
// the filter was given, with LF line ends, one '>' more on each quoted
// "From " line taken off again, and a line end after a last line that had
// none. NUL bytes, a lone CR and a "From" without a space at the very end
// pass through as they are; no body ends its record early or runs into
// the next one.
func TestBodiesReadBackExactly(t *testing.T) {
	bodies := []struct{ in, want string }{
		{"", ""},
		{"no line end", "no line end\n"},
		{"From", "From\n"},
		{"From ", "From \n"},
		{"x\r\nFrom", "x\nFrom\n"},
		{">From a\r\n>>From b\r\n>>>From c", ">From a\n>>From b\n>>>From c\n"},
		{"From x\r\n\r\nFrom y\r\n\r\n", "From x\n\nFrom y\n\n"},
		{"NUL\x00 inside\r\n\x00From after a NUL\r\n\x00", "NUL\x00 inside\n\x00From after a NUL\n\x00\n"},
		{"a\rb\r\r\nlone CR at the end\r", "a\rb\r\nlone CR at the end\r\n"},
		{"bare LF\nFrom after it\n", "bare LF\nFrom after it\n"},
		{"\r\n\r\n\r\n", "\n\n\n"},
	}
	path := filepath.Join(t.TempDir(), "a.mbox")
	f := newFilter(t, Config{Targets: map[string]string{"default": path}}, nil)
	for i, b := range bodies {
		if _, err := f.Check(context.Background(), filters.StageEOM, testMessage(fmt.Sprintf("B%d", i), b.in)); err != nil {
			t.Fatal(err)
		}
	}
	recs := readRecords(t, path)
	if len(recs) != len(bodies) {
		t.Fatalf("%d records, want %d", len(recs), len(bodies))
	}
	for i, r := range recs {
		head, body, ok := bytes.Cut(r.Message, []byte("\n\n"))
		if !ok || string(body) != bodies[i].want {
			t.Errorf("body %q reads back as %q, want %q", bodies[i].in, body, bodies[i].want)
		}
		if q := HeaderValues(head, FieldQueueID); len(q) != 1 || q[0] != fmt.Sprintf("B%d", i) {
			t.Errorf("record %d has queue id %v", i, q)
		}
	}
	checkWithPython(t, path, len(bodies))
}

// A 50 MB message, with quoted lines all through and a Content-Length
// field (for which the body is read twice), is archived whole and reads
// back as one message to each reader. The deadline is generous: without
// the race detector the copy takes well under a second on a 2-core VM,
// with it about 4 s, of the filter's default timeout of 10 s.
func TestLargeMessage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.mbox")
	f := newFilter(t, Config{Targets: map[string]string{"default": path}}, nil)
	body := filters.NewBody(1<<20, "")
	want := sha256.New()
	line := strings.Repeat("x", 76) + "\r\n"
	for n := 0; n < 50<<20; n += len(line) {
		if n%(1<<20) == 0 {
			body.Write([]byte("From a line to quote\r\n"))
			want.Write([]byte("From a line to quote\n"))
		}
		body.Write([]byte(line))
		want.Write([]byte(line[:len(line)-2] + "\n"))
	}
	if err := body.Err(); err != nil {
		t.Fatal(err)
	}
	m := testMessage("BIG", "")
	m.Body = body
	m.Headers = append(m.Headers, filters.Header{Name: "Content-Length", Value: "1"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := f.Check(ctx, filters.StageEOM, m); err != nil {
		t.Fatalf("a 50 MB message: %v", err)
	}
	recs := readRecords(t, path)
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	_, got, _ := bytes.Cut(recs[0].Message, []byte("\n\n"))
	if sum := sha256.Sum256(got); !bytes.Equal(sum[:], want.Sum(nil)) {
		t.Errorf("the body reads back as %d other bytes", len(got))
	}
	checkWithPython(t, path, 1)
}

// A directory where the mbox should be, or a file where a maildir or its
// tmp/ should be, fails the copy at once, with an error that names the
// path, and without waiting for lock_timeout: no lock can cure it.
func TestTargetOfTheWrongKind(t *testing.T) {
	dir := t.TempDir()
	mbox := filepath.Join(dir, "a.mbox")
	if err := os.Mkdir(mbox, 0o750); err != nil {
		t.Fatal(err)
	}
	maildir := filepath.Join(dir, "md")
	if err := os.WriteFile(maildir, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	withTmp := filepath.Join(dir, "md2")
	if err := os.MkdirAll(filepath.Join(withTmp, "new"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(withTmp, "tmp"), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, format, path, errText string
	}{
		{"a directory at the mbox's name", FormatMbox, mbox, "is a directory"},
		{"a file at the maildir's name", FormatMaildir, maildir, "not a directory"},
		{"a file at tmp/", FormatMaildir, withTmp, "not a directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			obs := newObserver()
			f := newFilter(t, Config{Format: c.format, Targets: map[string]string{"default": c.path}, LockTimeout: time.Minute}, obs)
			start := time.Now()
			v, err := f.Check(context.Background(), filters.StageEOM, testMessage("W", "body\r\n"))
			if err == nil || !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), c.errText) {
				t.Errorf("error %v, want one naming %s and saying %q", err, c.path, c.errText)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("the copy failed after %v, not at once", took)
			}
			if v.Action != filters.Continue || obs.failed["default"] != 1 {
				t.Errorf("verdict %s, %d failures counted: want Continue (on_failure decides) and 1", v.Action, obs.failed["default"])
			}
		})
	}
	if ents, err := os.ReadDir(mbox); err != nil || len(ents) != 0 {
		t.Errorf("something was made in the directory at the mbox's name: %v %v", ents, err)
	}
	if _, err := os.Stat(mbox + lockSuffix); !os.IsNotExist(err) {
		t.Errorf("a dot-lock was left: %v", err)
	}
}

// warnRecorder keeps the messages of the warnings logged to it.
type warnRecorder struct {
	mu    sync.Mutex
	warns []string
}

func (w *warnRecorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnRecorder) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.warns = append(w.warns, r.Message)
	return nil
}
func (w *warnRecorder) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnRecorder) WithGroup(string) slog.Handler      { return w }

// A configuration reload builds a new filter while the old one may be
// appending to the same mbox. The new filter's start repairs an mbox that
// a dead process left a half record in; here it finds the old filter's
// dot-lock, held by this very process in the middle of a record, and must
// wait for it, not take it for a dead writer's and cut the record being
// written. Old and new filters then append side by side; every record
// comes out whole, once, and nothing is logged.
func TestReloadDuringAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.mbox")
	cfg := Config{Targets: map[string]string{"default": path}, LockTimeout: time.Minute}
	warns := &warnRecorder{}
	env := filters.Env{Name: "archive", StateDir: t.TempDir(), Logger: slog.New(warns)}
	old, err := New(env, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := old.Check(ctx, filters.StageEOM, testMessage("before", "first\r\n")); err != nil {
		t.Fatal(err)
	}

	// The old filter stops half way through a record, with its locks.
	halfway, resume := make(chan struct{}), make(chan struct{})
	held := "From held@example.org Thu Jan  1 00:00:00 1970\nX-Sluice-Queue-ID: held\n\n" + strings.Repeat("first half\n", 1000)
	appended := make(chan error, 1)
	go func() {
		_, err := old.app.AppendMbox(ctx, path, func(w *bufio.Writer) error {
			w.WriteString(held)
			if err := w.Flush(); err != nil {
				return err
			}
			close(halfway)
			<-resume
			_, err := w.WriteString(strings.Repeat("second half\n", 1000))
			return err
		})
		appended <- err
	}()
	<-halfway
	if _, err := os.Stat(path + lockSuffix); err != nil {
		t.Fatalf("no dot-lock while the old filter appends: %v", err)
	}
	var reloaded *Filter
	built := make(chan error, 1)
	go func() {
		var err error
		reloaded, err = New(env, cfg)
		built <- err
	}()
	select {
	case err := <-built:
		t.Fatalf("the new filter started while the old one held the mbox half written (%v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(resume)
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	if err := <-built; err != nil {
		t.Fatal(err)
	}

	const writers, perWriter = 4, 20
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers*perWriter)
	for _, f := range []*Filter{old, reloaded} {
		for g := 0; g < writers; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < perWriter; i++ {
					tag := fmt.Sprintf("%p.%d-%d", f, g, i)
					if _, err := f.Check(ctx, filters.StageEOM, testMessage(tag, childBody(tag, i, "\r\n"))); err != nil {
						errs <- err
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(warns.warns) > 0 {
		t.Errorf("warnings logged: %q", warns.warns)
	}
	recs := readRecords(t, path)
	if want := 2 + 2*writers*perWriter; len(recs) != want {
		t.Fatalf("%d records, want %d", len(recs), want)
	}
	if want := held + strings.Repeat("second half\n", 1000); string(recs[1].Raw) != want {
		t.Errorf("the record written across the reload is %d bytes, want %d", len(recs[1].Raw), len(want))
	}
	seen := map[string]bool{}
	for _, r := range recs[2:] {
		qid := r.QueueID()
		if seen[qid] {
			t.Errorf("record %s twice", qid)
		}
		seen[qid] = true
		var i int
		fmt.Sscanf(qid[strings.IndexByte(qid, '-')+1:], "%d", &i)
		_, body, _ := bytes.Cut(r.Message, []byte("\n\n"))
		if want := childBody(qid, i, "\n"); string(body) != want {
			t.Errorf("record %s: body of %d bytes, want %d", qid, len(body), len(want))
		}
	}
	checkWithPython(t, path, len(recs))
}

// With a recipient in the path, each copy is made or fails on its own: a
// copy that cannot be written fails the filter (on_failure decides), and
// the copies for the other recipients stay, each whole, as
// docs/archive.md says under Failures.
func TestPerRecipientCopyFailsAlone(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "carol.mbox"), 0o750); err != nil {
		t.Fatal(err)
	}
	obs := newObserver()
	f := newFilter(t, Config{Targets: map[string]string{"default": filepath.Join(dir, "{rcpt_local}.mbox")}}, obs)
	_, err := f.Check(context.Background(), filters.StageEOM, testMessage("R", "body\r\n"))
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "carol.mbox")) {
		t.Fatalf("error %v, want carol's copy to fail", err)
	}
	recs := readRecords(t, filepath.Join(dir, "bob.mbox"))
	if len(recs) != 1 {
		t.Fatalf("bob's archive holds %d records, want 1", len(recs))
	}
	if to := HeaderValues(recs[0].Message, FieldEnvelopeTo); len(to) != 1 || to[0] != "bob@lab.example" {
		t.Errorf("bob's copy records the recipients %v", to)
	}
	if obs.appended["default"] != 1 || obs.failed["default"] != 1 {
		t.Errorf("counted %d copies and %d failures, want 1 and 1", obs.appended["default"], obs.failed["default"])
	}
}
