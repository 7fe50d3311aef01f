// Package headerfix repairs header lines that end in a bare CR or a bare
// LF instead of CRLF.
//
// RFC 5321 (2.3.8) and RFC 5322 (2.2) allow only CRLF as a line end, but
// real clients send bare CR and bare LF, and programs disagree on what
// they mean: one reader sees "Date: ...\rFrom: ..." as one Date field,
// another as a Date and a From field. The filter decides once, and the
// delivered message, the archive and the classifier then agree.
//
// What the filter can see depends on the MTA; docs/headerfix.md records
// what Postfix 3.7 and Sendmail 8.17 hand to a milter for each kind of line
// end. In short: Postfix ends a line at a bare LF and turns a bare CR into
// a space; Sendmail refuses both unless told otherwise, and then keeps
// them in the value. Repair handles the bare characters and, for fields
// with a strict syntax such as Date, the space Postfix leaves.
//
// At the end of the header block the filter repairs the header (policy
// fix), refuses the message (reject), only marks it (tag) or does nothing
// (off). Repairs are header edits (see plan.go for why they are changes,
// adds and deletes only), so the pipeline applies them to the message
// model too and every later filter sees the repaired header. Fields named
// like the trace field that the message came with are deleted first,
// whatever the policy, so that the trace field is always the filter's own.
//
// Metrics go through Observer, which the daemon's metrics implement.
package headerfix

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/sluice-mail/sluice/filters"
)

// Observer is told what the filter finds, for metrics. It must be safe for
// concurrent use. filter is the filter's name in the pipeline.
type Observer interface {
	// HeaderfixFound reports n repairs of one kind (see Kind.String)
	// found in a message, whether or not the policy let the filter make
	// them.
	HeaderfixFound(filter, kind string, n int)
	// HeaderfixMessage reports a message that needed repair and what the
	// filter did: "fix", "tag", "reject", or "too_many" when it had more
	// stray line ends than it repairs (see MaxSplits).
	HeaderfixMessage(filter, action string)
}

// MaxSplits bounds the fields the filter splits off in one message, and
// MaxEdits the header edits a repair may take. A header that needs more
// is left as it is and only marked: thousands of header edits for one
// message (a stray CR in each of thousands of fields) would be abuse of
// the MTA, not repair.
const (
	MaxSplits = 64
	MaxEdits  = 256
)

// Factory is the filters.Factory for type "headerfix".
func Factory(env filters.Env, decode func(v any) error) (filters.Filter, error) {
	var cfg Config
	if err := decode(&cfg); err != nil {
		return nil, err
	}
	return New(env, cfg)
}

// Filter is the header line-end repair filter. It implements
// filters.Filter.
type Filter struct {
	name string
	s    settings
	obs  Observer
	log  *slog.Logger
}

var _ filters.Filter = (*Filter)(nil)

// New checks cfg and returns the filter.
func New(env filters.Env, cfg Config) (*Filter, error) {
	s, err := cfg.check()
	if err != nil {
		return nil, err
	}
	f := &Filter{name: env.Name, s: s, log: env.Logger}
	if f.name == "" {
		f.name = "headerfix"
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.obs, _ = env.Observer.(Observer)
	return f, nil
}

// Name implements filters.Filter.
func (f *Filter) Name() string { return f.name }

// Needs implements filters.Filter: the header fields, at the end of the
// header block, so that a reject comes before the body is sent; first at
// that stage, whatever the filter's place in the list, so that every
// other filter reads the repaired header. A filter that deletes the
// fields of its names a message came with (dnsbl) must see those a
// repair splits off: run before the repair, it would let a sender's own
// verdict, hidden behind a bare CR, through as a field. Policy off asks
// for nothing.
func (f *Filter) Needs() filters.Needs {
	if f.s.policy == PolicyOff {
		return filters.Needs{}
	}
	return filters.Needs{Stages: filters.StagesOf(filters.StageHeaders), Headers: true, First: true}
}

// Check implements filters.Filter.
func (f *Filter) Check(_ context.Context, stage filters.Stage, m *filters.Message) (filters.Verdict, error) {
	if stage != filters.StageHeaders || f.s.policy == PolicyOff {
		return filters.Verdict{}, nil
	}
	// Trace fields the message came with are the sender's: they go,
	// whatever the repair finds, so that a reader can trust the field to
	// be ours. The repair looks only at the fields that stay.
	in, forged := f.withoutTrace(m.Headers)
	p := placementOf(m)
	var sub map[string]int
	if p == AddsBeforeSameName {
		sub = submitted(in, m)
	}
	res := repair(in, p, f.s.trace, sub)
	if len(res.Fixes) == 0 {
		return filters.Verdict{Edits: forged}, nil
	}
	drop := invented(in, res, m)
	for i := range replaced(res, sub) {
		if drop == nil {
			drop = map[int]bool{}
		}
		drop[i] = true
	}
	summary := summarize(res.Fixes, in, drop)
	if f.obs != nil {
		for _, fx := range res.Fixes {
			f.obs.HeaderfixFound(f.name, fx.Kind.String(), fx.N())
		}
	}
	splits := 0
	for _, fx := range res.Fixes {
		if fx.Kind.IsSplit() {
			splits++
		}
	}

	action := f.s.policy.String()
	var v filters.Verdict
	switch {
	case f.s.policy == PolicyReject:
		r := f.s.reply
		v = filters.Verdict{Action: f.s.action, Reply: &r, Reason: "headerfix: " + summary}
	case f.s.policy == PolicyTag:
		v = filters.Verdict{Reason: "headerfix: found " + summary, Edits: append(forged, f.trace("not repaired: "+summary)...)}
	case splits > MaxSplits:
		action = "too_many"
		note := fmt.Sprintf("not repaired: %d fields to split off, more than %d", splits, MaxSplits)
		v = filters.Verdict{Reason: "headerfix: " + note, Edits: append(forged, f.trace(note)...)}
	default:
		// The deletions of forged trace fields do not count towards
		// MaxEdits: they are made in one pass (see
		// filters.DeletionRun), and a sender must not be able to stop
		// a repair by sending many of them.
		es := edits(in, res, drop, f.s.trace, p)
		if len(es) > MaxEdits {
			action = "too_many"
			note := fmt.Sprintf("not repaired: %d header edits, more than %d", len(es), MaxEdits)
			v = filters.Verdict{Reason: "headerfix: " + note, Edits: append(forged, f.trace(note)...)}
			break
		}
		es = append(forged, es...)
		v = filters.Verdict{Reason: "headerfix: repaired " + summary, Edits: append(es, f.trace(summary)...)}
	}
	if f.obs != nil {
		f.obs.HeaderfixMessage(f.name, action)
	}
	f.log.Info("headerfix: stray line ends in header", "queue_id", m.QueueID, "action", action, "repairs", summary)
	return v, nil
}

// placementOf tells Postfix, which sends its name and version in macro v
// by default (milter_macro_v), from other MTAs.
func placementOf(m *filters.Message) Placement {
	if v, _ := m.Macro("v"); strings.HasPrefix(v, "Postfix") {
		return AppendsAtEnd
	}
	return AddsBeforeSameName
}

// OwnedFields implements filters.FieldOwner: the trace field, whose
// copies in a message the filter deletes. A filter that adds no trace
// field, or is off, owns none.
func (f *Filter) OwnedFields() []string {
	if f.s.trace == "" || f.s.policy == PolicyOff {
		return nil
	}
	return []string{f.s.trace}
}

// withoutTrace returns the fields of in that are not named like the trace
// field, and the edits that delete the others from the message: the last
// first, so that every index still counts the fields as they came and the
// pipeline and the milter edge make the deletions in one pass however
// many there are (see filters.DeletionRun). in is not modified.
func (f *Filter) withoutTrace(in []filters.Header) ([]filters.Header, []filters.HeaderEdit) {
	if f.s.trace == "" {
		return in, nil
	}
	var kept []filters.Header
	n := 0
	for i, h := range in {
		if !filters.SameName(h.Name, f.s.trace) {
			if n > 0 {
				kept = append(kept, h)
			}
			continue
		}
		if n == 0 {
			// Copy only once there is something to leave out: most
			// messages have no trace field.
			kept = append(make([]filters.Header, 0, len(in)-1), in[:i]...)
		}
		n++
	}
	if n == 0 {
		return in, nil
	}
	deletes := make([]filters.HeaderEdit, 0, n)
	for i := n; i >= 1; i-- {
		deletes = append(deletes, filters.HeaderEdit{Kind: filters.DeleteHeader, Name: f.s.trace, Index: i})
	}
	return kept, deletes
}

// trace returns the edit that adds the trace field, if one is configured.
func (f *Filter) trace(value string) []filters.HeaderEdit {
	if f.s.trace == "" {
		return nil
	}
	return []filters.HeaderEdit{{Kind: filters.AddHeader, Name: f.s.trace, Value: fold(len(f.s.trace)+2, value)}}
}

// Bounds on the trace field, so that it stays a short, readable line or
// two whatever the message holds.
const (
	maxSummaryItems = 8
	maxSummaryName  = 40
)

// maxTraceFirst is the longest first part of a trace value, which fold
// keeps on the line of the field's name: "not repaired: split A/B (xN),"
// with both names cut by short and N as long as an int can be written.
const maxTraceFirst = len("not repaired: split / (x),") + 2*(maxSummaryName+len("...")) + len("-9223372036854775808")

// summarize describes the repairs in words, e.g. "split Date/From, CR to
// space in Subject". Repeats are counted ("(x3)"), names are shortened,
// and only the first few kinds of repair are named.
func summarize(fixes []Fix, in []filters.Header, drop map[int]bool) string {
	var items []string
	count := map[string]int{}
	add := func(s string, n int) {
		if count[s] == 0 {
			items = append(items, s)
		}
		count[s] += n
	}
	for _, fx := range fixes {
		switch fx.Kind {
		case SplitCR, SplitLF, SplitMerged:
			add("split "+short(fx.Field)+"/"+short(fx.NewField), fx.N())
		case SpaceCR:
			add("CR to space in "+short(fx.Field), fx.N())
		case SpaceLF:
			add("LF to space in "+short(fx.Field), fx.N())
		case SpaceNUL:
			add("NUL to space in "+short(fx.Field), fx.N())
		}
	}
	for i, h := range in {
		if drop[i] {
			add("dropped "+short(h.Name)+" added by MTA", 1)
		}
	}
	var b strings.Builder
	for i, it := range items {
		if i == maxSummaryItems {
			fmt.Fprintf(&b, ", and %d more", len(items)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(it)
		if n := count[it]; n > 1 {
			fmt.Fprintf(&b, " (x%d)", n)
		}
	}
	return b.String()
}

// short shortens a field name for the summary. Names are printable ASCII
// (validName), so cutting bytes cuts no character in half.
func short(name string) string {
	if len(name) > maxSummaryName {
		return name[:maxSummaryName] + "..."
	}
	return name
}

// fold breaks a comma-separated value into lines of at most 78
// characters (RFC 5322 2.1.1) after commas, with a tab before each
// continuation line. first is the room the field name takes on the first
// line.
func fold(first int, value string) string {
	var lines []string
	line := ""
	for i, p := range strings.Split(value, ", ") {
		if i > 0 {
			if first+len(line)+2+len(p) > 78 {
				lines = append(lines, line+",")
				line, first = p, 1
				continue
			}
			line += ", "
		}
		line += p
	}
	return strings.Join(append(lines, line), "\n\t")
}
