package asynclog

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gate is an output whose Write blocks until the gate opens, as a write
// to a pipe that nobody reads does. It records what it was given.
type gate struct {
	open    chan struct{}
	entered chan struct{} // closed at the first Write
	once    sync.Once
	mu      sync.Mutex
	buf     bytes.Buffer
	writes  int
}

func newGate() *gate {
	return &gate{open: make(chan struct{}), entered: make(chan struct{})}
}

func (g *gate) Write(p []byte) (int, error) {
	g.once.Do(func() { close(g.entered) })
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	g.buf.Write(p)
	g.writes++
	return len(p), nil
}

func (g *gate) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.String()
}

func dropRecord(n int) []byte { return fmt.Appendf(nil, "level=WARN msg=dropped dropped=%d\n", n) }

// hangGuard fails the test if f has not returned within a time no
// correct run comes near; the assertions are on what f did.
func hangGuard(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not done after 10s", what)
	}
}

// While the output blocks, writes return at once: the lines that fit are
// queued, the others dropped and counted. Once the output takes lines
// again, it gets the queued lines, then one record with the number
// dropped where they went missing, then the lines written after; every
// line whole.
func TestBlockedOutputDropsAndReports(t *testing.T) {
	g := newGate()
	var dropped atomic.Int64
	line := func(i int) string { return fmt.Sprintf("level=INFO msg=line n=%04d %s\n", i, strings.Repeat("x", 72)) }
	const lineLen = 100
	if len(line(0)) != lineLen {
		t.Fatalf("test line is %d bytes", len(line(0)))
	}
	const fit, total = 10, 1000
	w := New(g, fit*lineLen, dropRecord, func(n int) { dropped.Add(int64(n)) })

	hangGuard(t, "Write to a blocked output", func() {
		w.Write([]byte(line(0)))
		// The writing goroutine takes line 0 and is stuck on it.
		<-g.entered
		for i := 1; i < total; i++ {
			if n, err := w.Write([]byte(line(i))); n != lineLen || err != nil {
				t.Errorf("Write = %d, %v", n, err)
			}
		}
	})
	select {
	case <-g.open:
		t.Fatal("the output opened during the writes")
	default:
	}
	if got := dropped.Load(); got != total-fit {
		t.Errorf("%d lines counted dropped, want %d", got, total-fit)
	}
	if g.String() != "" {
		t.Fatalf("the blocked output got %q", g.String())
	}

	close(g.open)
	// The writer catches up and reports the drops on its own, without
	// waiting for more lines or for Close.
	hangGuard(t, "catching up", func() {
		for !strings.Contains(g.String(), string(dropRecord(total-fit))) {
			time.Sleep(time.Millisecond)
		}
	})
	w.Write([]byte(line(total)))
	hangGuard(t, "Close", func() {
		if !w.Close(5 * time.Second) {
			t.Error("Close: the queue was not written, with a working output")
		}
	})
	var want strings.Builder
	for i := range fit {
		want.WriteString(line(i))
	}
	want.Write(dropRecord(total - fit))
	want.WriteString(line(total))
	if got := g.String(); got != want.String() {
		t.Errorf("output:\n%s\nwant:\n%s", got, want.String())
	}
	// Each line went out with one Write of its own: never split, and
	// nothing else can come between its parts.
	if g.writes != fit+2 {
		t.Errorf("%d writes to the output, want one per line, %d", g.writes, fit+2)
	}
}

// Lines queued before Close reach a working output, and Close returns
// when they have.
func TestCloseFlushes(t *testing.T) {
	var out bytes.Buffer
	slow := writerFunc(func(p []byte) (int, error) {
		time.Sleep(time.Millisecond)
		return out.Write(p)
	})
	w := New(slow, DefaultMaxBytes, dropRecord, nil)
	var want strings.Builder
	for i := range 100 {
		l := fmt.Sprintf("line %d\n", i)
		want.WriteString(l)
		w.Write([]byte(l))
	}
	want.WriteString("sluice stopped\n")
	w.Write([]byte("sluice stopped\n"))
	if !w.Close(5 * time.Second) {
		t.Fatal("Close timed out with a working output")
	}
	// Close returned after the writing goroutine ended: out is no
	// longer written to.
	if out.String() != want.String() {
		t.Errorf("after Close the output has:\n%s\nwant:\n%s", out.String(), want.String())
	}
	// A line after Close is dropped, not written, and does not block.
	w.Write([]byte("late\n"))
	if strings.Contains(out.String(), "late") {
		t.Error("a line written after Close reached the output")
	}
}

// With an output that never returns, Close gives up after its timeout.
func TestCloseHungOutput(t *testing.T) {
	g := newGate()
	defer close(g.open) // let the writing goroutine end with the test
	w := New(g, DefaultMaxBytes, dropRecord, nil)
	hangGuard(t, "Write to a hung output", func() {
		w.Write([]byte("sluice stopped\n"))
		<-g.entered
	})
	const timeout = 200 * time.Millisecond
	start := time.Now()
	var ok bool
	hangGuard(t, "Close on a hung output", func() { ok = w.Close(timeout) })
	if ok {
		t.Error("Close reported the queue written; the output never took it")
	}
	if took := time.Since(start); took < timeout {
		t.Errorf("Close returned after %s, before its timeout %s", took, timeout)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// A line longer than the whole queue is written when nothing else is
// queued: the output takes lines, so dropping it would report a stall
// that did not happen (the "log lines dropped" record, and the counter
// its alert watches) and lose the line for nothing. With the output
// stalled it is dropped as any line is.
func TestLongLineWrittenWhenIdle(t *testing.T) {
	g := newGate()
	var dropped atomic.Int64
	w := New(g, 100, dropRecord, func(n int) { dropped.Add(int64(n)) })
	long := "level=INFO msg=message rcpts=" + strings.Repeat("x", 200) + "\n"
	close(g.open)
	w.Write([]byte(long))
	hangGuard(t, "Close", func() {
		if !w.Close(5 * time.Second) {
			t.Error("Close: the queue was not written, with a working output")
		}
	})
	if got := g.String(); got != long {
		t.Errorf("output %q, want the long line", got)
	}
	if n := dropped.Load(); n != 0 {
		t.Errorf("%d lines counted dropped, with an idle output", n)
	}

	// Stalled: the writing goroutine holds a line, and a long line finds
	// the queue in use.
	g = newGate()
	defer close(g.open)
	dropped.Store(0)
	w = New(g, 100, dropRecord, func(n int) { dropped.Add(int64(n)) })
	w.Write([]byte("level=INFO msg=first\n"))
	<-g.entered
	w.Write([]byte(long))
	if n := dropped.Load(); n != 1 {
		t.Errorf("%d lines counted dropped with the output stalled, want the long one", n)
	}
}

// A line the output refuses (standard error a file on a full disk:
// ENOSPC) is lost as surely as one dropped for want of room, and is
// counted the same way; once the output takes lines again, a record
// says how many went missing there.
func TestFailedWritesCounted(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer full.Close()
	var dropped atomic.Int64
	var out bytes.Buffer
	var fail atomic.Bool
	fail.Store(true)
	w := New(writerFunc(func(p []byte) (int, error) {
		if fail.Load() {
			return full.Write(p)
		}
		return out.Write(p)
	}), DefaultMaxBytes, dropRecord, func(n int) { dropped.Add(int64(n)) })
	for i := range 5 {
		w.Write(fmt.Appendf(nil, "level=INFO msg=line n=%d\n", i))
	}
	hangGuard(t, "writing to a full disk", func() {
		for dropped.Load() < 5 {
			time.Sleep(time.Millisecond)
		}
	})
	fail.Store(false)
	w.Write([]byte("level=INFO msg=after\n"))
	if !w.Close(5 * time.Second) {
		t.Fatal("Close: the queue was not written, with a working output")
	}
	if n := dropped.Load(); n != 5 {
		t.Errorf("%d lines counted dropped, want the 5 the full disk refused", n)
	}
	if got, want := out.String(), string(dropRecord(5))+"level=INFO msg=after\n"; got != want {
		t.Errorf("output once the disk had room:\n%s\nwant:\n%s", got, want)
	}
}
