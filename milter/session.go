package milter

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"net/textproto"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/filters"
)

// session is one MTA connection: one SMTP client session, possibly several
// messages. It implements go-milter's Milter interface. All callbacks run
// in go-milter's session goroutine, one at a time.
type session struct {
	// flow holds the connection, the message and the outcome, and runs
	// the pipeline; the session adds the protocol around it.
	flow
	srv   *Server
	ref   *configRef
	c     *conn
	start time.Time
	// connectMacros are the macros the MTA sent at connect. The
	// connection's macros are these and those of the latest HELO, as
	// libmilter keeps one set per stage and replaces it when the stage
	// comes again: a client saying HELO over and over, or a peer sending
	// a new set each time, does not make the connection hold more.
	connectMacros map[string]string
	// stageMacros are the current message's macros of MAIL, RCPT, end
	// of header and end of message (messageStages), one set per stage,
	// each replaced when the stage comes again, as libmilter does: the
	// message's macros are these merged, so a peer sending a new set with
	// each of many recipients does not make the message hold them all.
	stageMacros [len(messageStages)]map[string]string

	// mu guards busy, draining and waiting, shared with Server.Shutdown.
	mu       sync.Mutex
	busy     bool // inside a message
	draining bool
	// waiting is set while the session waits for data from the MTA,
	// outside any callback: a reply it owes the MTA was written.
	waiting bool
	// endPending marks that the reply being written ends the message.
	endPending bool
	// ending names the message that reply ends, with the verdict the
	// message line gave, for the log should the reply never reach the
	// MTA; zero when the reply ends no message.
	ending struct{ queueID, verdict string }
}

func newSession(srv *Server, ref *configRef, c *conn) *session {
	s := &session{flow: flow{cfg: ref.cfg, ctx: srv.ctx, log: srv.logger}, srv: srv, ref: ref, c: c}
	c.onWrite = s.wrote
	c.onWait = s.waitRead
	c.onWaited = s.readDone
	c.verdictNext = func() bool { return s.endPending && s.ending.verdict != "" }
	return s
}

// serve runs go-milter on the connection until it ends.
func (s *session) serve() {
	actions, proto := options(s.cfg)
	gs := &gomilter.Server{
		NewMilter: func() gomilter.Milter { return s },
		Actions:   actions,
		Protocol:  proto,
	}
	// Serve returns once the session loop has closed the connection.
	gs.Serve(&oneConnListener{c: s.c})
	<-s.c.done
	s.closed()
}

// closed ends the session's state once go-milter is done with the
// connection. It runs in the session's own goroutine, outside any
// callback: a panic here would not be go-milter's to recover and would
// end the daemon, so it is recovered and counted like one in a callback.
func (s *session) closed() {
	defer func() {
		if p := recover(); p != nil {
			s.notePanic(p)
			s.dropMessage()
		}
	}()
	if s.c.lateFirst {
		// Not a warning: any local process may connect, and it is the
		// MTA's mail that matters.
		s.log.Info("closed a connection that sent no option negotiation in time", "remote", remoteAddr(s.c.Conn))
		s.srv.observer.ConnectionDropped(DropNoNegotiation)
	}
	if s.msg != nil {
		reason := "connection lost"
		switch {
		case s.c.quit:
			// Sendmail ends the connection with a QUIT and no abort
			// when its client quits in the middle of a message, after
			// MAIL FROM or RCPT TO (observed with 8.17; Postfix aborts
			// first): the MTA gave the message up, as with an abort.
			reason = "aborted by MTA"
		case s.c.interrupted.Load():
			reason = reasonCutOff
		}
		s.logMessage(filters.Continue, nil, reason, true)
	}
	if s.endPending && s.ending.verdict != "" {
		// The final reply of a message was not written, or written
		// after the MTA had closed: the MTA gave up waiting for it (its
		// milter timeout), or the session was cut off. The MTA applies its own default action
		// to the message, whatever the message line above says.
		s.log.Warn("reply not delivered: the MTA did not get the verdict and applies its milter default action to the message",
			"queue_id", s.ending.queueID, "verdict", s.ending.verdict, "err", s.c.writeErr)
	}
	s.resetMessage()
}

// drain asks the session to close as soon as it is between messages and
// has written the reply to the MTA's last packet. One waiting for the
// MTA is closed at once; one in a callback (a connection stage whose
// filters are still at work, which is between messages too) closes as it
// next waits (see waitRead), its reply written: cut off before, the MTA
// would not get the verdict the filters reached, and go-milter would log
// the failed write.
func (s *session) drain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.draining = true
	if s.waiting && !s.busy {
		// Under mu, so that the session cannot leave its wait for a
		// callback between the look and the interrupt.
		s.c.interrupt()
	}
}

// waitRead runs as the session is about to wait for data from the MTA,
// and reports whether it ends instead: when a shutdown drains it and it
// is between messages, at a packet boundary (boundary), so that every
// reply the MTA asked for was written and no packet is cut in two.
func (s *session) waitRead(boundary bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if boundary && s.draining && !s.busy {
		return true
	}
	s.waiting = true
	return false
}

// readDone runs when a wait for data from the MTA has ended.
func (s *session) readDone() {
	s.mu.Lock()
	s.waiting = false
	s.mu.Unlock()
}

// wrote runs after each packet written to the MTA. Once the final reply
// of a message is out the session is between messages: a draining one
// ends as it next waits for the MTA (see waitRead).
func (s *session) wrote() {
	if !s.endPending {
		return
	}
	s.endPending = false
	s.ending.queueID, s.ending.verdict = "", ""
	s.mu.Lock()
	s.busy = false
	s.mu.Unlock()
}

func (s *session) setBusy() {
	s.mu.Lock()
	s.busy = true
	s.mu.Unlock()
}

// guard recovers a panic in a callback: the session survives, the panic is
// logged and counted, and the message gets the failure policy's answer.
func (s *session) guard(resp *gomilter.Response, err *error) {
	if p := recover(); p != nil {
		*resp, *err = s.recovered(p, false), nil
	}
}

// guardConn is guard for Connect and Helo, whose reply concerns the whole
// connection rather than one message.
func (s *session) guardConn(resp *gomilter.Response, err *error) {
	if p := recover(); p != nil {
		*resp, *err = s.recoveredConn(p), nil
	}
}

// guardRcpt is guard for RcptTo, where a reply concerns one recipient.
// n is the number of recipients the message had before this one (-1
// without a message): a recipient the panic refuses is taken off again,
// as a recipient a filter refuses is, so that the log line and the
// filters at end of message see only those the MTA kept.
func (s *session) guardRcpt(resp *gomilter.Response, err *error, n int) {
	if p := recover(); p != nil {
		*resp, *err = s.recovered(p, true), nil
		if s.cfg.OnFailure == filters.FailTempfail && n >= 0 && s.msg != nil && len(s.msg.Rcpts) > n {
			s.msg.Rcpts = s.msg.Rcpts[:n]
		}
	}
}

// guardAbort is guard for Abort, which has no reply to give: the panic is
// logged and counted, and the aborted message is dropped without a second
// log line, so that the session goes on with the MTA's next message.
// go-milter would recover it too, but only to write it to the standard
// logger and close the connection, leaving the panic uncounted and the
// MTA's next message to its milter default action.
func (s *session) guardAbort() {
	if p := recover(); p != nil {
		s.notePanic(p)
		s.dropMessage()
	}
}

// dropMessage ends the message after a panic, with no log line of its
// own: the panic's log line names it. The body is released in a recover
// of its own, as a body that broke once may break again.
func (s *session) dropMessage() {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic releasing the message after a panic", "panic", fmt.Sprint(p))
			s.msg = nil
		}
	}()
	s.resetMessage()
}

// recovered handles a panic recovered in a callback; rcpt tells that the
// callback was RcptTo.
func (s *session) recovered(p any, rcpt bool) gomilter.Response {
	s.notePanic(p)
	if s.cfg.OnFailure != filters.FailTempfail {
		return s.finish(filters.Accept, nil, "internal error")
	}
	r := panicReply
	if rcpt && s.msg != nil {
		// The MTA takes a refusal at RCPT for this recipient only and
		// goes on with the message for the others. Keep the message and
		// its tempfail, so that it ends refused at end of message instead
		// of going through unfiltered.
		s.out.Add(filters.StageResult{Verdict: filters.Verdict{Action: filters.Tempfail, Reply: &r, Reason: "internal error"}})
		return reply(filters.Tempfail, &r)
	}
	return s.finish(filters.Tempfail, &r, "internal error")
}

// recoveredConn handles a panic recovered in Connect or Helo. Under the
// accept policy the connection goes on: an accept at this point
// (SMFIR_ACCEPT) would make the MTA stop consulting sluice for the whole
// connection, so every later message of it would go through unfiltered
// and unlogged, not just the one the policy means. Its messages are
// filtered as usual from MAIL FROM on.
func (s *session) recoveredConn(p any) gomilter.Response {
	s.notePanic(p)
	if s.cfg.OnFailure != filters.FailTempfail {
		return continueReply
	}
	r := panicReply
	return s.finish(filters.Tempfail, &r, "internal error")
}

// panicReply refuses what a panic concerned under the tempfail policy.
var panicReply = filters.Reply{Code: 451, Enhanced: "4.3.0", Text: "Temporary filter failure, try again later"}

// notePanic logs and counts a panic recovered in a callback.
func (s *session) notePanic(p any) {
	s.srv.observer.SessionPanic()
	s.log.Error("panic in milter session", "queue_id", s.queueID(), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
}

func (s *session) queueID() string {
	if s.msg != nil {
		return s.msg.QueueID
	}
	return ""
}

// Connect implements gomilter.Milter.
func (s *session) Connect(host, family string, port uint16, addr net.IP, m *gomilter.Modifier) (resp gomilter.Response, err error) {
	defer s.guardConn(&resp, &err)
	if s.msg != nil {
		// The MTA left a message open, with no abort: it ends here, in
		// the log as the last client's, not later as the new one's.
		s.logMessage(filters.Continue, nil, "new connection before the end of this message", true)
		s.resetMessage()
	}
	// A new connection on the same milter session (the protocol allows
	// it) starts clean: the last client's verdicts are not this one's.
	s.connDone, s.atConnect = filters.Outcome{}, filters.Outcome{}
	s.conn = filters.Conn{Hostname: host, Family: family, Port: port}
	if a, ok := netip.AddrFromSlice(addr); ok {
		s.conn.Addr = a.Unmap()
	} else if a, ok := labelledIPv6(family, s.c.connectAddr); ok {
		s.conn.Addr = a
	}
	s.connectMacros = maps.Clone(s.c.macrosFor('C', m.Macros))
	s.conn.Macros = s.connMacros(nil)
	s.log = s.srv.logger.With("client", clientString(&s.conn))
	return s.runConn(filters.StageConnect), nil
}

// Helo implements gomilter.Milter.
func (s *session) Helo(name string, m *gomilter.Modifier) (resp gomilter.Response, err error) {
	defer s.guardConn(&resp, &err)
	if s.msg != nil {
		// HELO or EHLO in the middle of a transaction ends it (RFC 5321
		// 4.1.4). Postfix reports the new HELO before it aborts the
		// message (observed with Postfix 3.7; Sendmail aborts first):
		// the message ends here, logged with the HELO and connection
		// verdicts it had, not with those of the HELO that ended it.
		s.logMessage(filters.Continue, nil, "aborted by MTA", true)
		s.resetMessage()
	}
	s.conn.Helo = name
	s.conn.Macros = s.connMacros(s.c.macrosFor('H', m.Macros))
	return s.runConn(filters.StageHelo), nil
}

// runConn runs a connection stage. Its verdict holds for every message of
// the connection: a final one is replied now (the MTA then refuses the
// client's commands itself), a quarantine is applied to each message.
func (s *session) runConn(stage filters.Stage) gomilter.Response {
	refused, now := s.connStage(stage)
	if !refused {
		return continueReply
	}
	if now {
		s.logConnection(stage)
	}
	return reply(s.connDone.Action, s.connDone.Reply)
}

// MailFrom implements gomilter.Milter. It starts a new message.
func (s *session) MailFrom(from string, m *gomilter.Modifier) (resp gomilter.Response, err error) {
	defer s.guard(&resp, &err)
	if s.msg != nil {
		// Postfix and Sendmail abort a message they give up on before the
		// next MAIL FROM; a peer that does not still ended this one, and
		// it gets its log line as an aborted message does.
		s.logMessage(filters.Continue, nil, "new message before the end of this one", true)
	}
	s.resetMessage()
	// go-milter collects header fields in a map it clears only on abort;
	// the Modifier hands us that same map, so empty it per message or a
	// long SMTP session would grow it without bound.
	for k := range m.Headers {
		delete(m.Headers, k)
	}
	s.setBusy()
	s.start = time.Now()
	s.startMessage(filters.Address{Addr: from, Args: s.c.takeArgs()})
	s.stageMacros = [len(messageStages)]map[string]string{}
	s.setMessageMacros('M', s.c.macrosFor('M', m.Macros))
	if s.out.Final() || s.messageStage(filters.StageMailFrom) {
		return s.finish(s.out.Action, s.out.Reply, s.out.Reason), nil
	}
	return continueReply, nil
}

// RcptTo implements gomilter.Milter. A Reject or Tempfail here refuses
// only this recipient; the message goes on for the others.
func (s *session) RcptTo(rcpt string, m *gomilter.Modifier) (resp gomilter.Response, err error) {
	n := -1
	if s.msg != nil {
		n = len(s.msg.Rcpts)
	}
	defer s.guardRcpt(&resp, &err, n)
	if s.msg == nil {
		return continueReply, nil
	}
	s.setMessageMacros('R', s.c.macrosFor('R', m.Macros))
	res, refused, final := s.rcptStage(filters.Address{Addr: rcpt, Args: s.c.takeArgs()})
	if refused {
		a := res.Verdict.Action
		s.log.Info("recipient refused", "queue_id", s.msg.QueueID, "rcpt", rcpt, "verdict", a.String(), "filter", res.Filter, "reason", res.Verdict.Reason)
		return reply(a, res.Verdict.Reply), nil
	}
	if final {
		return s.finish(s.out.Action, s.out.Reply, s.out.Reason), nil
	}
	return continueReply, nil
}

// Header implements gomilter.Milter: fields are kept raw, in order.
func (s *session) Header(name, value string, m *gomilter.Modifier) (resp gomilter.Response, err error) {
	defer s.guard(&resp, &err)
	// go-milter also collects every field in the Modifier's map, for the
	// end of headers, where sluice does not use it: keep only the fields
	// in the message, so that a large header block is held once. Fields
	// outside a message are dropped too: go-milter clears its map only on
	// abort, so a peer sending fields without a message would grow it.
	clear(m.Headers)
	if s.msg == nil {
		return continueReply, nil
	}
	h := filters.Header{Name: name, Value: value}
	if s.c.leadSpace {
		// The MTA kept the space after the colon: take it off, as
		// without SMFIP_HDR_LEADSPC, and note a field that had none.
		if v, ok := strings.CutPrefix(value, " "); ok {
			h.Value = v
		} else {
			h.NoSpace = true
		}
	}
	if s.addHeaders(h) {
		return s.finish(s.out.Action, s.out.Reply, s.out.Reason), nil
	}
	return continueReply, nil
}

// Headers implements gomilter.Milter (end of headers).
func (s *session) Headers(_ textproto.MIMEHeader, m *gomilter.Modifier) (resp gomilter.Response, err error) {
	defer s.guard(&resp, &err)
	if s.msg == nil {
		return continueReply, nil
	}
	s.setMessageMacros('N', s.c.macrosFor('N', m.Macros))
	s.completeHeaders()
	if s.messageStage(filters.StageHeaders) {
		return s.finish(s.out.Action, s.out.Reply, s.out.Reason), nil
	}
	return continueReply, nil
}

// BodyChunk implements gomilter.Milter.
func (s *session) BodyChunk(chunk []byte, m *gomilter.Modifier) (resp gomilter.Response, err error) {
	defer s.guard(&resp, &err)
	if s.msg == nil {
		return continueReply, nil
	}
	if err := s.bodyChunk(chunk); err != nil {
		s.log.Error("storing message body", "queue_id", s.msg.QueueID, "err", err)
	}
	return continueReply, nil
}

// Body implements gomilter.Milter (end of message).
func (s *session) Body(m *gomilter.Modifier) (resp gomilter.Response, err error) {
	defer s.guard(&resp, &err)
	if s.msg == nil {
		return continueReply, nil
	}
	s.setMessageMacros('E', s.c.macrosFor('E', m.Macros))
	action := s.endOfMessage()
	if filters.Delivers(action) {
		if err := s.sendDelivery(m, action); err != nil {
			// The edits and the quarantine go before the final reply,
			// so they are what fails when the MTA stopped waiting (its
			// milter timeout closed the connection). The message was
			// decided all the same: it ends with its verdict, and the
			// session's end warns that the MTA never got it, as for a
			// reply that could not be written.
			s.finish(action, s.out.Reply, s.out.Reason)
			return nil, err
		}
	}
	return s.finish(action, s.out.Reply, s.out.Reason), nil
}

// sendDelivery writes what comes before the final reply of a message
// the MTA delivers: the header edits, and the quarantine of a held one.
func (s *session) sendDelivery(m *gomilter.Modifier, action filters.Action) error {
	if err := s.applyEdits(m); err != nil {
		return err
	}
	if action == filters.Quarantine {
		if err := m.Quarantine(s.quarantineReason()); err != nil {
			return fmt.Errorf("quarantine: %w", err)
		}
	}
	return nil
}

// Abort implements gomilter.Milter: the MTA gave up on the message (client
// RSET, disconnect, or another milter's reject).
func (s *session) Abort(m *gomilter.Modifier) error {
	defer s.guardAbort()
	if s.msg != nil {
		s.logMessage(filters.Continue, nil, "aborted by MTA", true)
	}
	s.resetMessage()
	return nil
}

// finish ends the message with a final reply and logs it.
func (s *session) finish(a filters.Action, r *filters.Reply, reason string) gomilter.Response {
	s.ending.queueID, s.ending.verdict = "", ""
	switch {
	case s.msg == nil:
	case s.c.interrupted.Load():
		// A shutdown cut the session off before the reply (its time
		// ran out, perhaps with the filters still at work, whose
		// failure policy made this verdict): the reply cannot be
		// written, and the MTA applies its milter default action. The
		// message got no verdict from sluice, as one cut off between
		// the MTA's packets.
		s.logMessage(filters.Continue, nil, reasonCutOff, true)
	default:
		s.logMessage(a, r, reason, false)
		s.ending.queueID, s.ending.verdict = s.msg.QueueID, a.String()
	}
	s.endPending = true
	s.resetMessage()
	return reply(a, r)
}

// reasonCutOff is the reason of a message whose session a shutdown cut
// off before sluice's verdict reached the MTA.
const reasonCutOff = "cut off: sluice is stopping"

func (s *session) applyEdits(m *gomilter.Modifier) error {
	// present holds the names of the fields the MTA's header has: those
	// it showed sluice (deleted ones too: Sendmail keeps them in its
	// list) and those the edits sent so far made.
	present := map[string]bool{}
	for _, h := range s.shown {
		present[filters.NameKey(h.Name)] = true
	}
	for _, e := range s.deliveredEdits() {
		value := e.Value
		if s.c.leadSpace && (value != "" || e.Kind == filters.AddHeader || e.Kind == filters.InsertHeader) {
			// The MTA adds no space after the colon of what it is
			// given either. An empty value of a change deletes, and
			// stays empty.
			value = " " + value
		}
		key := filters.NameKey(e.Name)
		var err error
		switch e.Kind {
		case filters.AddHeader:
			if !present[key] {
				err = m.AddHeader(e.Name, value)
				break
			}
			// Sendmail 8.17 puts a field added with SMFIR_ADDHEADER
			// before the first field of its name, a deleted one
			// included (observed): the bayes filter's verdict took
			// the place of the one the sender forged, and the dnsbl
			// filter's tag fields came out last first. Both MTAs put
			// a field inserted past the last one at the end of the
			// header, in the order sent (observed with Postfix 3.7,
			// also at milter_protocol 2, and Sendmail 8.17), where
			// an add goes in the model and in the archived copy. A
			// name the header lacks stays an add: Sendmail puts it
			// into the field of that name it made up, if any (a
			// From: headerfix brings back, see docs/headerfix.md).
			err = m.InsertHeader(insertAtEnd, e.Name, value)
		case filters.InsertHeader:
			// Postfix 3.7 and Sendmail 8.17 count their own Received:
			// field, which milters never see, as index 0 (observed; see
			// docs/headerfix.md). The model's index counts the fields
			// sluice saw, so position i there is i+1 for the MTA.
			err = m.InsertHeader(e.Index+1, e.Name, value)
		case filters.ChangeHeader:
			err = m.ChangeHeader(e.Index, e.Name, value)
		case filters.DeleteHeader:
			// An empty value deletes the field (smfi_chgheader).
			err = m.ChangeHeader(e.Index, e.Name, "")
		}
		if err != nil {
			return fmt.Errorf("%s header %s: %w", e.Kind, e.Name, err)
		}
		if e.Kind == filters.AddHeader || e.Kind == filters.InsertHeader || e.Kind == filters.ChangeHeader && e.Value != "" {
			// A change past the last field of its name adds one.
			present[key] = true
		}
	}
	return nil
}

// insertAtEnd is an insert index past every field a header can have:
// the largest the protocol's 32-bit field holds below its sign bit, as
// Sendmail reads it into an int.
const insertAtEnd = 1<<31 - 1

// resetMessage releases the message and marks the session as between
// messages. The mark is cleared in a defer: a release that panics (it is
// recovered by guardAbort, closed or dropMessage) must not leave the
// session marked busy, or a graceful shutdown would wait for the MTA's
// next message or its deadline rather than closing an idle session.
func (s *session) resetMessage() {
	defer s.leaveMessage()
	if s.srv.releaseHook != nil {
		s.srv.releaseHook()
	}
	if err := s.clearMessage(); err != nil {
		s.log.Warn("releasing message body", "err", err)
	}
}

// leaveMessage marks the session as between messages, unless a final
// reply is still to be written (wrote clears the mark then). A session
// a shutdown waits for ends as it next waits for the MTA (see waitRead),
// after the reply of the callback it runs in: an abort has none, a HELO
// in the middle of a message does.
func (s *session) leaveMessage() {
	s.mu.Lock()
	if !s.endPending {
		s.busy = false
	}
	s.mu.Unlock()
}

// connMacros returns a new map of the connection's macros: those of
// connect, and over them helo, the macros of the latest HELO. A new map
// rather than the old one cleared, as a Go map keeps its size.
func (s *session) connMacros(helo map[string]string) map[string]string {
	m := make(map[string]string, len(s.connectMacros)+len(helo))
	mergeMacros(m, s.connectMacros)
	mergeMacros(m, helo)
	return m
}

// messageStages are the command codes of the message stages whose macros
// the message keeps (see stageMacros), in the order they come.
const messageStages = "MRNE"

// setMessageMacros takes src, the macros the MTA sent for stage (a code of
// messageStages), as that stage's set; nil, none sent, keeps the stage's
// earlier set.
func (s *session) setMessageMacros(stage byte, src map[string]string) {
	if src == nil {
		return
	}
	k := strings.IndexByte(messageStages, stage)
	s.stageMacros[k] = maps.Clone(src)
	all := make(map[string]string)
	for _, set := range s.stageMacros {
		mergeMacros(all, set)
	}
	s.msg.Macros = all
	// Postfix sends the queue id from RCPT on, Sendmail from MAIL and drops
	// it by end of message: keep the first one seen.
	if s.msg.QueueID == "" {
		s.msg.QueueID = queueIDMacro(src)
	}
}

// queueIDMacro returns the queue id among a stage's macros, "" if none.
// Both MTAs send a macro under the name written in their macro lists and
// take "{i}" there for "i" (observed with Postfix 3.7 and Sendmail 8.17),
// so the queue id may come under either name.
func queueIDMacro(src map[string]string) string {
	if id := src["i"]; id != "" {
		return id
	}
	return src["{i}"]
}

func mergeMacros(dst, src map[string]string) {
	for k, v := range src {
		dst[k] = v
	}
}

// labelledIPv6 parses the address of an IPv6 client as Sendmail writes
// it in SMFIC_CONNECT, "IPv6:2001:db8::1" (anynet_ntop in Sendmail 8.17;
// libmilter strips the label before inet_pton).
func labelledIPv6(family, s string) (netip.Addr, bool) {
	if family != "tcp6" || len(s) < 5 || !strings.EqualFold(s[:5], "IPv6:") {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s[5:])
	if err != nil || !a.Is6() {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func clientString(c *filters.Conn) string {
	if !c.Addr.IsValid() {
		return c.Hostname
	}
	name := c.Hostname
	if name == "" || isAddressLiteral(name, c.Addr) {
		// Postfix and Sendmail name a client whose host name they could
		// not verify by its address in brackets ("[192.0.2.1]", Sendmail
		// "[IPv6:2001:db8::1]"). Written as Postfix logs such a client,
		// the line reads like the MTA's own and not as the address twice.
		name = "unknown"
	}
	return fmt.Sprintf("%s[%s]", name, c.Addr)
}

// isAddressLiteral reports whether name is addr in brackets, as an MTA
// reports a client that has no verified host name.
func isAddressLiteral(name string, addr netip.Addr) bool {
	inner, ok := strings.CutPrefix(name, "[")
	if !ok {
		return false
	}
	inner, ok = strings.CutSuffix(inner, "]")
	if !ok {
		return false
	}
	if len(inner) > 5 && strings.EqualFold(inner[:5], "IPv6:") {
		inner = inner[5:]
	}
	a, err := netip.ParseAddr(inner)
	return err == nil && a.Unmap() == addr.Unmap()
}

// logConnection logs a connection-level refusal.
func (s *session) logConnection(stage filters.Stage) {
	s.log.Info("connection refused", "stage", stage.String(), "helo", s.conn.Helo,
		"verdict", s.connDone.Action.String(), "reply", replyString(s.connDone.Action, s.connDone.Reply),
		"filter", s.connDone.Filter, "reason", s.connDone.Reason, "filters", decisionsString(s.connDone.Decisions))
}

// logMessage writes the one summary line per message.
func (s *session) logMessage(a filters.Action, r *filters.Reply, reason string, aborted bool) {
	m := s.msg
	rcpts := make([]string, len(m.Rcpts))
	for i, r := range m.Rcpts {
		rcpts[i] = r.Addr
	}
	var size int64
	if m.Body != nil {
		size = m.Body.Size()
	}
	sum := Summary{
		QueueID:   m.QueueID,
		Client:    clientString(&s.conn),
		Helo:      s.conn.Helo,
		From:      m.From.Addr,
		Rcpts:     rcpts,
		Action:    a,
		Aborted:   aborted,
		Filter:    s.out.Filter,
		Reason:    reason,
		Decisions: append(append([]filters.Decision(nil), s.connDone.Decisions...), s.out.Decisions...),
		Duration:  time.Since(s.start),
		BodySize:  size,
	}
	s.srv.observer.MessageDone(sum)
	if !s.srv.logger.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	verdict := a.String()
	if aborted {
		verdict = "aborted"
	}
	attrs := []any{
		"queue_id", sum.QueueID, "client", sum.Client, "helo", sum.Helo,
		"from", sum.From, "rcpts", strings.Join(rcpts, ","), "verdict", verdict,
	}
	if rs := replyString(a, r); rs != "" {
		attrs = append(attrs, "reply", rs)
	}
	if sum.Filter != "" && a != filters.Continue {
		attrs = append(attrs, "decided_by", sum.Filter)
	}
	if reason != "" {
		attrs = append(attrs, "reason", reason)
	}
	attrs = append(attrs, "filters", decisionsString(sum.Decisions), "size", size, "duration", sum.Duration.Round(time.Microsecond).String())
	s.srv.logger.Info("message", attrs...)
}

// Summary describes how one message ended.
type Summary struct {
	QueueID, Client, Helo, From string
	Rcpts                       []string
	// Action is the final verdict (Accept for delivered mail).
	Action filters.Action
	// Aborted is set when the MTA abandoned the message.
	Aborted bool
	// Filter decided the action; Reason says why.
	Filter, Reason string
	Decisions      []filters.Decision
	Duration       time.Duration
	BodySize       int64
}

func decisionsString(ds []filters.Decision) string {
	var b strings.Builder
	for i, d := range ds {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s@%s=%s", d.Filter, d.Stage, d.Verdict.Action)
		if d.Failure != "" {
			fmt.Fprintf(&b, "!%s", d.Failure)
		}
		fmt.Fprintf(&b, "(%s)", d.Duration.Round(time.Microsecond))
	}
	return b.String()
}

func replyString(a filters.Action, r *filters.Reply) string {
	if a != filters.Reject && a != filters.Tempfail {
		return ""
	}
	if r == nil {
		d := filters.DefaultReply(a)
		r = &d
	}
	// As the MTA gets it, so that the line matches the MTA's log and
	// the sender's bounce.
	return r.Sent().String()
}

// sanitizeLine makes s safe for a one-line protocol field.
func sanitizeLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
