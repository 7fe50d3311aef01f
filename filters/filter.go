// Package filters defines what every sluice filter implements and the one
// message model and verdict type that flow through the pipeline.
//
// A filter is a plain Go value behind the small Filter interface: it says at
// which stages of the SMTP transaction it wants to look at the message, and at
// each of those stages it returns a Verdict. Filters know nothing of sockets
// or of the milter protocol; the milter package turns MTA callbacks into a
// Message and turns the pipeline's combined Verdict back into milter replies.
// That keeps every filter testable with nothing but a Message literal.
//
// # Stages
//
// The stages follow the SMTP transaction as the MTA reports it over milter:
//
//	Connect   the client connected (Message.Conn is filled in)
//	Helo      HELO/EHLO was given (Conn.Helo)
//	MailFrom  MAIL FROM (Message.From)
//	RcptTo    each RCPT TO (the recipient is the last of Message.Rcpts)
//	Headers   end of the header block (Message.Headers)
//	EOM       end of message (Message.Body, if any filter asked for it)
//
// Header edits can only be carried out at end of message (the milter protocol
// allows modifications only then), so edits returned at earlier stages are
// kept and applied at end of message, unless the message is refused.
//
// # Precedence
//
// When filters disagree, the strongest action wins, in this order:
//
//	Reject > Tempfail > Quarantine > Discard > Accept > Continue
//
// Refusing beats delivering, a temporary refusal beats a silent one, and
// quarantine (the message is kept, on hold) beats discard (the message is
// gone): when in doubt sluice prefers the outcome that loses no mail. Between
// two filters returning the same action, the first in configured order
// provides the reply.
package filters

import (
	"context"
	"fmt"
	"strings"
)

// Stage is a point in the SMTP transaction at which filters run.
type Stage uint8

// The stages, in the order the MTA reports them.
const (
	StageConnect Stage = iota
	StageHelo
	StageMailFrom
	StageRcptTo
	StageHeaders
	StageEOM
	numStages
)

var stageNames = [numStages]string{"connect", "helo", "mail", "rcpt", "headers", "eom"}

// String returns the stage's name as used in logs, metrics and config.
func (s Stage) String() string {
	if s < numStages {
		return stageNames[s]
	}
	return fmt.Sprintf("stage(%d)", uint8(s))
}

// Stages is a set of stages.
type Stages uint8

// StagesOf returns the set holding the given stages.
func StagesOf(list ...Stage) Stages {
	var s Stages
	for _, st := range list {
		s |= 1 << st
	}
	return s
}

// Has reports whether st is in the set.
func (s Stages) Has(st Stage) bool { return s&(1<<st) != 0 }

// String lists the stages in transaction order, e.g. "mail,eom".
func (s Stages) String() string {
	var names []string
	for st := Stage(0); st < numStages; st++ {
		if s.Has(st) {
			names = append(names, st.String())
		}
	}
	return strings.Join(names, ",")
}

// Needs says what a filter wants from the MTA. The milter edge negotiates
// only the protocol steps that some enabled filter needs, so a filter that
// does not read the body costs no body round trips.
type Needs struct {
	// Stages lists the stages at which Check is called.
	Stages Stages
	// Headers is set when the filter reads Message.Headers.
	Headers bool
	// Body is set when the filter reads Message.Body.
	Body bool
	// Final marks a filter that records the outcome rather than decides
	// it, such as an archive: at each of its stages it runs after every
	// other filter whatever their configured order, still runs after a
	// Reject ended the stage for the others, and at end of message runs
	// even when an earlier stage settled the message with an Accept that
	// has edits pending (the only settled outcome for which the MTA still
	// sends the message). It reads the outcome in Message.Decided. Its
	// verdict counts by precedence like any other.
	Final bool
	// First marks a filter that repairs the message for the others, such
	// as headerfix: at each of its stages it runs before every other
	// filter whatever their configured order, so that they all judge the
	// repaired message. A filter that deletes the fields of its names a
	// message came with (see FieldOwner) then also sees those a repair
	// brought to light, which it would miss running before the repair.
	// Final wins over First.
	First bool
}

// Filter is one step of the pipeline.
//
// Check is called once per message at each stage in Needs().Stages (at
// StageRcptTo once per recipient). It must honour ctx: the pipeline gives
// each call a deadline and moves on without the filter when it passes. An
// error or a panic never stops the message: the filter's failure policy
// decides what happens instead.
//
// Check may be called concurrently for different messages; a filter keeps
// any per-message state in the Message it is given (see Message.Keep), not
// in itself.
type Filter interface {
	// Name identifies the filter in logs, metrics and replies.
	Name() string
	// Needs says at which stages the filter runs and what it reads. It is
	// asked once, when the pipeline is built, and must not change after.
	Needs() Needs
	// Check looks at the message at the given stage and returns a verdict.
	Check(ctx context.Context, stage Stage, m *Message) (Verdict, error)
}

// FieldOwner is implemented by filters that add header fields of their
// own and delete the fields of those names a message came with, so that a
// sender cannot pass off a verdict of its own. No two filters of a
// pipeline may own one name: the later filter would delete the earlier
// one's fields as forged. The daemon refuses such a configuration.
type FieldOwner interface {
	// OwnedFields returns the names of the fields the filter owns.
	OwnedFields() []string
}

// Closer is implemented by filters that hold resources (files, stores,
// connections). Close is called once the pipeline that holds the filter is
// no longer used, e.g. after a reload replaced it and its last session ended.
type Closer interface {
	Close() error
}

// Retirer is implemented by filters that do work of their own besides
// Check, such as probing a service and reporting its health in a gauge
// that the filter of the same name in the next configuration reports
// too. Retire is called when a reload has replaced the pipeline
// that holds the filter, while connections opened before the reload may
// still use it: the filter stops that work then, which its successor now
// does, and goes on answering Check until Close.
type Retirer interface {
	Retire()
}
