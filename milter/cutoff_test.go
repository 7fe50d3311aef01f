package milter_test

import (
	"context"
	"net"
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
