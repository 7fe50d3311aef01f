package mtatest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Bounds on what the SMTP client accepts from a server.
const (
	maxReplyLine  = 64 << 10 // bytes per reply line
	maxReplyLines = 1000     // lines per multi-line reply
)

// DefaultSMTPTimeout bounds each exchange (command and reply) of a Client.
// It is longer than the milter timeouts the harness configures, so that an
// MTA waiting for a slow milter answers before the client gives up.
const DefaultSMTPTimeout = 60 * time.Second

// Reply is an SMTP reply exactly as the server sent it (RFC 5321 section
// 4.2).
type Reply struct {
	// Code is the three-digit reply code, e.g. 250.
	Code int
	// Text is the text of every line without the "250-"/"250 " prefix and
	// line ending, lines joined by "\n", e.g. "2.0.0 Ok: queued as 4XyZ".
	Text string
	// Raw is the reply byte for byte, line endings included.
	Raw string
}

// String returns the reply as received, without the final line ending.
func (r Reply) String() string { return strings.TrimRight(r.Raw, "\r\n") }

// QueueID returns the queue id in a reply to the end of DATA: Postfix
// answers "250 2.0.0 Ok: queued as 4XyZ12", Sendmail "250 2.0.0
// 6ANDwiwV006970 Message accepted for delivery". It returns "" for any other
// reply.
func (r Reply) QueueID() string {
	if r.Code != 250 {
		return ""
	}
	if _, after, ok := strings.Cut(r.Text, "queued as "); ok {
		if f := strings.Fields(after); len(f) > 0 {
			return f[0]
		}
	}
	if before, _, ok := strings.Cut(r.Text, " Message accepted for delivery"); ok {
		if f := strings.Fields(before); len(f) > 0 {
			return f[len(f)-1]
		}
	}
	return ""
}

// Client is a raw SMTP client for tests. It sends commands as given, sends
// message data unchanged apart from dot-stuffing, and returns replies
// exactly. Methods that return only a Reply end the test (t.Fatal) on a
// network error, so they must be called from the test's goroutine; Exchange
// and ReadReply return the error instead.
type Client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader

	// Greeting is the server's 220 (or other) greeting.
	Greeting Reply
	// Timeout bounds each exchange; DefaultSMTPTimeout unless changed.
	Timeout time.Duration
}

// DialSMTP connects to addr, reads the greeting and registers a cleanup that
// closes the connection. The test fails if either step fails.
func DialSMTP(t testing.TB, addr string) *Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("smtp dial %s: %v", addr, err)
	}
	c := &Client{t: t, conn: conn, r: newLineReader(conn), Timeout: DefaultSMTPTimeout}
	t.Cleanup(c.Close)
	g, err := c.ReadReply()
	if err != nil {
		t.Fatalf("smtp %s: greeting: %v", addr, err)
	}
	c.Greeting = g
	return c
}

// Close closes the connection without QUIT. Calling it twice is harmless.
func (c *Client) Close() { c.conn.Close() }

// WriteRaw writes b to the connection as it is: no line ending is added.
// Use it for pipelining or malformed commands; read the replies with
// ReadReply.
func (c *Client) WriteRaw(b []byte) error {
	if err := c.conn.SetWriteDeadline(time.Now().Add(c.Timeout)); err != nil {
		return fmt.Errorf("smtp %s: %w", c.conn.RemoteAddr(), err)
	}
	if _, err := c.conn.Write(b); err != nil {
		return fmt.Errorf("smtp %s: write: %w", c.conn.RemoteAddr(), err)
	}
	return nil
}

// ReadReply reads one (possibly multi-line) reply.
func (c *Client) ReadReply() (Reply, error) {
	if err := c.conn.SetReadDeadline(time.Now().Add(c.Timeout)); err != nil {
		return Reply{}, fmt.Errorf("smtp %s: %w", c.conn.RemoteAddr(), err)
	}
	r, err := readReply(c.r)
	if err != nil {
		return r, fmt.Errorf("smtp %s: %w", c.conn.RemoteAddr(), err)
	}
	return r, nil
}

// Exchange sends line followed by CRLF and reads the reply. line is sent
// as is, so it may contain anything, bare CR and LF included.
func (c *Client) Exchange(line string) (Reply, error) {
	if err := c.WriteRaw([]byte(line + "\r\n")); err != nil {
		return Reply{}, err
	}
	return c.ReadReply()
}

// Cmd sends one command line (without CRLF, e.g. "EHLO client.example")
// and returns the reply.
func (c *Client) Cmd(line string) Reply {
	c.t.Helper()
	r, err := c.Exchange(line)
	if err != nil {
		c.t.Fatalf("%q: %v", line, err)
	}
	return r
}

// Data sends DATA and, if the server answers 354, the message raw as
// encoded by EncodeData, and returns the final reply. If DATA itself is
// refused, that reply is returned and nothing else is sent.
func (c *Client) Data(raw []byte) Reply {
	c.t.Helper()
	r := c.Cmd("DATA")
	if r.Code != 354 {
		return r
	}
	if err := c.WriteRaw(EncodeData(raw)); err != nil {
		c.t.Fatalf("DATA: %v", err)
	}
	r, err := c.ReadReply()
	if err != nil {
		c.t.Fatalf("end of DATA: %v", err)
	}
	return r
}

// Send runs one mail transaction: MAIL FROM:<from>, RCPT TO:<rcpt> for each
// recipient, then Data(raw). It stops at the first reply that is not 2xx
// (354 for DATA) and returns it, leaving the transaction for the caller to
// RSET; otherwise it returns the reply to the end of data, whose QueueID
// identifies the message. EHLO must have been sent before.
func (c *Client) Send(from string, to []string, raw []byte) Reply {
	c.t.Helper()
	r := c.Cmd("MAIL FROM:<" + from + ">")
	if r.Code/100 != 2 {
		return r
	}
	for _, rcpt := range to {
		r = c.Cmd("RCPT TO:<" + rcpt + ">")
		if r.Code/100 != 2 {
			return r
		}
	}
	return c.Data(raw)
}

// Quit sends QUIT and returns the reply (normally 221).
func (c *Client) Quit() Reply {
	c.t.Helper()
	return c.Cmd("QUIT")
}

// EncodeData returns what Data sends after the 354 reply: raw with a dot
// added in front of every line that starts with one (RFC 5321 section
// 4.5.2), followed by the end-of-data line. Nothing else is changed: bare
// CR and bare LF stay as they are. Because Postfix and Sendmail both end a
// line at a bare LF too, a dot after a bare LF is doubled as well. If raw
// does not end in CRLF, a CRLF is added before the final ".", so a message
// ending in a bare LF gets an extra empty line.
func EncodeData(raw []byte) []byte {
	out := make([]byte, 0, len(raw)+len(raw)/64+5)
	atLineStart := true
	for _, b := range raw {
		if atLineStart && b == '.' {
			out = append(out, '.')
		}
		out = append(out, b)
		atLineStart = b == '\n'
	}
	if len(raw) > 0 && !bytes.HasSuffix(raw, []byte("\r\n")) {
		out = append(out, '\r', '\n')
	}
	return append(out, '.', '\r', '\n')
}

func newLineReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, maxReplyLine) }

// readReply reads one reply: lines "250-text" continue it, "250 text" or
// "250" ends it.
func readReply(br *bufio.Reader) (Reply, error) {
	var r Reply
	var raw strings.Builder
	var text []string
	for n := 0; n < maxReplyLines; n++ {
		line, err := br.ReadSlice('\n')
		raw.Write(line)
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				err = fmt.Errorf("reply line longer than %d bytes", maxReplyLine)
			}
			r.Raw = raw.String()
			if raw.Len() > 0 {
				return r, fmt.Errorf("reading reply after %q: %w", r.Raw, err)
			}
			return r, fmt.Errorf("reading reply: %w", err)
		}
		s := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
		if len(s) < 3 {
			return r, fmt.Errorf("malformed reply line %q", s)
		}
		code, err := strconv.Atoi(s[:3])
		if err != nil || code < 100 || code > 599 {
			return r, fmt.Errorf("malformed reply line %q", s)
		}
		if n == 0 {
			r.Code = code
		} else if code != r.Code {
			return r, fmt.Errorf("reply line %q: code differs from %d", s, r.Code)
		}
		last := len(s) == 3 || s[3] == ' '
		if !last && s[3] != '-' {
			return r, fmt.Errorf("malformed reply line %q", s)
		}
		if len(s) > 4 {
			text = append(text, s[4:])
		} else {
			text = append(text, "")
		}
		if last {
			r.Text = strings.Join(text, "\n")
			r.Raw = raw.String()
			return r, nil
		}
	}
	return r, fmt.Errorf("reply longer than %d lines", maxReplyLines)
}
