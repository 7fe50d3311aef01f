package milter_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/milter"
)

// generation tags each message with its name and says whether it had
// been closed when it judged the message: a filter whose store was closed
// under a message would lose its verdict.
type generation struct {
	name   string
	closed atomic.Bool
}

func (g *generation) Name() string { return "generation" }
func (g *generation) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageEOM), Headers: true}
}
func (g *generation) Check(context.Context, filters.Stage, *filters.Message) (filters.Verdict, error) {
	v := g.name
	if g.closed.Load() {
		v += " (closed)"
	}
	return filters.Verdict{Edits: []filters.HeaderEdit{{Kind: filters.AddHeader, Name: "X-Generation", Value: v}}}, nil
}
func (g *generation) Close() error {
	g.closed.Store(true)
	return nil
}

// generationOf sends a message on s and returns the X-Generation value
// sluice added.
func generationOf(t *testing.T, s *gomilter.ClientSession) string {
	t.Helper()
	mods, act := sendMessage(t, s, "a@example.org", "b@example.org", [][2]string{{"Subject", "s"}}, "body\r\n")
	if act.Code != gomilter.ActAccept {
		t.Fatalf("end of message: %v", act.Code)
	}
	for _, m := range mods {
		if m.Code == gomilter.ActAddHeader && m.HeaderName == "X-Generation" {
			return m.HeaderValue
		}
	}
	t.Fatalf("no X-Generation added: %+v", mods)
	return ""
}

// A reload (SetConfig) in the middle of a message: the message, and the
// later messages of its connection, are judged by the pipeline the
// connection started with, which is not closed under them (its filters'
// stores stay open) but once the connection ends; a new connection gets
// the new pipeline (docs/configuration.md, "Milter connections that are
// already open keep the configuration they started with").
func TestReloadMidMessageKeepsTheConnectionsPipeline(t *testing.T) {
	old, cur := &generation{name: "old"}, &generation{name: "new"}
	srv, addr := startServer(t, milter.Config{Pipeline: pipeline(old)})
	s := dial(t, addr)
	must(t)(s.Conn("client.example", gomilter.FamilyInet, 4321, "192.0.2.7"))
	must(t)(s.Helo("helo.example"))
	must(t)(s.Mail("a@example.org", nil))
	must(t)(s.Rcpt("b@example.org", nil))
	must(t)(s.HeaderField("Subject", "in flight"))
	must(t)(s.HeaderEnd())

	srv.SetConfig(milter.Config{Pipeline: pipeline(cur)})
	// A pipeline is closed in a goroutine of its own: give a wrong
	// close the time to happen.
	time.Sleep(100 * time.Millisecond)
	mods, act, err := s.BodyReadFrom(strings.NewReader("body\r\n"))
	if err != nil || act.Code != gomilter.ActAccept {
		t.Fatalf("end of the message in flight: %v %v", act, err)
	}
	if len(mods) != 1 || mods[0].HeaderValue != "old" {
		t.Errorf("message in flight during the reload: edits %+v, want X-Generation: old", mods)
	}
	if got := generationOf(t, s); got != "old" {
		t.Errorf("next message of the same connection: X-Generation %q, want old", got)
	}

	s2 := dial(t, addr)
	must(t)(s2.Conn("client.example", gomilter.FamilyInet, 4322, "192.0.2.7"))
	if got := generationOf(t, s2); got != "new" {
		t.Errorf("connection after the reload: X-Generation %q, want new", got)
	}
	if old.closed.Load() {
		t.Fatal("the old pipeline was closed while a connection still used it")
	}
	s.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !old.closed.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the old pipeline is still open 5s after its last connection ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if cur.closed.Load() {
		t.Error("the new pipeline was closed")
	}
}
