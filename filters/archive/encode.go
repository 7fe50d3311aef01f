package archive

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluice-mail/sluice/filters"
)

// lineWriter turns message text as the MTA hands it to a milter (CRLF line
// ends) into the text of a local mailbox: CRLF becomes LF (a CR that is
// not followed by LF is kept as it is), and, with quote set, every line
// that matches ">*From " gets one more ">" in front (mboxrd: a reader
// takes one ">" off such lines and gets the original back, and no line of
// the message can pass for the "From " line that separates messages).
//
// It works on a stream: a CR or the start of a line split across two
// Write calls is held back until the next byte decides what it is.
type lineWriter struct {
	w     *bufio.Writer
	quote bool

	atStart bool // at the start of a line
	// The start of the line held back: gt '>'s, then the first from
	// bytes of "From ". Counts, not the bytes: a sender's line may start
	// with a run of '>' megabytes long, and a run that was held as bytes
	// and counted again for each '>' that joined it took time quadratic
	// in its length.
	gt   int64
	from int
	cr   bool  // a CR was the last byte seen
	last byte  // last byte written
	n    int64 // bytes written
}

func newLineWriter(w *bufio.Writer, quote bool) *lineWriter {
	return &lineWriter{w: w, quote: quote, atStart: true, last: '\n'}
}

const fromLine = "From "

func (l *lineWriter) put(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	n, err := l.w.Write(p)
	l.n += int64(n)
	l.last = p[len(p)-1]
	return err
}

func (l *lineWriter) putByte(c byte) error {
	l.n++
	l.last = c
	return l.w.WriteByte(c)
}

// Write implements io.Writer.
func (l *lineWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if l.cr {
			l.cr = false
			if p[0] == '\n' {
				if err := l.newline(); err != nil {
					return 0, err
				}
				p = p[1:]
				continue
			}
			if err := l.putByte('\r'); err != nil {
				return 0, err
			}
		}
		if l.atStart && l.quote {
			c := p[0]
			if l.gt == 0 && l.from == 0 && c != '>' && c != 'F' {
				// The common case: the line cannot be a "From " line.
				l.atStart = false
			} else if l.from == 0 && c == '>' {
				// The run of '>' goes on: take all of it in this write.
				i := 1
				for i < len(p) && p[i] == '>' {
					i++
				}
				l.gt += int64(i)
				p = p[i:]
				continue
			} else if l.from < len(fromLine) && c == fromLine[l.from] {
				l.from++
				p = p[1:]
				if l.from == len(fromLine) {
					// A "From " line: one '>' more than it had.
					l.gt++
					if err := l.flushHead(); err != nil {
						return 0, err
					}
					l.atStart = false
				}
				continue
			}
			// Not a "From " line: write what was held back, then go on
			// with c as ordinary text.
			if err := l.flushHead(); err != nil {
				return 0, err
			}
		}
		l.atStart = false
		i := indexCRLF(p)
		if i < 0 {
			if err := l.put(p); err != nil {
				return 0, err
			}
			break
		}
		if err := l.put(p[:i]); err != nil {
			return 0, err
		}
		if p[i] == '\n' {
			if err := l.newline(); err != nil {
				return 0, err
			}
			p = p[i+1:]
			continue
		}
		// A CR: decided by the next byte, which may be in the next Write.
		if i+1 == len(p) {
			l.cr = true
			break
		}
		if p[i+1] == '\n' {
			if err := l.newline(); err != nil {
				return 0, err
			}
			p = p[i+2:]
			continue
		}
		if err := l.putByte('\r'); err != nil {
			return 0, err
		}
		p = p[i+1:]
	}
	return total, nil
}

func (l *lineWriter) newline() error {
	l.atStart = true
	return l.putByte('\n')
}

// gtRun is written for a run of '>' held back, as many times as it takes.
var gtRun = bytes.Repeat([]byte{'>'}, 256)

// flushHead writes the start of the line held back: its '>'s, then what
// it matched of "From ".
func (l *lineWriter) flushHead() error {
	for l.gt > 0 {
		k := min(l.gt, int64(len(gtRun)))
		if err := l.put(gtRun[:k]); err != nil {
			return err
		}
		l.gt -= k
	}
	err := l.put([]byte(fromLine[:l.from]))
	l.from = 0
	return err
}

func indexCRLF(p []byte) int {
	for i, c := range p {
		if c == '\r' || c == '\n' {
			return i
		}
	}
	return -1
}

// finish writes what is held back and ends the text with a line end if it
// does not have one: an mbox message must end with a complete line.
func (l *lineWriter) finish() error {
	if l.cr {
		l.cr = false
		if err := l.putByte('\r'); err != nil {
			return err
		}
	}
	if err := l.flushHead(); err != nil {
		return err
	}
	if l.last != '\n' {
		return l.newline()
	}
	return nil
}

// envelope is what the archive records about a message besides its text.
type envelope struct {
	from    string
	postfix bool // the MTA is Postfix (see behindPostfix)
	to      []string
	queueID string
	verdict string
	decided filters.Decided
	at      time.Time
}

// Field names the archive adds at the top of the header. They start with
// X-Sluice-, which the classifier leaves out of tokens and message
// digests, so an archived copy trains as the message the daemon saw.
const (
	FieldQueueID    = "X-Sluice-Queue-ID"
	FieldEnvelopeTo = "X-Sluice-Envelope-To"
	FieldVerdict    = "X-Sluice-Verdict"
)

// fromLineFor returns the mbox separator line: "From ", the envelope
// sender ("MAILER-DAEMON" for the null sender, as local delivery agents
// write it) and the time in asctime(3) form. A blank in the sender (a
// quoted local part: "john smith"@example.com) is written "_": readers
// take the sender for the one word after "From " (see separatorLine in
// the mailbox reader), and a record whose line has two would be read as
// part of the record before it.
func fromLineFor(e envelope) string {
	sender := headerSafe(returnPath(e.from, e.postfix), true)
	if sender == "" {
		sender = "MAILER-DAEMON"
	}
	return "From " + sender + " " + e.at.Format("Mon Jan _2 15:04:05 2006") + "\n"
}

// returnPathField returns the Return-Path field a maildir copy starts
// with, as a mailbox's does: the sender, the blanks of a quoted local
// part included (both MTAs deliver MAIL FROM:<"john smith"@example.com>
// with "Return-Path: <"john smith"@example.com>"), on one line.
func returnPathField(e envelope) string {
	return "Return-Path: <" + headerSafe(returnPath(e.from, e.postfix), false) + ">\r\n"
}

// returnPath returns the envelope sender as the archive records it: as
// the MTA delivers the message from it, so that the copy names the
// sender the mailbox has, and "" for every form of the null sender
// (a source route to no address, "MAIL FROM:<@relay.example:>", is one,
// which Postfix delivers with "Return-Path: <>"). The caller makes the
// result safe to write (headerSafe).
//
// Postfix shows its milters the sender as the client wrote it, and
// delivers from the address it reads in it (filters.DeliveredSender):
// Postfix 3.7 delivers MAIL FROM:<x:alice@example.org;>,
// <"Alice" <alice@example.org>>, <alice@example.org (Alice)>,
// <alice@example.org,> and <"alice"@example.org> with
// "Return-Path: <alice@example.org>" (observed). Sendmail 8.17 delivers
// most forms as written (<"alice"@example.org>, <x:alice@example.org>),
// so behind another MTA the sender is recorded as written, less a
// source route, which both MTAs drop (RFC 5321 appendix C):
// MAIL FROM:<@relay.example:alice@example.org> is delivered with
// "Return-Path: <alice@example.org>".
func returnPath(from string, postfix bool) string {
	if postfix {
		return filters.DeliveredSender(from)
	}
	if _, _, null := filters.EnvelopeAddress(from); null {
		return ""
	}
	return filters.WithoutRoute(from)
}

// maxReason bounds the reason recorded in the verdict field, so the field
// stays one reasonable line.
const maxReason = 200

// archiveFields returns the fields the archive puts on top of the header.
func archiveFields(e envelope) []filters.Header {
	// The queue id field is written also when the MTA sent no queue id,
	// empty then: the first field of its name is the one selected by, and
	// without ours a field of that name in the message, the sender's,
	// would be first.
	hs := []filters.Header{{Name: FieldQueueID, Value: headerSafe(e.queueID, true)}}
	for _, r := range e.to {
		hs = append(hs, filters.Header{Name: FieldEnvelopeTo, Value: headerSafe(r, true)})
	}
	v := e.verdict + "; action=" + deliveredAction(e.decided.Action)
	if e.decided.Filter != "" {
		v += "; filter=" + headerSafe(e.decided.Filter, true)
	}
	if e.decided.Reason != "" {
		reason := headerSafe(e.decided.Reason, false)
		if len(reason) > maxReason {
			// Cut before the character that straddles the limit, so
			// the field stays valid UTF-8.
			n := maxReason
			for n > 0 && !utf8.RuneStart(reason[n]) {
				n--
			}
			reason = reason[:n]
		}
		v += "; reason=\"" + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(reason) + "\""
	}
	return append(hs, filters.Header{Name: FieldVerdict, Value: v})
}

// deliveredAction names the action as the log does: a message nobody
// objected to is accepted.
func deliveredAction(a filters.Action) string {
	if a == filters.Continue {
		return filters.Accept.String()
	}
	return a.String()
}

// headerSafe keeps a value the archive writes on one line: control
// characters (and, with noSpace, spaces) become "_", and bytes that are
// not UTF-8 U+FFFD (which a path makes one "_", as it makes the byte:
// see pathSafe).
func headerSafe(s string, noSpace bool) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (noSpace && r == ' ') {
			return '_'
		}
		return r
	}, s)
}

// writeMessage writes the archive's fields, the message's header fields
// and its body through lw. With mbox set, a Content-Length field gets the
// length of the body as the record stores it (see storedLength).
func writeMessage(ctx context.Context, lw *lineWriter, e envelope, m *filters.Message, mbox bool) error {
	headers := m.Headers
	if mbox {
		var err error
		if headers, err = withStoredLength(ctx, headers, m.Body); err != nil {
			return err
		}
	}
	var field []byte
	for _, h := range append(archiveFields(e), headers...) {
		// As the Bayes filter reads it: a stray line end in a value
		// stays inside its field, as in the mailbox.
		field = filters.AppendField(field[:0], h)
		if _, err := lw.Write(field); err != nil {
			return err
		}
	}
	if _, err := lw.Write([]byte("\r\n")); err != nil {
		return err
	}
	if m.Body != nil {
		if _, err := io.Copy(lw, ctxReader{ctx, m.Body.Reader()}); err != nil {
			return err
		}
	}
	return lw.finish()
}

// ctxReader stops a long copy when the filter's deadline passes: the
// session may go on without the filter then, and the append is rolled
// back rather than finished behind its back.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// withStoredLength returns headers with the value of every Content-Length
// field replaced by the length of body as an mbox record stores it, and
// headers itself when there is no such field.
//
// Readers that honour the field (the mboxcl2 convention) take it for the
// length of the record's body, from the empty line that ends the header
// to the empty line before the next "From " line: formail -s trusts it
// outright, mutt (mbox.c) when a "From " line (or the end of the file) is
// where it points. The sender's value counts the body as sent, with
// CRLF line ends and without mboxrd quoting, or is anything the sender
// chose: one past the end of the record made formail -s read the records
// after it as part of this one. mutt rewrites the field the same way
// when it saves a message to an mbox. The classifier leaves the field
// out of tokens and digests, so the copy still trains as the message the
// daemon saw.
func withStoredLength(ctx context.Context, headers []filters.Header, body *filters.Body) ([]filters.Header, error) {
	if !slices.ContainsFunc(headers, isContentLength) {
		return headers, nil
	}
	n, err := storedLength(ctx, body)
	if err != nil {
		return nil, err
	}
	out := slices.Clone(headers)
	for i := range out {
		if isContentLength(out[i]) {
			out[i].Value = strconv.FormatInt(n, 10)
		}
	}
	return out, nil
}

func isContentLength(h filters.Header) bool { return filters.SameName(h.Name, "Content-Length") }

// storedLength returns how many bytes body takes in an mbox record: with
// LF line ends, quoted, and ending in a line end (see lineWriter). A body
// starts a line, so it is quoted the same on its own as after the header.
func storedLength(ctx context.Context, body *filters.Body) (int64, error) {
	if body == nil {
		return 0, nil
	}
	lw := newLineWriter(bufio.NewWriter(io.Discard), true)
	if _, err := io.Copy(lw, ctxReader{ctx, body.Reader()}); err != nil {
		return 0, err
	}
	if err := lw.finish(); err != nil {
		return 0, err
	}
	return lw.n, nil
}
