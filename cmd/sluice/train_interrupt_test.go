package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mboxMessage is message i of a generated mbox: each one different, so
// that each is learned.
func mboxMessage(i int) string {
	return fmt.Sprintf("From sender%d@example.org Mon Jan  1 10:00:00 2024\nFrom: sender%d@example.org\nSubject: offer number %d\n\nBuy item%d now, unique%d.\n\n", i, i, i, i, i)
}

// hookedMbox is an mbox of n generated messages on standard input that
// calls hook once, when it is asked for more than the first at
// messages. A read returns one message at most, so that the reader
// asks for more as it goes.
type hookedMbox struct {
	n, at int
	hook  func()
	next  int
	buf   bytes.Buffer
}

func (h *hookedMbox) Read(p []byte) (int, error) {
	if h.buf.Len() == 0 && h.next < h.n {
		if h.next == h.at && h.hook != nil {
			h.hook()
			h.hook = nil
		}
		h.buf.WriteString(mboxMessage(h.next))
		h.next++
	}
	if h.buf.Len() == 0 {
		return 0, io.EOF
	}
	return h.buf.Read(p)
}

// runTrainOn runs "sluice train --spam --db db [paths]" in-process on in
// as standard input, with the command's context ctx.
func runTrainOn(t *testing.T, ctx context.Context, in io.Reader, db string, paths ...string) cliResult {
	t.Helper()
	root := newRootCmd(testRegistry())
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(in)
	root.SetContext(ctx)
	err := run(root, append([]string{"train", "--spam", "--db", db}, paths...))
	r := cliResult{stdout: out.String(), stderr: errb.String()}
	if err != nil {
		r.code = exitCode(err)
		var ee *exitError
		if !errors.As(err, &ee) || ee.err != nil {
			r.stderr += "sluice: " + err.Error() + "\n"
		}
	}
	return r
}

var interruptedSummary = regexp.MustCompile(`^(\d+) messages?: (\d+) learned as spam, 0 already learned, 0 moved from ham to spam, 0 errors \(interrupted\)\n$`)

// checkInterrupted checks the output of a train run stopped part way
// through total messages, and that the store holds what its summary says
// was learned.
func checkInterrupted(t *testing.T, r cliResult, db string, total, code int) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit status %d, want %d", r.code, code)
	}
	m := interruptedSummary.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("stdout %q, want the summary of an interrupted run\nstderr %q", r.stdout, r.stderr)
	}
	n, _ := strconv.Atoi(m[1])
	if m[2] != m[1] || n == 0 || n >= total {
		t.Errorf("summary %q: want every message read learned, some but not all of %d", r.stdout, total)
	}
	if got, want := statsField(t, db, "messages"), fmt.Sprintf("%d spam, 0 ham", n); got != want {
		t.Errorf("the store holds %s, the summary says %s", got, want)
	}
	for _, want := range []string{"sluice train: interrupted", "sluice db refit"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr %q does not say %q", r.stderr, want)
		}
	}
}

// A run whose context ends part way (as Ctrl-C ends it) stops at the next
// message, learns what it read, and prints its summary marked as
// interrupted: the batches learned before are committed, and the admin
// must know how far it got. The exit status is not 0.
func TestTrainInterruptedPrintsSummary(t *testing.T) {
	db := filepath.Join(t.TempDir(), "bayes.db")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const total = 1000
	in := &hookedMbox{n: total, at: 450, hook: cancel}
	r := runTrainOn(t, ctx, in, db)
	checkInterrupted(t, r, db, total, 1)
}

// The same with a real SIGINT, which ends a run with status 130, as the
// shell reports a program that Ctrl-C killed. The test keeps SIGINT
// caught itself (guard) so that the signal never ends the test binary.
func TestTrainSIGINTPrintsSummary(t *testing.T) {
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGINT)
	defer signal.Stop(guard)

	db := filepath.Join(t.TempDir(), "bayes.db")
	// More than the run could read before the signal arrives: an
	// unnoticed signal shows as a run that learns them all.
	const total = 5000
	in := &hookedMbox{n: total, at: 450, hook: func() {
		if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
			t.Error(err)
		}
		<-guard // delivered, to train's channel as well
	}}
	r := runTrainOn(t, context.Background(), in, db)
	checkInterrupted(t, r, db, total, 130)
}

// Interrupted in the middle of a message that never ends, a run stops
// there too, not only between messages: "sluice train --spam /dev/zero"
// went on reading after a SIGTERM (and so after timeout(1)'s) until
// killed. The run's context ends while it reads /dev/zero, after the
// message before it.
func TestTrainInterruptedInEndlessMessage(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "bayes.db")
	msg := filepath.Join(dir, "first.eml")
	if err := os.WriteFile(msg, []byte(mboxMessage(0)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan cliResult, 1)
	go func() { done <- runTrainOn(t, ctx, nil, db, msg, "/dev/zero") }()
	select {
	case r := <-done:
		checkInterrupted(t, r, db, 2, 1)
	case <-time.After(time.Minute):
		t.Fatal("the run read on in /dev/zero after its context ended")
	}
}
