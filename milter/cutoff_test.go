package milter_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/filtertest"
	"github.com/sluice-mail/sluice/milter"
)

// slowCutListener hands out TCP connections whose SetDeadline, with which
// the server cuts a session off, takes a while, as it may on a busy host
// with many sessions to cut: the cut of the last session comes well after
// that of the first.
type slowCutListener struct {
	net.Listener
	delay time.Duration
}

func (l slowCutListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return slowCutConn{Conn: c, delay: l.delay}, nil
}

type slowCutConn struct {
	net.Conn
	delay time.Duration
}

func (c slowCutConn) SetDeadline(t time.Time) error {
	time.Sleep(c.delay)
	return c.Conn.SetDeadline(t)
}

// A shutdown whose time runs out cuts the sessions still in a message
// off, and the MTA applies its milter default action to their messages
// (docs/configuration.md, shutdown_timeout). The filters still working
// on those messages are stopped too, and fail: their failure policy
// (accept, by default) must not become a verdict that reaches the MTA
// before the cut, or messages no filter judged are delivered.
func TestShutdownCutOffSendsNoVerdict(t *testing.T) {
	const sessions = 4
	slow := &filtertest.Fixed{FilterName: "slow", At: filters.StagesOf(filters.StageEOM), Delay: time.Minute}
	p := filters.NewPipeline([]filters.Step{{Filter: slow, Timeout: time.Minute, OnFailure: filters.FailAccept}}, nil)
	srv := milter.NewServer(milter.Config{Pipeline: p}, nil, nil)
	tcp, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(slowCutListener{Listener: tcp, delay: 100 * time.Millisecond}) }()

	type result struct {
		act *gomilter.Action
		err error
	}
	results := make(chan result, sessions)
	var wg sync.WaitGroup
	for range sessions {
		s := dial(t, tcp.Addr().String())
		must(t)(s.Conn("c", gomilter.FamilyInet, 1, "192.0.2.1"))
		must(t)(s.Helo("h"))
		must(t)(s.Mail("a@b", nil))
		must(t)(s.Rcpt("c@d", nil))
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, act, err := s.End()
			results <- result{act, err}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for slow.Calls() != sessions {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages reached the filter", slow.Calls(), sessions)
		}
		time.Sleep(time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	srv.Shutdown(ctx)
	wg.Wait()
	close(results)
	accepted := 0
	for r := range results {
		if r.err == nil && r.act.Code == gomilter.ActAccept {
			accepted++
		}
	}
	if accepted > 0 {
		t.Errorf("%d of %d messages cut off by the shutdown were accepted by the failure policy of a filter that never answered: want none, the MTA's default action applying", accepted, sessions)
	}
	if err := <-served; err != milter.ErrServerClosed {
		t.Errorf("Serve returned %v", err)
	}
}

// A message cut off by a shutdown whose time ran out gets no verdict
// from sluice: the MTA applies its milter default action. Its log line
// and its summary (sluice_messages_total) say it was aborted, with the
// cut as the reason. They used to give the verdict the failed filters'
// policy made (accept, or tempfail), which the MTA never got, and a
// warning that the reply was not delivered followed. The same holds for
// a message cut off between two of the MTA's packets, whose line said
// only "connection lost".
func TestShutdownCutOffLoggedAsAborted(t *testing.T) {
	for _, tc := range []struct {
		name      string
		stage     filters.Stage // the slow filter's
		onFailure filters.FailurePolicy
		// between: the MTA sends MAIL and RCPT and nothing more.
		between bool
	}{
		{"in a filter at end of message", filters.StageEOM, filters.FailAccept, false},
		{"in a filter at MAIL FROM", filters.StageMailFrom, filters.FailTempfail, false},
		{"between packets", filters.StageEOM, filters.FailAccept, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			slow := &filtertest.Fixed{FilterName: "slow", At: filters.StagesOf(tc.stage), Delay: time.Minute}
			p := filters.NewPipeline([]filters.Step{{Filter: slow, Timeout: time.Minute, OnFailure: tc.onFailure}}, nil)
			logs := &syncLog{}
			sums := &summaries{}
			srv := milter.NewServer(milter.Config{Pipeline: p}, slog.New(slog.NewTextHandler(logs, nil)), sums)
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()

			s := dial(t, ln.Addr().String())
			must(t)(s.Conn("c", gomilter.FamilyInet, 1, "192.0.2.1"))
			must(t)(s.Helo("h"))
			s.Macros(gomilter.CodeMail, "i", "4XQCUT")
			ended := make(chan struct{})
			go func() {
				defer close(ended)
				// Their errors are the cut's.
				if _, err := s.Mail("a@b", nil); err != nil || tc.stage == filters.StageMailFrom {
					return
				}
				if _, err := s.Rcpt("c@d", nil); err != nil || tc.between {
					return
				}
				s.End()
			}()
			if tc.between {
				<-ended
			} else {
				deadline := time.Now().Add(10 * time.Second)
				for slow.Calls() == 0 {
					if time.Now().After(deadline) {
						t.Fatal("the message did not reach the filter")
					}
					time.Sleep(time.Millisecond)
				}
			}

			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			srv.Shutdown(ctx)
			if !tc.between {
				<-ended
			}
			if err := <-served; err != milter.ErrServerClosed {
				t.Errorf("Serve returned %v", err)
			}

			sums.mu.Lock()
			defer sums.mu.Unlock()
			if len(sums.sums) != 1 || !sums.sums[0].Aborted || sums.sums[0].Reason != "cut off: sluice is stopping" {
				t.Errorf("message summaries %+v, want one, aborted, cut off", sums.sums)
			}
			var line string
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "msg=message ") {
					line = l
				}
			}
			for _, want := range []string{"queue_id=4XQCUT", "verdict=aborted", `reason="cut off: sluice is stopping"`} {
				if !strings.Contains(line, want) {
					t.Errorf("message line %q: want %s; log:\n%s", line, want, logs)
				}
			}
			if strings.Contains(logs.String(), "reply not delivered") {
				t.Errorf("a message without a verdict is logged as one whose reply was not delivered; log:\n%s", logs)
			}
		})
	}
}
