package milter_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters/filtertest"
	"github.com/sluice-mail/sluice/milter"
)

// pipeListener hands the server one end of a net.Pipe per Dial: a pipe
// has no buffer, so a peer that does not read blocks the server's write
// at once, as a full socket buffer would.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Dial() net.Conn {
	client, server := net.Pipe()
	l.conns <- server
	return client
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	select {
	case <-l.closed:
	default:
		close(l.closed)
	}
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// A peer that stalls, in the middle of a packet or by never taking its
// reply, must not hold its session (a goroutine, a descriptor, up to
// 1 MiB of packet buffer and the pipeline of its configuration) for
// ever: the session ends after IOTimeout.
func TestStalledPeerSessionEnds(t *testing.T) {
	optneg := appendPacket(nil, 'O', binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 2), 0x3f), 0x7f))
	cases := []struct {
		name string
		send []byte
	}{
		{"half a length", []byte{0, 0}},
		{"half a packet", appendPacket(nil, 'H', []byte("h.example\x00"))[:8]},
		{"1 MiB declared, little sent", append(binary.BigEndian.AppendUint32(nil, 1<<20), "Hh"...)},
		// net.Pipe has no buffer: the reply to the negotiation blocks
		// until read, and this peer never reads.
		{"reply never read", optneg},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := milter.NewServer(milter.Config{Pipeline: pipeline(&filtertest.Script{}), IOTimeout: 100 * time.Millisecond}, nil, nil)
			ln := newPipeListener()
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			c := ln.Dial()
			defer c.Close()
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(tc.send); err != nil {
				t.Fatalf("write: %v", err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for srv.Sessions() != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("session still open 5s after the peer stalled (IOTimeout 100ms)")
				}
				time.Sleep(time.Millisecond)
			}
			// The server hung up: the peer reads EOF (after the reply it
			// never took, for the last case), not a deadline of its own.
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err := io.Copy(io.Discard, c)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("connection not closed by the server: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
			if err := <-served; err != milter.ErrServerClosed {
				t.Errorf("Serve returned %v", err)
			}
		})
	}
}
