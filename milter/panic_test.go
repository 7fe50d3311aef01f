package milter_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/filtertest"
	"github.com/sluice-mail/sluice/milter"
)

// panickyObserver panics at the next RCPT-stage decision once armed: a
// panic in sluice's own code around the filters, which only the session
// boundary recovers.
type panickyObserver struct{ armed atomic.Bool }

func (o *panickyObserver) FilterDecided(d filters.Decision) {
	if d.Stage == filters.StageRcptTo && o.armed.Swap(false) {
		panic("observer broke")
	}
}

// A panic in the session while it handles one RCPT, under on_failure
// tempfail. The milter reply at RCPT refuses only that recipient and the
// MTA goes on with the message for the others; the message must then end
// in the same temporary failure, not go through unfiltered. The session
// survives for the next message.
func TestSessionPanicAtRcptTempfailsTheMessage(t *testing.T) {
	obs := &panickyObserver{}
	rcpt := &filtertest.Fixed{FilterName: "rcpt", At: filters.StagesOf(filters.StageRcptTo)}
	p := filters.NewPipeline([]filters.Step{{Filter: rcpt}}, obs)
	_, addr := startServer(t, milter.Config{Pipeline: p, OnFailure: filters.FailTempfail})
	s := dial(t, addr)
	must(t)(s.Conn("c", gomilter.FamilyInet, 1, "192.0.2.1"))
	must(t)(s.Helo("h"))

	obs.armed.Store(true)
	must(t)(s.Mail("a@example.org", nil))
	if act := must(t)(s.Rcpt("first@example.org", nil)); act.Code != gomilter.ActReplyCode || act.SMTPCode != 451 {
		t.Fatalf("RCPT that panicked: action %c %d, want a 451 reply", act.Code, act.SMTPCode)
	}
	if act := must(t)(s.Rcpt("second@example.org", nil)); act.Code != gomilter.ActContinue {
		t.Fatalf("next RCPT: action %c, want continue", act.Code)
	}
	must(t)(s.HeaderField("Subject", "hi"))
	must(t)(s.HeaderEnd())
	_, act, err := s.BodyReadFrom(strings.NewReader("x\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if act.Code != gomilter.ActReplyCode || act.SMTPCode != 451 {
		t.Fatalf("end of message after the panic: action %c %d, want a 451 reply", act.Code, act.SMTPCode)
	}

	_, act = sendMessage(t, s, "a@example.org", "b@example.org", nil, "x\r\n")
	if act.Code != gomilter.ActAccept {
		t.Errorf("next message: action %c, want accept", act.Code)
	}
}

// summaries records the summary of each message.
type summaries struct {
	mu   sync.Mutex
	sums []milter.Summary
}

// wait waits, at most 5 s, for a first message summary.
func (o *summaries) wait() {
	for range 500 {
		o.mu.Lock()
		n := len(o.sums)
		o.mu.Unlock()
		if n > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (o *summaries) SessionOpened()           {}
func (o *summaries) SessionClosed()           {}
func (o *summaries) SessionPanic()            {}
func (o *summaries) ConnectionDropped(string) {}
func (o *summaries) MessageDone(s milter.Summary) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sums = append(o.sums, s)
}

// The recipient whose RCPT panicked got a 451 and the MTA dropped it: it
// is not one of the message's recipients in the log line (the summary)
// or for the filters at end of message, as a recipient a filter refuses
// is not.
func TestSessionPanicAtRcptDropsTheRecipient(t *testing.T) {
	obs := &panickyObserver{}
	rcpt := &filtertest.Fixed{FilterName: "rcpt", At: filters.StagesOf(filters.StageRcptTo)}
	p := filters.NewPipeline([]filters.Step{{Filter: rcpt}}, obs)
	sums := &summaries{}
	_, addr := startServerObserved(t, milter.Config{Pipeline: p, OnFailure: filters.FailTempfail}, sums)
	s := dial(t, addr)
	must(t)(s.Conn("c", gomilter.FamilyInet, 1, "192.0.2.1"))
	obs.armed.Store(true)
	must(t)(s.Mail("a@example.org", nil))
	if act := must(t)(s.Rcpt("refused@example.org", nil)); act.SMTPCode != 451 {
		t.Fatalf("want 451, got %c %d", act.Code, act.SMTPCode)
	}
	must(t)(s.Rcpt("kept@example.org", nil))
	must(t)(s.HeaderEnd())
	if _, _, err := s.BodyReadFrom(strings.NewReader("x\r\n")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	sums.wait()
	sums.mu.Lock()
	defer sums.mu.Unlock()
	if len(sums.sums) != 1 {
		t.Fatalf("%d message summaries, want 1", len(sums.sums))
	}
	if got := strings.Join(sums.sums[0].Rcpts, ","); got != "kept@example.org" {
		t.Errorf("message recipients %q, want only kept@example.org", got)
	}
}

// stagePanicObserver panics at the next decision of its stage once armed.
type stagePanicObserver struct {
	stage filters.Stage
	armed atomic.Bool
}

func (o *stagePanicObserver) FilterDecided(d filters.Decision) {
	if d.Stage == o.stage && o.armed.Swap(false) {
		panic("observer broke")
	}
}

// A panic in the session at connect or HELO, under on_failure accept. An
// accept there (SMFIR_ACCEPT) would make the MTA stop asking sluice for
// the whole connection: every later message would go through unfiltered
// and unlogged. The connection goes on instead, and its messages are
// filtered as usual.
func TestSessionPanicAtConnectionStageKeepsFiltering(t *testing.T) {
	for _, stage := range []filters.Stage{filters.StageConnect, filters.StageHelo} {
		t.Run(stage.String(), func(t *testing.T) {
			obs := &stagePanicObserver{stage: stage}
			conn := &filtertest.Fixed{FilterName: "conn", At: filters.StagesOf(filters.StageConnect, filters.StageHelo)}
			eom := &filtertest.Fixed{FilterName: "eom", At: filters.StagesOf(filters.StageEOM),
				Verdict: filters.Verdict{Action: filters.Reject, Reason: "test"}}
			p := filters.NewPipeline([]filters.Step{{Filter: conn}, {Filter: eom}}, obs)
			_, addr := startServer(t, milter.Config{Pipeline: p, OnFailure: filters.FailAccept})
			s := dial(t, addr)
			obs.armed.Store(true)
			if act := must(t)(s.Conn("c", gomilter.FamilyInet, 1, "192.0.2.1")); act.Code != gomilter.ActContinue {
				t.Fatalf("connect: action %c, want continue", act.Code)
			}
			if act := must(t)(s.Helo("h")); act.Code != gomilter.ActContinue {
				t.Fatalf("HELO: action %c, want continue", act.Code)
			}
			if obs.armed.Load() {
				t.Fatal("the observer did not panic")
			}
			_, act := sendMessage(t, s, "a@example.org", "b@example.org", nil, "x\r\n")
			if act.Code != gomilter.ActReplyCode || act.SMTPCode != 550 {
				t.Errorf("message after the panic: action %c %d, want the filter's 550", act.Code, act.SMTPCode)
			}
		})
	}
}

// abortPanicObserver panics in MessageDone for an aborted message: once
// when armed, or every time with always set. It counts the panics the
// server reports.
type abortPanicObserver struct {
	summaries
	armed  atomic.Bool
	always bool
	panics atomic.Int32
}

func (o *abortPanicObserver) SessionPanic() { o.panics.Add(1) }
func (o *abortPanicObserver) MessageDone(s milter.Summary) {
	if s.Aborted && (o.always || o.armed.Swap(false)) {
		panic("observer broke on an aborted message")
	}
	o.summaries.MessageDone(s)
}

// waitPanics waits, at most 5 s, for n panics to be reported.
func (o *abortPanicObserver) waitPanics(t *testing.T, n int32) {
	t.Helper()
	for range 500 {
		if o.panics.Load() >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%d session panics reported, want %d", o.panics.Load(), n)
}

// A panic while the session handles the MTA's abort of a message is
// recovered at the session boundary like one in any other callback: it
// is counted, and the connection goes on with the MTA's next message
// rather than being closed (which leaves that message to the MTA's
// milter default action).
func TestSessionPanicAtAbortIsCountedAndSessionGoesOn(t *testing.T) {
	obs := &abortPanicObserver{}
	rec := &recorder{}
	_, addr := startServerObserved(t, milter.Config{Pipeline: pipeline(rec)}, obs)
	s := dial(t, addr)
	must(t)(s.Conn("c", gomilter.FamilyInet, 1, "192.0.2.1"))
	must(t)(s.Helo("h"))
	must(t)(s.Mail("old@example.org", nil))
	must(t)(s.Rcpt("old-rcpt@example.org", nil))
	obs.armed.Store(true)
	if err := s.Abort(); err != nil {
		t.Fatal(err)
	}
	obs.waitPanics(t, 1)

	_, act := sendMessage(t, s, "new@example.org", "new@lab.example", nil, "x\r\n")
	if act.Code != gomilter.ActAccept {
		t.Fatalf("message after the abort: action %c, want accept", act.Code)
	}
	s.Close()
	obs.wait()
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.sums) != 1 || obs.sums[0].From != "new@example.org" {
		t.Errorf("message summaries %+v, want only the new message's", obs.sums)
	}
	if n := obs.panics.Load(); n != 1 {
		t.Errorf("%d session panics reported, want 1", n)
	}
}

// A panic while the session ends a message the MTA left open when the
// connection closed (no abort) is recovered and counted too. It runs
// after go-milter's session loop, which cannot recover it: unrecovered,
// it would end the whole daemon.
func TestSessionPanicAtConnectionLossIsCounted(t *testing.T) {
	obs := &abortPanicObserver{always: true}
	_, addr := startServerObserved(t, milter.Config{Pipeline: pipeline(&recorder{})}, obs)
	m := dialRaw(t, addr)
	m.startMessage(gomilter.OptAddHeader)
	// Closed with the message open: no abort, no QUIT.
	m.c.Close()
	obs.waitPanics(t, 1)

	// The server still serves.
	s := dial(t, addr)
	must(t)(s.Conn("c", gomilter.FamilyInet, 1, "192.0.2.1"))
	_, act := sendMessage(t, s, "a@example.org", "b@example.org", nil, "x\r\n")
	if act.Code != gomilter.ActAccept {
		t.Fatalf("message on a new connection: action %c, want accept", act.Code)
	}
}

// A panic while a message is released, in the cleanup after another
// panic (here: the release panics on the abort, and again when the
// recovered panic drops the message), must not leave the session marked
// inside a message: a graceful shutdown would then wait for the MTA's
// next message or its own deadline instead of closing the idle session.
func TestPanicReleasingMessageLeavesSessionIdle(t *testing.T) {
	srv := milter.NewServer(milter.Config{Pipeline: pipeline()}, nil, nil)
	var left atomic.Int32
	twice := make(chan struct{})
	srv.SetReleaseHook(func() {
		if n := left.Add(-1); n >= 0 {
			if n == 0 {
				close(twice)
			}
			panic("body release broke")
		}
	})
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, srv, ln)
	s := dial(t, ln.Addr().String())
	must(t)(s.Conn("c", gomilter.FamilyInet, 1, "192.0.2.1"))
	must(t)(s.Helo("h"))
	must(t)(s.Mail("a@example.org", nil))
	must(t)(s.Rcpt("b@example.org", nil))
	left.Store(2)
	if err := s.Abort(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-twice:
	case <-time.After(5 * time.Second):
		t.Fatal("the abort did not release the message")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown after %v: %v; the session stayed marked inside the dropped message", time.Since(start).Round(time.Millisecond), err)
	}
}
