package milter_test

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/milter"
)

// rawMTA speaks the milter protocol packet by packet, so a test can send
// what go-milter's client never does: a QUIT in the middle of a message
// without an abort before it.
type rawMTA struct {
	t *testing.T
	c net.Conn
}

func dialRaw(t *testing.T, addr string) *rawMTA {
	t.Helper()
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return &rawMTA{t: t, c: c}
}

// send writes one packet; with reply set it reads the answer and returns
// its code.
func (m *rawMTA) send(code byte, data []byte, reply bool) byte {
	m.t.Helper()
	p := make([]byte, 5, 5+len(data))
	binary.BigEndian.PutUint32(p, uint32(1+len(data)))
	p[4] = code
	if _, err := m.c.Write(append(p, data...)); err != nil {
		m.t.Fatal(err)
	}
	if !reply {
		return 0
	}
	return m.read("reply to " + string(rune(code)))
}

// read reads one reply and returns its code; what names it in a failure.
func (m *rawMTA) read(what string) byte {
	m.t.Helper()
	var hdr [4]byte
	if _, err := io.ReadFull(m.c, hdr[:]); err != nil {
		m.t.Fatalf("%s: %v", what, err)
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(m.c, body); err != nil || len(body) == 0 {
		m.t.Fatalf("%s: %v", what, err)
	}
	return body[0]
}

// startMessage negotiates protocol version 6 with the actions given and
// every protocol step, and sends the connection of client.example
// (192.0.2.7) and MAIL FROM:<a@example.org>, each of which must be
// answered with continue.
func (m *rawMTA) startMessage(actions gomilter.OptAction) {
	m.t.Helper()
	opts := make([]byte, 12)
	binary.BigEndian.PutUint32(opts[0:], 6)
	binary.BigEndian.PutUint32(opts[4:], uint32(actions))
	binary.BigEndian.PutUint32(opts[8:], 0x1fffff)
	if code := m.send('O', opts, true); code != 'O' {
		m.t.Fatalf("negotiation: reply %c", code)
	}
	conn := append([]byte("client.example\x004"), 0, 25)
	conn = append(conn, "192.0.2.7\x00"...)
	if code := m.send('C', conn, true); code != 'c' {
		m.t.Fatalf("connect: reply %c", code)
	}
	if code := m.send('M', []byte("<a@example.org>\x00"), true); code != 'c' {
		m.t.Fatalf("MAIL: reply %c", code)
	}
}

// When the SMTP client quits in the middle of a message, Sendmail ends
// the milter connection with a QUIT and no abort (observed with 8.17;
// Postfix aborts first). The message was abandoned by the MTA, and the
// log line says so, not that the connection to the MTA was lost, which
// is what an administrator looks for when the MTA and sluice cannot talk.
// A connection that just ends keeps "connection lost".
func TestQuitInMessageIsAbortedByMTA(t *testing.T) {
	for _, tc := range []struct {
		name   string
		quit   bool
		reason string
	}{
		{"quit", true, "aborted by MTA"},
		{"closed", false, "connection lost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sums := &summaries{}
			_, addr := startServerObserved(t, milter.Config{Pipeline: pipeline()}, sums)
			m := dialRaw(t, addr)
			m.startMessage(gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine)
			if code := m.send('R', []byte("<b@example.org>\x00"), true); code != 'c' {
				t.Fatalf("RCPT: reply %c", code)
			}
			if tc.quit {
				m.send('Q', nil, false)
			}
			m.c.Close()
			sums.wait()
			sums.mu.Lock()
			defer sums.mu.Unlock()
			if len(sums.sums) != 1 {
				t.Fatalf("%d message summaries, want 1", len(sums.sums))
			}
			s := sums.sums[0]
			if !s.Aborted || s.Reason != tc.reason || len(s.Rcpts) != 1 || s.Rcpts[0] != "b@example.org" {
				t.Errorf("summary aborted=%v reason %q rcpts %q, want aborted, %q, [b@example.org]", s.Aborted, s.Reason, s.Rcpts, tc.reason)
			}
		})
	}
}
