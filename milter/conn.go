package milter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// conn wraps one MTA connection. It does what go-milter v0.5.0 cannot:
//
//   - It reads the packet framing of what go-milter reads, to keep the ESMTP
//     parameters of MAIL FROM and RCPT TO. go-milter passes handlers only the
//     address (the first string of SMFIC_MAIL/SMFIC_RCPT); the parameters
//     follow it as further NUL-terminated strings in the same packet.
//   - It keeps the client address of SMFIC_CONNECT as written. Sendmail
//     writes an IPv6 client with its "IPv6:" label (anynet_ntop), which
//     go-milter's net.ParseIP rejects, so its handler gets no address.
//   - It notes a QUIT, which go-milter answers by ending the session without
//     a callback, so that the session can tell an MTA that ended the
//     connection from one that was lost.
//   - It tells the server when the session goroutine is done with it: go-milter
//     closes the connection as the very last step of its session loop, so
//     Close marks the point after which the session's state may be freed.
//   - It bounds each read and write with a deadline. go-milter sets none, so
//     a peer that stalls (half a packet sent, a reply never read) would
//     hold the session, its goroutine and the pipeline of its config for
//     ever. The first packet has a deadline of its own, fixed at accept
//     (see DefaultNegotiationTimeout).
//   - It fails the write of a message's final reply over TCP when the MTA
//     has already closed the connection, as the write itself fails over a
//     unix socket, so that the session can say the verdict was lost.
//   - It asks for header values with their leading space (SMFIP_HDR_LEADSPC)
//     only of an MTA that offers it. go-milter answers the MTA's option
//     negotiation with the server's options whatever the MTA offered, and
//     an MTA that does not know one refuses the milter; so the wrapper
//     reads the offer and takes the bit out of the answer when it is not
//     there, and leadSpace says which it was.
//
// go-milter reads the 4-byte length and then the payload straight from the
// connection, with no buffering of its own, so by the time it dispatches a
// packet to a handler this wrapper has seen all of it.
type conn struct {
	net.Conn

	// frame parser state; used only by the session goroutine (Read).
	hdr      [4]byte
	hdrN     int
	left     uint32
	haveCode bool
	code     byte
	capture  bool
	buf      []byte
	lastArgs []string
	// connectAddr is the address string of the last SMFIC_CONNECT.
	connectAddr string
	// macroStage is the stage (the command code) of the last SMFIC_MACRO,
	// whose macros go-milter hands every callback until the next one;
	// wantStage is set while that code is still to come.
	macroStage byte
	wantStage  bool

	// onWrite runs after each successful write, in the session goroutine.
	onWrite func()
	// onWait, when set, runs in the session goroutine as Read is about
	// to wait for data from the MTA; boundary says that no byte of the
	// next packet has been read, so the reply to every packet before it
	// was written. It reports whether the session ends there instead
	// (see session.waitRead); onWaited runs once the read returns.
	onWait   func(boundary bool) bool
	onWaited func()
	// verdictNext, when set, tells Write that the packet it writes
	// carries the final reply of a message; run in the session goroutine.
	verdictNext func() bool
	// writeErr is the error of the last write that failed; used only by
	// the session goroutine.
	writeErr error

	// timeout bounds each read and write; interrupted is set once
	// interrupt has run, so that no later deadline undoes it.
	timeout     time.Duration
	interrupted atomic.Bool
	// firstBy is when the first packet (the MTA's option negotiation)
	// must have arrived whole; zero once it has. Reads before then do
	// not move this deadline, so a peer trickling bytes gains nothing.
	// lateFirst is set when it passed; both are used only by the
	// session goroutine.
	firstBy   time.Time
	lateFirst bool
	// quit is set once a whole SMFIC_QUIT arrived: the MTA ended the
	// connection on purpose. Used only by the session goroutine.
	quit bool

	// offered is the protocol mask of the MTA's last option negotiation
	// (SMFIP_*); negotiating is set when one arrived whole and sluice's
	// answer is the next thing written, and leadSpace is set if that
	// answer kept SMFIP_HDR_LEADSPC. Used only by the session goroutine.
	offered     uint32
	negotiating bool
	leadSpace   bool

	// tcp is the socket of a TCP connection, for quickAck; nil for a
	// unix socket. unanswered is set when a packet that gets no reply (a
	// macro packet, an abort) ended in the data just read.
	tcp        syscall.RawConn
	unanswered bool

	closeOnce sync.Once
	done      chan struct{}
}

// newConn wraps c, whose first packet must arrive whole within first
// and every later read and write within timeout.
func newConn(c net.Conn, timeout, first time.Duration) *conn {
	wc := &conn{Conn: c, timeout: timeout, firstBy: time.Now().Add(first), done: make(chan struct{})}
	if tc, ok := c.(*net.TCPConn); ok {
		if raw, err := tc.SyscallConn(); err == nil {
			wc.tcp = raw
		}
	}
	return wc
}

// maxCapture bounds what is kept of a MAIL/RCPT packet; real ones are a few
// hundred bytes, and go-milter itself refuses packets over 1 MiB.
const maxCapture = 64 << 10

// Read implements net.Conn, watching packet boundaries as data goes by.
func (c *conn) Read(p []byte) (int, error) {
	if c.onWait != nil {
		if c.onWait(c.hdrN == 0) {
			// To go-milter the end of its input, between two
			// packets: it ends the session without a log line.
			return 0, io.EOF
		}
		defer c.onWaited()
	}
	first := !c.firstBy.IsZero()
	if first {
		// The IO timeout holds here too, when it is the shorter.
		c.deadline(c.Conn.SetReadDeadline, minTime(c.firstBy, time.Now().Add(c.timeout)))
	} else {
		c.extend(c.Conn.SetReadDeadline)
	}
	n, err := c.Conn.Read(p)
	c.feed(p[:n])
	if c.unanswered && c.tcp != nil {
		// Acknowledged now, not with a reply that will not come.
		quickAck(c.tcp)
	}
	c.unanswered = false
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		switch {
		case c.interrupted.Load():
			// interrupt's deadline is how the server closes a session
			// on purpose, when it drains for a shutdown. go-milter logs
			// every read error but io.EOF, and an "i/o timeout" at every
			// stop reads like a fault: to go-milter this is the end of
			// its input.
			err = io.EOF
		case first:
			// The session logs this itself, once, in its own words.
			c.lateFirst = true
			err = io.EOF
		}
	}
	return n, err
}

func (c *conn) feed(b []byte) {
	for len(b) > 0 {
		if c.hdrN < 4 {
			k := copy(c.hdr[c.hdrN:], b)
			c.hdrN += k
			b = b[k:]
			if c.hdrN == 4 {
				c.left = binary.BigEndian.Uint32(c.hdr[:])
				c.haveCode = false
				c.buf = c.buf[:0]
				if c.left == 0 {
					// go-milter rejects such a packet and closes; start over.
					c.hdrN = 0
				}
			}
			continue
		}
		if !c.haveCode {
			c.haveCode = true
			c.code = b[0]
			c.capture = (c.code == 'M' || c.code == 'R' || c.code == 'C' || c.code == 'O') && c.left <= maxCapture
			if c.code == 'C' {
				// A connect too large to keep leaves no stale address.
				c.connectAddr = ""
			}
			if c.code == 'D' {
				c.macroStage, c.wantStage = 0, true
			}
			b = b[1:]
			c.left--
			if c.left == 0 {
				c.packetDone()
			}
			continue
		}
		if c.wantStage {
			c.macroStage, c.wantStage = b[0], false
		}
		k := len(b)
		if uint32(k) > c.left {
			k = int(c.left)
		}
		if c.capture {
			c.buf = append(c.buf, b[:k]...)
		}
		b = b[k:]
		c.left -= uint32(k)
		if c.left == 0 {
			c.packetDone()
		}
	}
}

func (c *conn) packetDone() {
	c.firstBy = time.Time{}
	c.unanswered = c.unanswered || c.code == 'D' || c.code == 'A'
	if c.code == 'Q' {
		c.quit = true
	}

	switch {
	case c.code == 'O':
		// Version, actions and protocol steps, 4 bytes each.
		c.offered = 0
		if c.capture && len(c.buf) >= 12 {
			c.offered = binary.BigEndian.Uint32(c.buf[8:12])
		}
		c.negotiating = true
	case c.capture && c.code == 'C':
		c.connectAddr = connectAddress(c.buf)
	case c.capture:
		c.lastArgs = esmtpArgs(c.buf)
	}
	c.hdrN = 0
	c.capture = false
	c.wantStage = false
}

// esmtpArgs returns the strings after the first one in a MAIL/RCPT payload.
func esmtpArgs(b []byte) []string {
	parts := bytes.Split(b, []byte{0})
	var args []string
	for _, p := range parts[1:] {
		if len(p) > 0 {
			args = append(args, string(p))
		}
	}
	return args
}

// connectAddress returns the address string of an SMFIC_CONNECT payload:
// the host name, NUL, the family, a 2-byte port for '4' and '6', then the
// address, NUL-terminated. It returns "" for a payload too short to hold
// one.
func connectAddress(b []byte) string {
	_, rest, ok := bytes.Cut(b, []byte{0})
	if !ok || len(rest) == 0 {
		return ""
	}
	family := rest[0]
	rest = rest[1:]
	if family == '4' || family == '6' {
		if len(rest) < 2 {
			return ""
		}
		rest = rest[2:]
	}
	addr, _, _ := bytes.Cut(rest, []byte{0})
	return string(addr)
}

// macrosFor returns macros, what go-milter hands a callback, if the MTA
// sent them for stage (the callback's command code), else nil. go-milter
// keeps the macros of the last macro packet until the next one, so a
// callback of a stage the MTA sends none for gets an earlier stage's, up
// to those of the previous message's end when no abort came in between.
func (c *conn) macrosFor(stage byte, macros map[string]string) map[string]string {
	if c.macroStage != stage {
		return nil
	}
	return macros
}

// takeArgs returns the ESMTP parameters of the last MAIL/RCPT packet.
func (c *conn) takeArgs() []string {
	a := c.lastArgs
	c.lastArgs = nil
	return a
}

// errClosedByMTA is the write error of a final reply that went out after
// the MTA had closed the connection.
var errClosedByMTA = errors.New("the MTA had closed the connection before the reply")

// optLeadSpace is SMFIP_HDR_LEADSPC.
const optLeadSpace = 1 << 20

// answer adjusts sluice's answer to an option negotiation, the first
// packet written after the MTA's negotiation arrived whole (go-milter
// writes a packet that small in one piece): the header values' leading
// space is asked for only if the MTA offered it. Nothing else written is
// looked at: go-milter writes a packet over 4 kB in several pieces, and a
// piece of a long header value may look like an answer. It returns p
// itself, or a copy with the bit taken out.
func (c *conn) answer(p []byte) []byte {
	if !c.negotiating {
		return p
	}
	c.negotiating = false
	if len(p) < 17 || p[4] != 'O' {
		return p
	}
	proto := binary.BigEndian.Uint32(p[13:17])
	c.leadSpace = proto&optLeadSpace != 0 && c.offered&optLeadSpace != 0
	if proto&optLeadSpace == 0 || c.leadSpace {
		return p
	}
	q := bytes.Clone(p)
	binary.BigEndian.PutUint32(q[13:17], proto&^optLeadSpace)
	return q
}

// Write implements net.Conn.
func (c *conn) Write(p []byte) (int, error) {
	p = c.answer(p)
	c.extend(c.Conn.SetWriteDeadline)
	// Over TCP a write into a connection the peer has closed succeeds:
	// the kernel queues the bytes and the peer's reset comes after. The
	// MTA closes when its milter timeout runs out before the verdict, so
	// for the packet that carries one, look first whether it is still
	// there; one system call per message. (Over a unix socket the write
	// itself fails.)
	closed := c.tcp != nil && c.verdictNext != nil && c.verdictNext() && peerClosed(c.tcp)
	n, err := c.Conn.Write(p)
	if err == nil && closed {
		// The bytes went out all the same, which costs nothing, but the
		// MTA stopped waiting for them and applies its default action:
		// the reply counts as not delivered, and the session ends.
		err = &net.OpError{Op: "write", Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: errClosedByMTA}
	}
	if err != nil {
		c.writeErr = err
	} else if c.onWrite != nil {
		c.onWrite()
	}
	return n, err
}

// Close implements net.Conn. go-milter calls it once its session loop has
// ended; it is the session's last act.
func (c *conn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() { close(c.done) })
	return err
}

// interrupt makes the session's pending and future reads and writes fail at
// once, so go-milter's loop ends and closes the connection itself. The
// server uses it instead of Close so that the session goroutine stays the
// only one that frees session state.
func (c *conn) interrupt() {
	c.interrupted.Store(true)
	c.Conn.SetDeadline(time.Unix(1, 0))
}

// extend moves a deadline (set is SetReadDeadline or SetWriteDeadline) to
// timeout from now. interrupt may run at any moment in between: it sets
// its flag before its deadline, and extend checks the flag after setting
// its own, so the deadline in the past always wins.
func (c *conn) extend(set func(time.Time) error) {
	c.deadline(set, time.Now().Add(c.timeout))
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// deadline sets t with set, unless interrupt has run: then its deadline in
// the past stays.
func (c *conn) deadline(set func(time.Time) error, t time.Time) {
	set(t)
	if c.interrupted.Load() {
		set(time.Unix(1, 0))
	}
}

// oneConnListener hands one connection to a go-milter Server. Serving each
// connection with its own go-milter Server lets the server bind the handler
// to its connection and choose the negotiated options per connection (from
// the config in force when it arrived). The second Accept blocks until the
// session has ended, then go-milter's Serve returns.
type oneConnListener struct {
	c    *conn
	once sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	var first bool
	l.once.Do(func() { first = true })
	if first {
		return l.c, nil
	}
	<-l.c.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return l.c.LocalAddr() }
