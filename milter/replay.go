package milter

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/filters"
)

// Transaction is one message as an MTA reports it to a milter: the input
// of Replay.
type Transaction struct {
	// Conn is the client connection: its address and name, the HELO
	// argument ("" when the client gave none) and the macros the MTA
	// sends at connect and HELO.
	Conn filters.Conn
	// From and Rcpts are the envelope.
	From  filters.Address
	Rcpts []filters.Address
	// QueueID is the MTA's queue id, "" for none. Filters see it from the
	// first RCPT TO on, as Postfix sends it (macro i).
	QueueID string
	// Macros are the message macros the MTA sends with MAIL FROM.
	Macros map[string]string
	// Headers are the header fields as an MTA hands them to a milter; see
	// ParseMessage.
	Headers []filters.Header
	// Body is the body with CRLF line ends; nil for none.
	Body io.Reader
}

// Result is how a session would have ended the message of a Transaction.
type Result struct {
	// Action is the verdict the MTA is given: Accept for delivered mail
	// (with or without edits), Quarantine for mail delivered on hold,
	// Discard, Tempfail or Reject.
	Action filters.Action
	// Reply is the SMTP reply of a Reject or Tempfail, the default reply
	// when the filter gave none; nil for the other actions.
	Reply *filters.Reply
	// Filter names the filter whose verdict decided the action, Reason
	// says why ("" when no filter objected).
	Filter, Reason string
	// Stage is where the message ended: a connection refused at connect
	// or HELO, a message decided at MAIL, RCPT or end of header, or
	// StageEOM.
	Stage filters.Stage
	// Edits are the header edits sent to the MTA at end of message, in
	// order; none unless the message is delivered.
	Edits []filters.HeaderEdit
	// Headers is the header block the MTA delivers: the fields of the
	// Transaction with Edits made. Fields the MTA itself adds (its
	// Received:) are not in it, as a milter never sees them.
	Headers []filters.Header
	// Quarantine is the reason the MTA records with a held message.
	Quarantine string
	// Refused lists the recipients refused one at a time at RCPT TO. The
	// message went on for the others; when none was left the message
	// ends at RCPT TO with the action and reply of the first refusal of
	// the strongest kind (a tempfail when some recipient was only
	// deferred: the client will try again).
	Refused []Refusal
	// Decisions are the answers of every filter at every stage, in the
	// order they ran.
	Decisions []filters.Decision
	// HeadersSent and BodySent say whether the MTA hands the header
	// fields and the body over at all: sluice asks for them only when a
	// filter of the pipeline reads them.
	HeadersSent, BodySent bool
}

// Refusal is one recipient refused at RCPT TO.
type Refusal struct {
	Rcpt   string
	Action filters.Action
	Reply  filters.Reply
	Filter string
	Reason string
}

// chunkSize is the most body the MTAs send in one milter packet
// (MILTER_CHUNK_SIZE in libmilter and Postfix).
const chunkSize = 65535

// Replay runs one message through cfg's pipeline offline, stage by stage,
// the way a session does when an MTA reports the message over milter, and
// returns how the session would have ended it. It runs the session's own
// per-stage code (see flow): the same stages are asked, in the same order,
// with the same header and body steps negotiated away, and the same rules
// end a message early. Filter failures are logged to logger (nil: none).
// Replay does not close cfg.Pipeline.
func Replay(ctx context.Context, cfg Config, tx Transaction, logger *slog.Logger) (Result, error) {
	if len(tx.Rcpts) == 0 {
		return Result{}, fmt.Errorf("replay: no recipient")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &flow{cfg: cfg, ctx: ctx, log: logger}
	defer f.clearMessage()
	_, proto := options(cfg)
	res := Result{HeadersSent: proto&gomilter.OptNoHeaders == 0, BodySent: proto&gomilter.OptNoBody == 0}

	// The client's HELO is not known at connect.
	f.conn = tx.Conn
	f.conn.Helo = ""
	f.conn.Macros = maps.Clone(tx.Conn.Macros)
	if f.conn.Macros == nil {
		f.conn.Macros = map[string]string{}
	}
	if refused, _ := f.connStage(filters.StageConnect); refused {
		return f.connRefused(res, filters.StageConnect), nil
	}
	if tx.Conn.Helo != "" {
		f.conn.Helo = tx.Conn.Helo
		if refused, _ := f.connStage(filters.StageHelo); refused {
			return f.connRefused(res, filters.StageHelo), nil
		}
	}

	f.startMessage(tx.From)
	mergeMacros(f.msg.Macros, tx.Macros)
	if f.out.Final() || f.messageStage(filters.StageMailFrom) {
		return f.ended(res, filters.StageMailFrom), nil
	}
	for _, rcpt := range tx.Rcpts {
		if tx.QueueID != "" && f.msg.QueueID == "" {
			f.msg.QueueID = tx.QueueID
			f.msg.Macros["i"] = tx.QueueID
		}
		sr, refused, final := f.rcptStage(rcpt)
		if refused {
			res.Refused = append(res.Refused, Refusal{Rcpt: rcpt.Addr, Action: sr.Verdict.Action,
				Reply: replyOf(sr.Verdict.Action, sr.Verdict.Reply), Filter: sr.Filter, Reason: sr.Verdict.Reason})
			continue
		}
		if final {
			return f.ended(res, filters.StageRcptTo), nil
		}
	}
	if len(f.msg.Rcpts) == 0 {
		return f.allRefused(res), nil
	}

	if res.HeadersSent && f.addHeaders(tx.Headers...) {
		return f.ended(res, filters.StageHeaders), nil
	}
	if proto&gomilter.OptNoEOH == 0 {
		f.completeHeaders()
		if f.messageStage(filters.StageHeaders) {
			return f.ended(res, filters.StageHeaders), nil
		}
	}
	if res.BodySent && tx.Body != nil {
		buf := make([]byte, chunkSize)
		for {
			n, err := io.ReadFull(tx.Body, buf)
			if n > 0 {
				if err := f.bodyChunk(buf[:n]); err != nil {
					f.log.Error("storing message body", "queue_id", f.msg.QueueID, "err", err)
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			if err != nil {
				return Result{}, fmt.Errorf("replay: reading the body: %w", err)
			}
		}
	}
	action := f.endOfMessage()
	res = f.ended(res, filters.StageEOM)
	res.Action = action
	if filters.Delivers(action) {
		res.Edits = f.deliveredEdits()
		res.Headers = filters.ApplyEdits(cloneHeaders(tx.Headers), res.Edits)
	}
	if action == filters.Quarantine {
		res.Quarantine = f.quarantineReason()
	}
	return res, nil
}

// connRefused is the result of a connection refused at stage.
func (f *flow) connRefused(res Result, stage filters.Stage) Result {
	o := f.connDone
	res.Action, res.Reply, res.Filter, res.Reason = o.Action, replyPtr(o.Action, o.Reply), o.Filter, o.Reason
	res.Stage = stage
	res.Decisions = o.Decisions
	return res
}

// ended is the result of a message that ended at stage with out's
// verdict. Only an Accept can end a message early and still deliver it,
// and then with no edits pending (see filters.Outcome.Final).
func (f *flow) ended(res Result, stage filters.Stage) Result {
	o := f.out
	res.Action, res.Reply, res.Filter, res.Reason = o.Action, replyPtr(o.Action, o.Reply), o.Filter, o.Reason
	res.Stage = stage
	res.Decisions = append(append([]filters.Decision(nil), f.connDone.Decisions...), o.Decisions...)
	return res
}

// allRefused is the result of a message whose every recipient was
// refused: the MTA refuses the DATA that follows, and the client keeps
// the deferred recipients for a later try.
func (f *flow) allRefused(res Result) Result {
	res = f.ended(res, filters.StageRcptTo)
	pick := res.Refused[0]
	for _, r := range res.Refused {
		if r.Action == filters.Tempfail {
			pick = r
			break
		}
	}
	reply := pick.Reply
	res.Action, res.Reply, res.Filter, res.Reason = pick.Action, &reply, pick.Filter, pick.Reason
	return res
}

func replyOf(a filters.Action, r *filters.Reply) filters.Reply {
	if r == nil {
		return filters.DefaultReply(a)
	}
	return *r
}

func replyPtr(a filters.Action, r *filters.Reply) *filters.Reply {
	if a != filters.Reject && a != filters.Tempfail {
		return nil
	}
	reply := replyOf(a, r)
	return &reply
}

func cloneHeaders(hs []filters.Header) []filters.Header {
	return append([]filters.Header(nil), hs...)
}

// MTA names an MTA whose way of handing a message to a milter
// ParseMessage follows.
type MTA uint8

// The MTAs, as observed with Postfix 3.7 and Sendmail 8.17 (see
// docs/headerfix.md).
const (
	Postfix MTA = iota
	Sendmail
)

// ParseMessage splits an RFC 5322 message into header fields and body the
// way the MTA hands them to a milter: the field name as written; the
// value without the one space after the colon (both MTAs drop that space
// only: a tab, or the spaces after the first, stay, as the byte n-grams
// of the Bayes filter see them), and a field that had no such space
// marked (filters.Header.NoSpace), as both tell it; a folded value with a bare LF before
// each continuation line (its leading whitespace kept); the body with
// CRLF line ends and a final line end. A leading mbox
// "From " line is skipped (a leading "From :" field is not). As in Postfix, a line in the header block that
// is neither a field nor a continuation ends the header and begins the
// body.
//
// Stray characters in a header line are treated as the MTA treats them:
// both drop CRs at the end of a line; Postfix turns any other CR into a
// space and loses the rest of a line after a NUL, Sendmail keeps a CR
// (when configured to accept it at all) and drops a NUL. A bare LF ends
// a line in Postfix. Sendmail (configured to accept it) keeps a bare LF
// in the line, so that only CRLF ends one: ParseMessage does so for
// Sendmail when the header block holds a CRLF, the message as it went
// over SMTP. A message whose header lines all end in a bare LF is one
// stored on disk, which a client sends with CRLF line ends; there a LF
// ends a line for both MTAs. In the body Postfix treats a CR alike (CRs
// at the end of a line dropped, any other one a space) and keeps a NUL.
// ParseMessage does not add the Date:, From: and Message-Id: fields an
// MTA adds to a message that lacks them. For Postfix it cuts a header
// field longer than Postfix keeps of one (see postfixFieldLimit), as
// Postfix does before its milters see the field.
func ParseMessage(raw []byte, mta MTA) (headers []filters.Header, body []byte) {
	rest := raw
	if bytes.HasPrefix(rest, []byte("From ")) {
		// "From : alice@example.org" is a field (a blank may precede the
		// colon); an mbox line never is, as the text before its first
		// colon holds blanks.
		first, after, _ := bytes.Cut(rest, []byte("\n"))
		if _, _, ok := fieldOf(headerLine(first, mta)); !ok {
			rest = after
		}
	}
	eol := []byte("\n")
	if mta == Sendmail && crlfHeader(rest) {
		eol = []byte("\r\n")
	}
	var field postfixField
	for len(rest) > 0 {
		line, after, _ := bytes.Cut(rest, eol)
		text := headerLine(line, mta)
		if len(text) == 0 {
			// The blank line between header and body.
			rest = after
			break
		}
		if (text[0] == ' ' || text[0] == '\t') && len(headers) > 0 {
			h := &headers[len(headers)-1]
			if mta == Postfix {
				text = field.next(text)
			}
			if text != nil {
				h.Value += "\n" + string(text)
			}
		} else if name, value, ok := fieldOf(text); ok {
			if mta == Postfix {
				field = postfixField{}
				name, value, _ = fieldOf(field.next(text))
			}
			// Both MTAs tell a field without a space after its colon
			// (sluice asks for SMFIP_HDR_LEADSPC).
			headers = append(headers, filters.Header{Name: name, Value: value, NoSpace: !spaced(text)})
		} else {
			break
		}
		rest = after
	}
	if mta == Postfix {
		return headers, postfixBody(rest)
	}
	return headers, crlf(rest)
}

// postfixFieldLimit is the most bytes of one header field that Postfix
// keeps (observed with Postfix 3.7.11, the same with header_size_limit
// at its default of 102400 and at 4 MiB): the field as it stores it, its
// name and colon and every line without its line end, with one LF
// between lines. What is past it the milters never see, and Postfix
// delivers the field so cut.
const postfixFieldLimit = 60000

// postfixRecordLen is the length of the records Postfix splits a longer
// line into (line_length_limit, 2048 by default). A continuation line
// whose first record does not fit in a field is dropped whole, with the
// rest of the field; a line whose first record fits is cut at the limit
// (observed with Postfix 3.7.11).
const postfixRecordLen = 2048

// postfixField tracks the size of the field being read, to cut it where
// Postfix cuts it.
type postfixField struct {
	size int
	cut  bool
}

// next returns what Postfix keeps of the next line of the field (its
// first line, then each continuation line): the line, a cut part of it,
// or nil when the line is dropped.
func (f *postfixField) next(line []byte) []byte {
	if f.cut {
		return nil
	}
	sep := 0
	if f.size > 0 {
		sep = 1 // the LF before a continuation line
	}
	if f.size+sep+min(len(line), postfixRecordLen) > postfixFieldLimit {
		f.cut = true
		return nil
	}
	if room := postfixFieldLimit - f.size - sep; len(line) > room {
		line = line[:room]
		f.cut = true
	}
	f.size += sep + len(line)
	return line
}

// crlfHeader reports whether a line of the header block at the start of
// raw, the blank line after it included, ends in CRLF, lines taken to end
// at each LF.
func crlfHeader(raw []byte) bool {
	for len(raw) > 0 {
		line, after, found := bytes.Cut(raw, []byte("\n"))
		if !found {
			return false
		}
		if bytes.HasSuffix(line, []byte("\r")) {
			return true
		}
		if len(line) == 0 {
			return false
		}
		raw = after
	}
	return false
}

// postfixBody is crlf as Postfix hands a body to a milter (observed with
// Postfix 3.7.11): the CRs at the end of a line are dropped and any other
// CR becomes a space.
func postfixBody(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	out := make([]byte, 0, len(b)+len(b)/32+2)
	for len(b) > 0 {
		line, after, found := bytes.Cut(b, []byte("\n"))
		for _, c := range bytes.TrimRight(line, "\r") {
			if c == '\r' {
				c = ' '
			}
			out = append(out, c)
		}
		out = append(out, '\r', '\n')
		if !found {
			break
		}
		b = after
	}
	return out
}

// headerLine is a line of the header block as mta passes it on.
func headerLine(line []byte, mta MTA) []byte {
	line = bytes.TrimRight(line, "\r")
	if mta == Postfix {
		if i := bytes.IndexByte(line, 0); i >= 0 {
			line = line[:i]
		}
		return bytes.ReplaceAll(line, []byte("\r"), []byte(" "))
	}
	return bytes.ReplaceAll(line, []byte{0}, nil)
}

// fieldOf splits "Name: value". The name is printable ASCII without
// space or colon (RFC 5322 2.2); Postfix also accepts spaces between the
// name and the colon, which it drops. The value loses the one space
// after the colon, as both MTAs take it off (a milter that does not
// negotiate SMFIP_HDR_LEADSPC never sees it), and nothing else.
func fieldOf(line []byte) (name, value string, ok bool) {
	n, v, found := bytes.Cut(line, []byte(":"))
	if !found {
		return "", "", false
	}
	n = bytes.TrimRight(n, " \t")
	if len(n) == 0 {
		return "", "", false
	}
	for _, c := range n {
		if c <= ' ' || c >= 0x7f {
			return "", "", false
		}
	}
	return string(n), string(bytes.TrimPrefix(v, []byte(" "))), true
}

// spaced reports whether the field line has a space after its colon.
func spaced(line []byte) bool {
	_, v, _ := bytes.Cut(line, []byte(":"))
	return len(v) > 0 && v[0] == ' '
}

// crlf gives every line of b a CRLF end, as SMTP carries it.
func crlf(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	out := make([]byte, 0, len(b)+len(b)/32+2)
	for len(b) > 0 {
		line, after, found := bytes.Cut(b, []byte("\n"))
		out = append(out, bytes.TrimSuffix(line, []byte("\r"))...)
		out = append(out, '\r', '\n')
		if !found {
			break
		}
		b = after
	}
	return out
}
