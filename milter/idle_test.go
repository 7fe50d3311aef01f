package milter_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/filters/filtertest"
	"github.com/sluice-mail/sluice/milter"
)

// optnegPacket is an MTA's option negotiation: version 2, all actions, all
// protocol steps offered.
func optnegPacket() []byte {
	return appendPacket(nil, 'O', binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 2), 0x3f), 0x7f))
}

// waitSessions waits until srv has n sessions open; the wait is only a
// guard against a hang, not a measure of speed.
func waitSessions(t *testing.T, srv *milter.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for srv.Sessions() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions open, want %d", srv.Sessions(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// dropCounter counts the connections the server reports dropped, by
// reason.
type dropCounter struct {
	mu      sync.Mutex
	dropped map[string]int
}

func (*dropCounter) SessionOpened()             {}
func (*dropCounter) SessionClosed()             {}
func (*dropCounter) MessageDone(milter.Summary) {}
func (*dropCounter) SessionPanic()              {}
func (d *dropCounter) ConnectionDropped(reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dropped == nil {
		d.dropped = map[string]int{}
	}
	d.dropped[reason]++
}

func (d *dropCounter) count(reason string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dropped[reason]
}

// closedByServer reports whether the server hung up on c: c reads EOF (or
// a reset) before a deadline of its own.
func closedByServer(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	return !errors.Is(err, os.ErrDeadlineExceeded)
}

// A connection that does not deliver its option negotiation in time is
// closed, whether it sends nothing or trickles part of a packet: it is not
// an MTA, which sends that packet as soon as it has connected. The IO
// timeout alone (libmilter's two hours) would let any local process hold
// descriptors and goroutines by the thousand.
func TestIdleConnectionBeforeNegotiationClosed(t *testing.T) {
	cases := []struct {
		name string
		send []byte
	}{
		{"nothing", nil},
		{"half a length", []byte{0, 0}},
		{"half the negotiation", optnegPacket()[:9]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obs := &dropCounter{}
			srv, addr := startServerObserved(t, milter.Config{
				Pipeline:           pipeline(&filtertest.Script{}),
				NegotiationTimeout: 200 * time.Millisecond,
			}, obs)
			c, err := net.Dial("tcp4", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if len(tc.send) > 0 {
				if _, err := c.Write(tc.send); err != nil {
					t.Fatal(err)
				}
			}
			if !closedByServer(t, c) {
				t.Fatal("connection still open 10s after connecting (negotiation timeout 200ms)")
			}
			waitSessions(t, srv, 0)
			if n := obs.count(milter.DropNoNegotiation); n != 1 {
				t.Errorf("%d connections reported dropped for no negotiation, want 1", n)
			}
		})
	}
}

// Bytes trickling in do not move the negotiation deadline: it runs from
// the accept, not from the last read.
func TestIdleTrickleBeforeNegotiationClosed(t *testing.T) {
	srv, addr := startServer(t, milter.Config{
		Pipeline:           pipeline(&filtertest.Script{}),
		NegotiationTimeout: 300 * time.Millisecond,
	})
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A length of 1 MiB, then one byte at a time, each well within the
	// negotiation timeout of the one before.
	trickle := append(binary.BigEndian.AppendUint32(nil, 1<<20), make([]byte, 200)...)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for _, b := range trickle {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
		}
	}()
	if !closedByServer(t, c) {
		t.Fatal("a connection trickling bytes was kept open for 10s (negotiation timeout 300ms)")
	}
	waitSessions(t, srv, 0)
}

// The negotiation timeout is for the first packet only: a session that
// negotiated may then wait between packets up to the IO timeout, as an
// MTA's does between the commands of its SMTP client.
func TestIdleAfterNegotiationKept(t *testing.T) {
	_, addr := startServer(t, milter.Config{
		Pipeline:           pipeline(&filtertest.Script{}),
		NegotiationTimeout: 100 * time.Millisecond,
	})
	s := dial(t, addr)
	time.Sleep(500 * time.Millisecond)
	act, err := s.Conn("client.example", gomilter.FamilyInet, 25, "192.0.2.1")
	if err != nil {
		t.Fatalf("connect after an idle pause: %v", err)
	}
	if act.Code != gomilter.ActContinue {
		t.Fatalf("connect: %v, want continue", act.Code)
	}
}

// With MaxSessions set, a connection beyond it is closed at once (the MTA
// applies its milter default action to it at once, rather than waiting
// for a reply), and connections are taken again once one has ended.
func TestAcceptBeyondMaxSessionsClosed(t *testing.T) {
	obs := &dropCounter{}
	srv, addr := startServerObserved(t, milter.Config{
		Pipeline:    pipeline(&filtertest.Script{}),
		MaxSessions: 2,
	}, obs)
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	waitSessions(t, srv, 2)

	over, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	if !closedByServer(t, over) {
		t.Fatal("a connection beyond MaxSessions was kept open")
	}
	if n := srv.Sessions(); n != 2 {
		t.Fatalf("%d sessions open, want 2", n)
	}
	if n := obs.count(milter.DropMaxSessions); n != 1 {
		t.Errorf("%d connections reported dropped at the limit, want 1", n)
	}

	held[0].Close()
	waitSessions(t, srv, 1)
	s := dial(t, addr)
	if _, err := s.Conn("client.example", gomilter.FamilyInet, 25, "192.0.2.1"); err != nil {
		t.Fatalf("a connection after one ended was refused: %v", err)
	}
}

// A connection refused at MaxSessions on a unix socket is logged with the
// peer's process and user, as a unix socket's peer has no address to name
// it by.
func TestRefusedUnixPeerNamed(t *testing.T) {
	var logs lockedBuffer
	srv := milter.NewServer(milter.Config{Pipeline: pipeline(&filtertest.Script{}), MaxSessions: 1},
		slog.New(slog.NewTextHandler(&logs, nil)), nil)
	sock := filepath.Join(t.TempDir(), "m.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, srv, ln)
	held, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	waitSessions(t, srv, 1)
	over, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	if !closedByServer(t, over) {
		t.Fatal("a connection beyond MaxSessions was kept open")
	}
	want := fmt.Sprintf(`remote="pid=%d uid=%d"`, os.Getpid(), os.Getuid())
	if !strings.Contains(logs.String(), want) {
		t.Errorf("log does not name the peer (%s):\n%s", want, logs.String())
	}
}
