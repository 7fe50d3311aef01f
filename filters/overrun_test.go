package filters_test

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
)

// lateReader ignores its context: it waits for release, then reads the
// whole message and reports what it saw.
type lateReader struct {
	release chan struct{}
	seen    chan string
}

func (*lateReader) Name() string { return "late" }
func (*lateReader) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageEOM), Headers: true, Body: true}
}
func (l *lateReader) Check(_ context.Context, _ filters.Stage, m *filters.Message) (filters.Verdict, error) {
	<-l.release
	var hdrs []string
	for _, h := range m.Headers {
		hdrs = append(hdrs, h.Name+"="+h.Value)
	}
	body, err := io.ReadAll(m.Body.Reader())
	l.seen <- fmt.Sprintf("headers=%s rcpts=%d macro=%s conn=%s helo=%s body=%q err=%v",
		strings.Join(hdrs, ","), len(m.Rcpts), m.Macros["k"], m.Conn.Macros["c"], m.Conn.Helo, body, err)
	return filters.Verdict{}, nil
}

// A filter that runs past its timeout goes on running in its own
// goroutine while the edge moves on with the message: it changes header
// values in place, adds recipients of the next message, merges macros and
// frees the body. The late filter must keep reading the message as it was
// when it was called, never the session's changing one: sharing it is a
// data race, and a map read racing a map write is a fatal error that ends
// the whole daemon.
func TestOverrunFilterReadsItsOwnCopy(t *testing.T) {
	l := &lateReader{release: make(chan struct{}), seen: make(chan string, 1)}
	released := false
	release := func() {
		if !released {
			released = true
			close(l.release)
		}
	}
	t.Cleanup(release)
	// The filter never answers before release, so any timeout expires;
	// the shortest one keeps the test quick.
	p := filters.NewPipeline([]filters.Step{{Filter: l, Timeout: time.Nanosecond}}, nil)
	body := filters.NewBody(1<<10, t.TempDir())
	body.Write([]byte("hello"))
	conn := &filters.Conn{Helo: "h1", Macros: map[string]string{"c": "old"}}
	m := &filters.Message{
		Conn:    conn,
		Rcpts:   []filters.Address{{Addr: "a@example.org"}},
		Headers: []filters.Header{{Name: "Subject", Value: "old"}},
		Macros:  map[string]string{"k": "old"},
		Body:    body,
	}
	res := p.Run(context.Background(), filters.StageEOM, m)
	if len(res.Decisions) != 1 || res.Decisions[0].Failure != filters.FailureTimeout {
		t.Fatalf("decisions %+v, want one timeout", res.Decisions)
	}

	// What the session does next, while the late filter still runs.
	m.Headers = filters.ApplyEdits(m.Headers, []filters.HeaderEdit{{Kind: filters.ChangeHeader, Name: "Subject", Index: 1, Value: "new"}})
	m.Rcpts = append(m.Rcpts, filters.Address{Addr: "b@example.org"})
	m.Macros["k"] = "new"
	conn.Macros["c"] = "new"
	conn.Helo = "h2"
	if err := m.Body.Close(); err != nil {
		t.Fatal(err)
	}

	release()
	got := <-l.seen
	want := `headers=Subject=old rcpts=1 macro=old conn=old helo=h1 body="hello" err=<nil>`
	if got != want {
		t.Errorf("late filter read\n%s\nwant\n%s", got, want)
	}
}

// stuck ignores its context and answers only once released: a filter
// hung where no context reaches (a read of a file on a disk that stopped
// answering, a lock held by such a read).
type stuck struct {
	release chan struct{}
	mu      sync.Mutex
	calls   int
}

func (*stuck) Name() string         { return "stuck" }
func (*stuck) Needs() filters.Needs { return filters.Needs{Stages: filters.StagesOf(filters.StageEOM)} }
func (s *stuck) Check(context.Context, filters.Stage, *filters.Message) (filters.Verdict, error) {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	<-s.release
	return filters.Verdict{}, nil
}

func (s *stuck) called() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// A filter that hangs past its timeout for every message keeps a
// goroutine and the message's copy for each, for as long as it hangs:
// thousands of messages would hold thousands of copies, their bodies
// among them, until the daemon ran out of memory. Past MaxOverrun calls
// still running late, the filter is not called any more, and each
// message gets the failure policy's answer at once, until the late
// calls end.
func TestOverrunCallsBounded(t *testing.T) {
	f := &stuck{release: make(chan struct{})}
	released := false
	release := func() {
		if !released {
			released = true
			close(f.release)
		}
	}
	t.Cleanup(release)
	p := filters.NewPipeline([]filters.Step{{Filter: f, Timeout: time.Nanosecond, OnFailure: filters.FailTempfail}}, nil)
	before := runtime.NumGoroutine()
	const messages = 3 * filters.MaxOverrun
	for i := range messages {
		res := p.Run(context.Background(), filters.StageEOM, &filters.Message{Headers: []filters.Header{{Name: "Subject", Value: strconv.Itoa(i)}}})
		if len(res.Decisions) != 1 || res.Decisions[0].Failure != filters.FailureTimeout || res.Verdict.Action != filters.Tempfail {
			t.Fatalf("message %d: decisions %+v, verdict %+v; want a timeout, tempfailed", i, res.Decisions, res.Verdict)
		}
	}
	if n := f.called(); n > filters.MaxOverrun {
		t.Errorf("the hung filter was called for %d of %d messages, want at most %d", n, messages, filters.MaxOverrun)
	}
	// A few to spare for goroutines of the runtime or the testing
	// package; without the bound there is one per message.
	if n := runtime.NumGoroutine() - before; n > filters.MaxOverrun+16 {
		t.Errorf("%d goroutines more than before the messages, want about %d at most", n, filters.MaxOverrun)
	}

	// Once the late calls end, the filter is called again.
	release()
	calls := f.called()
	for i := 0; ; i++ {
		p.Run(context.Background(), filters.StageEOM, &filters.Message{})
		if f.called() > calls {
			break
		}
		if i == 500 {
			t.Fatal("the filter is not called again after its late calls ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
