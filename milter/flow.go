package milter

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/sluice-mail/sluice/filters"
)

// flow is the part of a session that knows nothing of the protocol: the
// connection and the message as the filters see them, the pipeline run at
// each stage, and after each stage the decision whether the message goes
// on or ends. A session drives it from go-milter's callbacks and Replay
// drives it from a message file, so that a dry run (sluice test) decides
// what the daemon decides by running the very same code.
type flow struct {
	cfg Config
	ctx context.Context
	log *slog.Logger

	conn     filters.Conn
	connDone filters.Outcome // verdicts at connect and HELO
	// atConnect is connDone as the connect stage left it, for a HELO
	// that comes again.
	atConnect filters.Outcome
	msg       *filters.Message
	out       filters.Outcome
	// hdrDone is set once edits from stages before the end of the header
	// block have been applied to msg.Headers.
	hdrDone bool
	// hdrBytes is the size of msg's header block so far.
	hdrBytes int
	// shown holds the header fields as the MTA handed them over, before
	// any edit, once the header block is complete (see mtaEdits).
	shown []filters.Header
}

// maxHeaderBytes bounds the header block of one message, which sluice
// keeps in memory (bodies spill to disk, headers do not). Postfix bounds
// each field (header_size_limit) but not their number, so without a bound
// one client could make a session hold most of message_size_limit as
// small fields. Real header blocks are a few kB; other MTAs refuse far
// smaller ones than this (Exchange: 256 kB).
const maxHeaderBytes = 1 << 20

// headerTooLarge is the reply to a message whose header block is larger
// than maxHeaderBytes: permanent, as sending it again cannot help.
var headerTooLarge = filters.Reply{Code: 552, Enhanced: "5.3.4", Text: "Message header too large"}

// addHeaders adds fields to the message's header block. Once the block is
// larger than maxHeaderBytes (counting each field as "Name: value" and a
// line end) the fields are not kept and the message is refused with
// headerTooLarge: it reports whether the message ends now, with out's
// action and reply, as messageStage does. No filter sees a header block
// cut short, in which a field the filters would remove (a forged verdict
// header) could hide past the cut.
func (f *flow) addHeaders(hs ...filters.Header) bool {
	for _, h := range hs {
		f.hdrBytes += len(h.Name) + len(h.Value) + 4
	}
	if f.hdrBytes <= maxHeaderBytes {
		f.msg.Headers = append(f.msg.Headers, hs...)
		return false
	}
	f.msg.Headers = nil
	f.out.Add(filters.StageResult{Verdict: filters.Verdict{
		Action: filters.Reject, Reply: &headerTooLarge,
		Reason: fmt.Sprintf("header block larger than %d bytes", maxHeaderBytes),
	}})
	return f.out.Final()
}

// run runs the pipeline at a stage and logs every filter failure with
// the queue id, so an administrator can find the message it concerned.
// sofar is the outcome before the stage, which filters see in
// Message.Decided.
func (f *flow) run(stage filters.Stage, m *filters.Message, sofar filters.Decided) filters.StageResult {
	m.Decided = sofar
	res := f.cfg.Pipeline.Run(f.ctx, stage, m)
	for _, d := range res.Decisions {
		if d.Failure != "" {
			f.log.Error("filter failed", "queue_id", m.QueueID, "filter", d.Filter, "stage", stage.String(),
				"failure", d.Failure, "err", d.Err, "applied", d.Verdict.Action.String())
		}
	}
	return res
}

// connStage runs a connection stage (connect or HELO). Its verdict holds
// for every message of the connection. refused reports that the
// connection is refused with connDone's action and reply; now, that this
// stage decided it (an earlier one did if not).
func (f *flow) connStage(stage filters.Stage) (refused, now bool) {
	if f.connDone.Final() && f.connDone.Action != filters.Discard {
		return true, false
	}
	if stage == filters.StageHelo {
		// A client may say HELO again (EHLO after STARTTLS, or after
		// RSET) and the MTA reports each one: what filters decide about
		// the latest replaces what they decided about an earlier one,
		// so that its edits and hold do not pile up. Clipping makes the
		// stage's appends copy instead of writing into atConnect.
		f.connDone = f.atConnect
		f.connDone.Edits = slices.Clip(f.connDone.Edits)
		f.connDone.Decisions = slices.Clip(f.connDone.Decisions)
	}
	msg := &filters.Message{Conn: &f.conn}
	res := f.run(stage, msg, f.connDone.Decided())
	f.connDone.Add(res)
	if stage == filters.StageConnect {
		f.atConnect = f.connDone
	}
	// Postfix refuses DISCARD at connect and HELO ("not allowed for
	// connect or helo") and would apply milter_default_action instead,
	// so a discard there is carried into each message (see startMessage).
	if f.connDone.Final() && f.connDone.Action != filters.Discard {
		return true, true
	}
	return false, false
}

// startMessage begins a message at MAIL FROM. The outcome starts from
// the connection's verdicts; when those already end the message (a
// discard at connect), out.Final() says so before any stage runs.
func (f *flow) startMessage(from filters.Address) {
	f.msg = &filters.Message{
		Conn:   &f.conn,
		From:   from,
		Macros: map[string]string{},
	}
	f.out = filters.Outcome{}
	f.out.Add(filters.StageResult{Verdict: filters.Verdict{Action: f.connDone.Action, Reply: f.connDone.Reply, Reason: f.connDone.Reason, Edits: f.connDone.Edits}, Filter: f.connDone.Filter})
	f.hdrDone = false
	f.hdrBytes = 0
	f.shown = nil
}

// messageStage runs a message stage (MAIL, end of headers) if the
// message is not settled and some filter wants the stage. It reports
// whether the message ends now, with out's action and reply.
func (f *flow) messageStage(stage filters.Stage) bool {
	if f.out.Settled() || !f.cfg.Pipeline.Needs().Stages.Has(stage) {
		return false
	}
	f.out.Add(f.run(stage, f.msg, f.out.Decided()))
	return f.out.Final()
}

// rcptStage adds a recipient and runs the RCPT stage. A Reject or
// Tempfail refuses only this recipient (refused, with res's verdict and
// reply): it is dropped from the message, which goes on for the others.
// final reports that the message ends now, with out's action and reply.
func (f *flow) rcptStage(rcpt filters.Address) (res filters.StageResult, refused, final bool) {
	f.msg.Rcpts = append(f.msg.Rcpts, rcpt)
	if f.out.Settled() || !f.cfg.Pipeline.Needs().Stages.Has(filters.StageRcptTo) {
		return res, false, false
	}
	res = f.run(filters.StageRcptTo, f.msg, f.out.Decided())
	if a := res.Verdict.Action; a == filters.Reject || a == filters.Tempfail {
		f.out.Decisions = append(f.out.Decisions, res.Decisions...)
		f.msg.Rcpts = f.msg.Rcpts[:len(f.msg.Rcpts)-1]
		return res, true, false
	}
	f.out.Add(res)
	return res, false, f.out.Final()
}

// completeHeaders applies the edits decided before the header block was
// complete (at connect, HELO, MAIL, RCPT), the way the MTA will apply them
// at end of message, so filters at later stages read the delivered header.
func (f *flow) completeHeaders() {
	if f.hdrDone {
		return
	}
	f.hdrDone = true
	// ApplyEdits, here and in the pipeline, edits the slice in place.
	f.shown = slices.Clone(f.msg.Headers)
	f.msg.Headers = filters.ApplyEdits(f.msg.Headers, f.out.Edits)
}

// deliveredEdits returns the header edits to send the MTA for a message
// it delivers: out.Edits as both MTAs apply them alike (see mtaEdits).
func (f *flow) deliveredEdits() []filters.HeaderEdit {
	if !headersSent(f.cfg) || !countsDiffer(f.shown, f.out.Edits) {
		// Without the header, which fields the edits address is not
		// known here: they go as they are.
		return f.out.Edits
	}
	return mtaEdits(f.shown, f.out.Edits)
}

// bodyChunk stores a piece of the body. An error leaves the body marked
// incomplete (Body.Err); filters treat it so, and the message itself is
// in the MTA's hands and not lost. The error is returned once, when the
// body breaks; the chunks after it are still written, for the body to
// count them in its size.
func (f *flow) bodyChunk(chunk []byte) error {
	if f.msg.Body == nil {
		f.msg.Body = filters.NewBody(f.cfg.BodyMemoryLimit, f.cfg.TempDir)
	}
	broken := f.msg.Body.Err() != nil
	_, err := f.msg.Body.Write(chunk)
	if broken {
		return nil
	}
	return err
}

// endOfMessage runs the end-of-message stage and returns the action the
// message ends with: Accept for delivered mail, Quarantine for held mail
// (the MTA is told to hold it), else Discard, Tempfail or Reject. Mail
// that is delivered gets out.Edits.
func (f *flow) endOfMessage() filters.Action {
	f.completeHeaders()
	if f.msg.Body == nil && f.cfg.Pipeline.Needs().Body {
		f.msg.Body = filters.NewBody(f.cfg.BodyMemoryLimit, f.cfg.TempDir) // empty body
	}
	// Final filters (an archive) run even when an earlier stage settled
	// the message, so that they see every message that reaches its end.
	if !f.out.Settled() || f.cfg.Pipeline.Needs().Final {
		f.out.Add(f.run(filters.StageEOM, f.msg, f.out.Decided()))
	}
	action := f.out.Action
	if filters.Delivers(action) {
		action = max(action, filters.Accept)
	}
	return action
}

// quarantineReason is the reason the MTA records with a held message.
func (f *flow) quarantineReason() string {
	reason := "sluice: " + f.out.Filter
	switch r := f.out.Reason; {
	case strings.HasPrefix(r, f.out.Filter+": "):
		// A filter's reason starts with its type ("bayes: spam, ..."),
		// and an entry is named for its type unless given a name: the
		// name once is enough.
		reason = "sluice: " + r
	case r != "":
		reason += ": " + r
	}
	return cutReason(sanitizeLine(reason), maxQuarantineReason)
}

// maxQuarantineReason bounds the reason sent with a quarantine. A filter's
// reason may quote what the sender wrote (a senders rule names the From
// field it matched, which may be 100 kB long), and the MTA keeps the
// reason with the held message and logs it: Sendmail takes no milter
// packet longer than its MilterMaxDataSize (64 kB by default) and fails
// the message for one (its default action), and neither MTA's log or
// queue tools are made for lines that long.
const maxQuarantineReason = 1000

// cutReason cuts s to at most n bytes, at the start of a character,
// ending in "..." when it cut.
func cutReason(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// clearMessage forgets the message, releasing its body. The returned
// error concerns the body's temporary file only.
func (f *flow) clearMessage() error {
	var err error
	if f.msg != nil && f.msg.Body != nil {
		err = f.msg.Body.Close()
	}
	f.msg = nil
	f.out = filters.Outcome{}
	f.hdrDone = false
	f.shown = nil
	return err
}
