package filters

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// FailurePolicy says what happens to a message when a filter fails: returns
// an error, panics or runs past its timeout.
type FailurePolicy uint8

const (
	// FailAccept ignores the failed filter: the message goes on as if it
	// had said Continue. Mail keeps flowing when a filter breaks.
	FailAccept FailurePolicy = iota
	// FailTempfail refuses the message with a 4xx reply, so the client
	// retries later, when the filter may work again.
	FailTempfail
)

// String returns the policy's config name.
func (p FailurePolicy) String() string {
	if p == FailTempfail {
		return "tempfail"
	}
	return "accept"
}

// ParseFailurePolicy parses "accept" or "tempfail".
func ParseFailurePolicy(s string) (FailurePolicy, error) {
	switch s {
	case "accept":
		return FailAccept, nil
	case "tempfail":
		return FailTempfail, nil
	}
	return 0, fmt.Errorf("unknown failure policy %q (want accept or tempfail)", s)
}

// Failure kinds, as reported in Decision.Failure.
const (
	FailureError   = "error"
	FailurePanic   = "panic"
	FailureTimeout = "timeout"
)

// Step is one filter in the pipeline with how it is run.
type Step struct {
	Filter Filter
	// Timeout bounds each Check call; 0 means no bound.
	Timeout time.Duration
	// OnFailure applies when Check fails.
	OnFailure FailurePolicy
}

// Decision records what one filter decided at one stage.
type Decision struct {
	Filter   string
	Stage    Stage
	Verdict  Verdict
	Duration time.Duration
	// Failure is "" when the filter answered, else FailureError,
	// FailurePanic or FailureTimeout; Err holds the cause.
	Failure string
	Err     error
}

// Observer is told about every filter decision, e.g. to count it in
// metrics. It must be safe for concurrent use.
type Observer interface {
	FilterDecided(Decision)
}

// Pipeline runs filters in configured order.
type Pipeline struct {
	steps    []Step
	observer Observer
	// needs holds each step's Needs and all their union, asked once: the
	// edge consults them at every stage of every message.
	needs []Needs
	all   Needs
	// late counts each step's calls still running past their timeout
	// (see call).
	late []atomic.Int64
	// closing is 1 + the index of the step whose Close is running, 0
	// when none is.
	closing atomic.Int64
}

// NewPipeline returns a pipeline of the given steps. observer may be nil.
func NewPipeline(steps []Step, observer Observer) *Pipeline {
	p := &Pipeline{steps: steps, observer: observer, needs: make([]Needs, len(steps)), late: make([]atomic.Int64, len(steps))}
	for i, s := range steps {
		fn := s.Filter.Needs()
		p.needs[i] = fn
		p.all.Stages |= fn.Stages
		p.all.Headers = p.all.Headers || fn.Headers
		p.all.Body = p.all.Body || fn.Body
		p.all.Final = p.all.Final || fn.Final
		p.all.First = p.all.First || fn.First
	}
	return p
}

// Steps returns the pipeline's steps in order.
func (p *Pipeline) Steps() []Step { return p.steps }

// Needs returns the union of what the pipeline's filters need.
func (p *Pipeline) Needs() Needs { return p.all }

// Close closes every filter that holds resources, returning the first error.
func (p *Pipeline) Close() error {
	var errs []error
	for i, s := range p.steps {
		if c, ok := s.Filter.(Closer); ok {
			p.closing.Store(int64(i) + 1)
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close filter %s: %w", s.Filter.Name(), err))
			}
		}
	}
	p.closing.Store(0)
	return errors.Join(errs...)
}

// Retire tells the filters that implement Retirer that a reload has
// replaced the pipeline (see Retirer).
func (p *Pipeline) Retire() {
	for _, s := range p.steps {
		if r, ok := s.Filter.(Retirer); ok {
			r.Retire()
		}
	}
}

// Closing returns the name of the filter whose Close is running, "" when
// none is: the one to name when a Close does not end (a store on a disk
// that stopped answering).
func (p *Pipeline) Closing() string {
	if i := p.closing.Load(); i > 0 {
		return p.steps[i-1].Filter.Name()
	}
	return ""
}

// StageResult is the pipeline's combined answer at one stage.
type StageResult struct {
	// Verdict is the strongest verdict of the stage, with the edits of
	// every filter that let the message through.
	Verdict Verdict
	// Filter names the filter whose verdict won ("" for Continue).
	Filter string
	// Decisions lists each filter's own answer, in order.
	Decisions []Decision
}

// Run asks every filter that wants stage about m, in configured order, and
// combines the answers by precedence. A Reject ends the stage early: no
// later filter can override it. Filters that repair the message (see
// Needs.First) run before the others, and final filters (see Needs.Final)
// after the others, also after a Reject; when m.Decided is already
// settled on entry, only final filters run. m.Decided is updated after
// each filter.
func (p *Pipeline) Run(ctx context.Context, stage Stage, m *Message) StageResult {
	var res StageResult
	closed := m.Decided.Settled()
	for _, pass := range []runPass{passFirst, passMiddle, passFinal} {
		for i := range p.steps {
			n := p.needs[i]
			if !n.Stages.Has(stage) || passOf(n) != pass || (closed && pass != passFinal) {
				continue
			}
			d := p.runOne(ctx, i, stage, m)
			res.Decisions = append(res.Decisions, d)
			if p.observer != nil {
				p.observer.FilterDecided(d)
			}
			v := d.Verdict
			res.Verdict.Edits = append(res.Verdict.Edits, v.Edits...)
			// Later filters see the message as it will be delivered: a
			// repaired or tagged header is what the next filter reads.
			// Before the header block is complete the edge applies edits
			// itself once it is (an added field goes after the fields
			// still to come). A Discard's edits count too: they stay in
			// the stage's edits, and reach the MTA, when a later filter
			// quarantines the message instead.
			if (Delivers(v.Action) || v.Action == Discard) && stage >= StageHeaders {
				m.Headers = ApplyEdits(m.Headers, v.Edits)
			}
			if v.Action > res.Verdict.Action {
				res.Verdict.Action = v.Action
				res.Verdict.Reply = v.Reply
				res.Verdict.Reason = v.Reason
				res.Filter = d.Filter
			}
			if v.Action > m.Decided.Action {
				m.Decided = Decided{Action: v.Action, Filter: d.Filter, Reason: v.Reason}
			}
			if v.Action == Reject {
				closed = true
			}
		}
	}
	edits := res.Verdict.Edits
	res.Verdict.Edits = nil
	// m.Decided is the outcome with this stage's verdicts: a message an
	// earlier stage quarantined stays held, and delivered once released,
	// when a filter of this stage discards it, so the stage's edits
	// (the Bayes verdict of the discarding filter among them) still
	// reach the MTA.
	if Delivers(res.Verdict.Action) || Delivers(m.Decided.Action) {
		res.Verdict.Edits = edits
	}
	return res
}

// runPass is one pass of Run over the steps: the filters that repair the
// message, then the others, then the final ones.
type runPass uint8

const (
	passFirst runPass = iota
	passMiddle
	passFinal
)

// passOf returns the pass in which a filter with needs n runs.
func passOf(n Needs) runPass {
	switch {
	case n.Final:
		return passFinal
	case n.First:
		return passFirst
	}
	return passMiddle
}

// Delivers reports whether a message with this action reaches its
// recipients, so that header edits still matter.
func Delivers(a Action) bool {
	return a == Continue || a == Accept || a == Quarantine
}

// runOne calls one filter with its timeout, turning errors, panics and
// timeouts into the step's failure policy.
func (p *Pipeline) runOne(ctx context.Context, i int, stage Stage, m *Message) Decision {
	s := p.steps[i]
	name := s.Filter.Name()
	start := time.Now()
	v, failure, err := call(ctx, s, stage, m, &p.late[i])
	d := Decision{Filter: name, Stage: stage, Verdict: v, Duration: time.Since(start), Failure: failure, Err: err}
	if failure != "" {
		d.Verdict = failureVerdict(s.OnFailure, name, failure)
		return d
	}
	if err := checkVerdict(v); err != nil {
		d.Failure, d.Err = FailureError, err
		d.Verdict = failureVerdict(s.OnFailure, name, FailureError)
	}
	return d
}

type callResult struct {
	v        Verdict
	err      error
	panicked any
	stack    []byte
}

// maxOverrun bounds the calls of one filter still running past their
// timeout. Each holds a goroutine and its copy of the message, body
// included, for as long as the filter takes: a filter that hangs where
// its context does not reach (a read of a disk that stopped answering)
// would otherwise hold one per message until the daemon ran out of
// memory. Past the bound the filter is not called, and the message gets
// the failure policy at once, as it would after the timeout; calls
// resume as the late ones end. A filter that is merely slow (a store
// that a training batch holds for a moment) finishes its late calls
// soon after their timeouts and stays far below it.
const maxOverrun = 256

// Call states, for a call with a timeout (see call).
const (
	callRunning int32 = iota
	callAnswered
	callAbandoned
)

// call runs Check. With a timeout it runs in its own goroutine so that a
// filter that ignores its context cannot hold the session past the
// deadline; the goroutine ends whenever Check returns. That goroutine gets
// its own copy of the message: after a timeout the edge goes on changing
// m (edits, macros, recipients, freeing the body) while the filter may
// still read it. late counts the step's calls abandoned so and still
// running; with maxOverrun of them, the filter is not called.
//
// A ctx that ends (the daemon cutting its sessions off as it stops) is
// not the filter's timeout: the call, or one that has not begun, fails
// as cut off, with ctx's cause, never as "no answer within" a time
// limit that had not run out. A filter after the cut is not called: the
// message it would judge gets no verdict, and it must not act on it (an
// archive keeping a copy of mail never delivered).
func call(ctx context.Context, s Step, stage Stage, m *Message, late *atomic.Int64) (Verdict, string, error) {
	if ctx.Err() != nil {
		return Verdict{}, FailureError, fmt.Errorf("filter %s at %s: not called: %w", s.Filter.Name(), stage, context.Cause(ctx))
	}
	if s.Timeout <= 0 {
		r := protect(ctx, s.Filter, stage, m)
		return cutOff(ctx, s, stage, r, false)
	}
	if n := late.Load(); n >= maxOverrun {
		return Verdict{}, FailureTimeout, fmt.Errorf("filter %s at %s: not called: %d calls still running past their timeout of %s", s.Filter.Name(), stage, n, s.Timeout)
	}
	cctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	done := make(chan callResult, 1)
	own := m.snapshot()
	var state atomic.Int32
	go func() {
		r := protect(cctx, s.Filter, stage, own)
		if !state.CompareAndSwap(callRunning, callAnswered) {
			late.Add(-1)
		}
		done <- r
	}()
	select {
	case r := <-done:
		return cutOff(ctx, s, stage, r, cctx.Err() != nil)
	case <-cctx.Done():
	}
	late.Add(1)
	if !state.CompareAndSwap(callRunning, callAbandoned) {
		// The answer came as the time ran out: take it.
		late.Add(-1)
		return cutOff(ctx, s, stage, <-done, true)
	}
	if ctx.Err() != nil {
		return Verdict{}, FailureError, fmt.Errorf("filter %s at %s: cut off unanswered: %w", s.Filter.Name(), stage, context.Cause(ctx))
	}
	return Verdict{}, FailureTimeout, fmt.Errorf("filter %s at %s: no answer within %s", s.Filter.Name(), stage, s.Timeout)
}

// cutOff is classify for the answer r of a call under ctx: an error that
// came because ctx ended (not the call's own timeout) says that the call
// was cut off, and why.
func cutOff(ctx context.Context, s Step, stage Stage, r callResult, expired bool) (Verdict, string, error) {
	if r.panicked == nil && r.err != nil && ctx.Err() != nil {
		return Verdict{}, FailureError, fmt.Errorf("filter %s at %s: cut off: %w (%w)", s.Filter.Name(), stage, context.Cause(ctx), r.err)
	}
	return classify(r, expired)
}

func classify(r callResult, expired bool) (Verdict, string, error) {
	switch {
	case r.panicked != nil:
		return Verdict{}, FailurePanic, fmt.Errorf("panic: %v\n%s", r.panicked, r.stack)
	case r.err != nil && expired && errors.Is(r.err, context.DeadlineExceeded):
		return Verdict{}, FailureTimeout, r.err
	case r.err != nil:
		return Verdict{}, FailureError, r.err
	}
	return r.v, "", nil
}

func protect(ctx context.Context, f Filter, stage Stage, m *Message) (r callResult) {
	defer func() {
		if p := recover(); p != nil {
			r = callResult{panicked: p, stack: debug.Stack()}
		}
	}()
	v, err := f.Check(ctx, stage, m)
	return callResult{v: v, err: err}
}

// checkVerdict rejects verdicts the edge could not carry out.
func checkVerdict(v Verdict) error {
	if v.Action >= numActions {
		return fmt.Errorf("invalid action %d", v.Action)
	}
	if v.Reply != nil && (v.Action == Reject || v.Action == Tempfail) {
		if err := v.Reply.Validate(); err != nil {
			return fmt.Errorf("invalid reply: %w", err)
		}
		if (v.Action == Reject) != (v.Reply.Code >= 500) {
			return fmt.Errorf("reply %d does not fit action %s", v.Reply.Code, v.Action)
		}
	}
	for _, e := range v.Edits {
		if err := e.Validate(); err != nil {
			return err
		}
	}
	return nil
}

func failureVerdict(p FailurePolicy, filter, kind string) Verdict {
	if p == FailTempfail {
		r := Reply{Code: 451, Enhanced: "4.3.0", Text: "Temporary filter failure, try again later"}
		return Verdict{Action: Tempfail, Reply: &r, Reason: fmt.Sprintf("filter %s failed (%s)", filter, kind)}
	}
	return Verdict{Action: Continue, Reason: fmt.Sprintf("filter %s failed (%s), ignored", filter, kind)}
}

// Outcome gathers a message's verdicts across stages: the strongest action
// so far, who decided it, and the edits to make at end of message.
type Outcome struct {
	Action Action
	Reply  *Reply
	Reason string
	// Filter names the filter whose verdict set Action.
	Filter string
	// Edits are kept in the order the filters returned them.
	Edits []HeaderEdit
	// Decisions of every filter at every stage, for the log.
	Decisions []Decision
}

// Add merges a stage's result into the outcome.
func (o *Outcome) Add(r StageResult) {
	o.Decisions = append(o.Decisions, r.Decisions...)
	o.Edits = append(o.Edits, r.Verdict.Edits...)
	if r.Verdict.Action > o.Action {
		o.Action = r.Verdict.Action
		o.Reply = r.Verdict.Reply
		o.Reason = r.Verdict.Reason
		o.Filter = r.Filter
	}
	if !Delivers(o.Action) {
		o.Edits = nil
	}
}

// Final reports whether the outcome ends the message before end of
// message, so the edge replies now. Quarantine and header edits wait for
// end of message, the only point where the milter protocol allows them; an
// Accept with edits pending therefore waits too, and later stages run no
// filters (see Settled).
func (o *Outcome) Final() bool {
	switch o.Action {
	case Discard, Tempfail, Reject:
		return true
	case Accept:
		return len(o.Edits) == 0
	}
	return false
}

// Decided returns the outcome so far as filters see it in
// Message.Decided.
func (o *Outcome) Decided() Decided {
	return Decided{Action: o.Action, Filter: o.Filter, Reason: o.Reason}
}

// Settled reports whether the action is decided, so later stages need not
// ask the filters any more.
func (o *Outcome) Settled() bool { return o.Action != Continue && o.Action != Quarantine }
