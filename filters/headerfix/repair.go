package headerfix

import (
	"strings"

	"github.com/sluice-mail/sluice/filters"
)

// Kind says what a repair found and what it did about it.
type Kind uint8

// The kinds of repair. A CRLF pair that is not folding counts as LF: what
// matters to a reader is that a line ends there.
const (
	// SplitCR: a bare CR ended the field early; the text after it was a
	// header field of its own and became one.
	SplitCR Kind = iota
	// SplitLF: the same for a bare LF (or a CRLF not followed by
	// whitespace).
	SplitLF
	// SplitMerged: the MTA had already turned the line end into a space
	// (Postfix does so with a bare CR); a field with a strict syntax,
	// such as Date, was valid up to that space and followed by a header
	// field, which became its own field again.
	SplitMerged
	// SpaceCR: a bare CR not followed by a header field became a space.
	SpaceCR
	// SpaceLF: the same for a bare LF (or a CRLF not followed by
	// whitespace).
	SpaceLF
	// SpaceNUL: a NUL byte became a space.
	SpaceNUL
	numKinds
)

var kindNames = [numKinds]string{"split_cr", "split_lf", "split_merged", "space_cr", "space_lf", "space_nul"}

// String returns the kind's name as used in metrics and logs.
func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "unknown"
}

// Kinds returns every kind, in the order of the constants.
func Kinds() []Kind {
	ks := make([]Kind, numKinds)
	for i := range ks {
		ks[i] = Kind(i)
	}
	return ks
}

// IsSplit reports whether the repair created a field.
func (k Kind) IsSplit() bool { return k <= SplitMerged }

// Fix is one repair made to a header block.
type Fix struct {
	Kind Kind
	// Field is the name of the field the stray character was in, as
	// written in the message.
	Field string
	// Index is that field's position in the input (0 is the first).
	Index int
	// NewField names the field split off, for the split kinds.
	NewField string
	// Repeat is how many more times the same fix was made in the same
	// part of the field, for the kinds that turn a byte into a space: a
	// run of a million NUL bytes is one record, not a million (a record
	// and a summary string each took half a second and 300 MB for a
	// header of 1 MiB).
	Repeat int
}

// N is how many fixes f stands for.
func (f Fix) N() int { return 1 + f.Repeat }

// Field is one field of a repaired header block.
type Field struct {
	filters.Header
	// Source is the position in the input of the field this one comes
	// from.
	Source int
	// SplitOff is set for a field cut out of its source field; the
	// source field's own first part has it unset.
	SplitOff bool
}

// Result is a repaired header block.
type Result struct {
	// Fields are the repaired fields in order: each split-off field
	// follows the part of its source field before it.
	Fields []Field
	// Fixes lists the repairs in the order they were made.
	Fixes []Fix
}

// Headers returns the repaired fields as plain header fields.
func (r Result) Headers() []filters.Header {
	hs := make([]filters.Header, len(r.Fields))
	for i, f := range r.Fields {
		hs[i] = f.Header
	}
	return hs
}

// Placement says where the MTA puts a field that a milter adds. It
// decides which splits the filter can carry out faithfully (see plan.go):
// both MTAs add a field of a name the header does not have yet the same
// way (at the end, or with Sendmail into the field it made up itself),
// but only Postfix puts a field that joins others of its name after them.
type Placement uint8

const (
	// AppendsAtEnd: every added field goes at the end of the header
	// (Postfix, observed).
	AppendsAtEnd Placement = iota
	// AddsBeforeSameName: an added field goes before the first field of
	// its name, the MTA's own hidden Received: included, or fills a
	// default field the MTA made up (Sendmail 8.17, observed and in its
	// milter code). This is also assumed for an MTA sluice does not
	// recognize.
	AddsBeforeSameName
)

// Repair finds bare CR, bare LF and NUL bytes in the header values and
// repairs them, returning the repaired block with what was done. The
// input is not modified.
//
// Both MTAs hand a folded value to the milter with a bare LF before each
// continuation line ("a\n b"); that, and CRLF followed by a space or tab,
// is valid folding and kept. Any other CR or LF is stray. When the text
// after a stray line end is a header field ("Name: value"), that text
// becomes a field of its own; otherwise the stray character becomes a
// space. A NUL byte becomes a space. A field whose syntax is strict (Date,
// Received, Message-ID and a few more, see strictFields) that is valid
// only up to whitespace followed by a header field is split there: that
// is what Postfix leaves of a line that ended in a bare CR. Fields whose
// name is not a valid field name are left alone, since no header edit
// could address them.
//
// With AddsBeforeSameName, a field is not split off when the header
// already has a field of its name (from the input or split off before),
// since the MTA would not put it after the field it came from, nor when
// it is named like a field Sendmail can make up other than From, Date and
// Message-Id (see hiddenSlot), since Sendmail would put it above its own
// Received: or not write it at all: the stray character becomes a space
// instead, and a merged strict field stays as it is.
//
// Repair is idempotent: repairing its output with the same placement
// changes nothing. It removes nothing but the stray characters it reports
// and, where it splits, the whitespace around the cut. It takes time
// linear in the size of the header.
func Repair(headers []filters.Header, p Placement) Result {
	return repair(headers, p, "", nil)
}

// repair is Repair for a filter whose trace field is named trace: a
// field of that name split off is never added (the filter drops it, see
// edits), so with AddsBeforeSameName it may always be split off. Were
// one such split to keep a second from being made, the second's stray
// character would become a space, and a strict field could be left
// valid up to whitespace and the trace field, which the next pass would
// split: the repair would not be idempotent.
//
// replace names the fields (by lower-case name) whose only field in the
// header is one the filter will give the value of a field of that name
// split off (see submitted), with its position: with AddsBeforeSameName
// such a field may be split off once all the same from a field below
// that one, as it is not added but changes that one (see replaced). Split
// off from a field above it, it would be added, before that one.
func repair(headers []filters.Header, p Placement, trace string, replace map[string]int) Result {
	rp := repairer{placement: p, headers: headers, trace: trace}
	if len(replace) > 0 {
		rp.replace = make(map[string]int, len(replace))
		for k, i := range replace {
			rp.replace[k] = i
		}
	}
	rp.r.Fields = make([]Field, 0, len(headers))
	for i, h := range headers {
		switch {
		case !validName(h.Name):
			rp.r.Fields = append(rp.r.Fields, Field{Header: h, Source: i})
		case !strings.ContainsAny(h.Value, "\r\n\x00"):
			rp.splitMerged(i, Field{Header: h, Source: i})
		default:
			for _, part := range rp.splitStray(i, h) {
				rp.splitMerged(i, part)
			}
		}
	}
	return rp.r
}

type repairer struct {
	r         Result
	placement Placement
	headers   []filters.Header
	// names holds the lower-case names of the fields in the header,
	// split-off ones included; it is made at the first split.
	names map[string]bool
	// trace names the fields that are split off but never added; ""
	// for none.
	trace string
	// replace holds the names that may be split off once although the
	// header has a field of that name, from a field below the position
	// given (see repair).
	replace map[string]int
}

// maySplit reports whether a field named name may be split off from the
// input field at idx, and records the name if so.
func (rp *repairer) maySplit(idx int, name string) bool {
	if rp.names == nil {
		rp.names = map[string]bool{}
		for _, h := range rp.headers {
			if validName(h.Name) {
				rp.names[filters.NameKey(h.Name)] = true
			}
		}
	}
	if rp.trace != "" && filters.SameName(name, rp.trace) {
		return true
	}
	key := filters.NameKey(name)
	pos, replace := rp.replace[key]
	replace = replace && pos < idx
	if rp.placement == AddsBeforeSameName && (rp.names[key] && !replace || hiddenSlot[key]) {
		return false
	}
	delete(rp.replace, key)
	rp.names[key] = true
	return true
}

// hiddenSlot holds the names, besides From, Date and Message-Id, of the
// fields Sendmail's standard configuration can make up (its H lines).
// Sendmail keeps a slot in the header for each, used or not, and a field
// a milter adds under such a name goes into the slot (observed): a
// Received: above Sendmail's own, a Return-Path: in place of the one
// Sendmail writes with the envelope sender, and a Resent-*: or
// Full-Name: into a slot Sendmail writes only when it makes the field
// up, so that the field is not in the delivered message at all. From,
// Date and Message-Id are written, so they may be split off.
var hiddenSlot = map[string]bool{
	"received":          true,
	"return-path":       true,
	"resent-date":       true,
	"resent-from":       true,
	"resent-message-id": true,
	"full-name":         true,
}

// splitStray cuts one field at its stray line ends. The first part keeps
// the field's name.
func (rp *repairer) splitStray(idx int, h filters.Header) []Field {
	r := &rp.r
	var parts []Field
	cur := Field{Header: filters.Header{Name: h.Name}, Source: idx}
	var b strings.Builder
	// line is the length of the line being written, as the MTA writes
	// it: the first one starts with the name, a colon and a space.
	line := len(cur.Name) + 2
	v := h.Value
	var spaces spaceFixes
	fixes := len(r.Fixes)
	for i := 0; i < len(v); {
		c := v[i]
		if c == 0 {
			b.WriteByte(' ')
			line++
			spaces.add(r, Fix{Kind: SpaceNUL, Field: cur.Name, Index: idx})
			i++
			continue
		}
		if c != '\r' && c != '\n' {
			b.WriteByte(c)
			line++
			i++
			continue
		}
		n := 1
		if c == '\r' && i+1 < len(v) && v[i+1] == '\n' {
			n = 2
		}
		next := i + n
		if c == '\n' || n == 2 {
			if next < len(v) && (v[next] == ' ' || v[next] == '\t') {
				// Folding: keep it as it is.
				b.WriteString(v[i:next])
				line = 0
				i = next
				continue
			}
		}
		lf := c == '\n' || n == 2
		name, start, ok := fieldAt(v[next:])
		if ok && (emptyAtEnd(name, v[next+start:]) || rp.maySplit(idx, name)) {
			kind := SplitCR
			if lf {
				kind = SplitLF
			}
			r.Fixes = append(r.Fixes, Fix{Kind: kind, Field: cur.Name, Index: idx, NewField: name})
			cur.Value = dropBlankLines(b.String())
			parts = append(parts, cur)
			b.Reset()
			spaces = spaceFixes{} // the part split off is another field
			cur = Field{Header: filters.Header{Name: name}, Source: idx, SplitOff: true}
			line = len(name) + 2
			i = next + start
			continue
		}
		kind := SpaceCR
		if lf {
			kind = SpaceLF
		}
		spaces.add(r, Fix{Kind: kind, Field: cur.Name, Index: idx})
		if next < len(v) && line+1+pieceLen(v[next:]) > maxLineLen {
			// Two lines the MTA writes apart, each within the limit,
			// must not become one line beyond it: fold instead. A bare
			// CR, which Sendmail writes inside one line, too: Sendmail
			// cuts a header line off after 2,303 bytes when it writes
			// the message (observed with 8.17), so text a bare CR kept
			// on one long line would be lost. The fold unfolds to the
			// same space.
			b.WriteString("\n ")
			line = 1
		} else {
			b.WriteByte(' ')
			line++
		}
		i = next
	}
	if len(parts) == 0 && len(r.Fixes) == fixes {
		// Nothing stray: only folding, kept as it is, and a line of
		// blanks in it stays too. Only a repaired field is tidied.
		cur.Value = b.String()
		return append(parts, cur)
	}
	cur.Value = dropBlankLines(b.String())
	return append(parts, cur)
}

// dropBlankLines removes from a repaired value each continuation line
// that holds nothing but blanks, with the line break before it. A fold
// kept right before a stray line end that became a split, or one made
// to keep a line within the limit with only blanks after it, would
// leave such a line: RFC 5322 allows it only in its obsolete syntax,
// which must not be generated, and a reader may take it for the empty
// line that ends the header. Only blanks go, which unfolding would have
// made spaces.
func dropBlankLines(v string) string {
	first := strings.IndexByte(v, '\n')
	if first < 0 {
		return v
	}
	end := first
	if end > 0 && v[end-1] == '\r' {
		end-- // the CR of a CRLF belongs to the break
	}
	var b strings.Builder
	b.WriteString(v[:end])
	// rest starts with a line break: LF, or CR LF.
	for rest := v[end:]; rest != ""; {
		brk := 1
		if rest[0] == '\r' && len(rest) > 1 && rest[1] == '\n' {
			brk = 2
		}
		line := rest[brk:]
		if k := strings.IndexByte(line, '\n'); k >= 0 {
			line = line[:k]
			if strings.HasSuffix(line, "\r") {
				line = line[:len(line)-1]
			}
		}
		if strings.Trim(line, " \t") != "" {
			b.WriteString(rest[:brk+len(line)])
		}
		rest = rest[brk+len(line):]
	}
	return b.String()
}

// spaceFixes are where in the fixes of a repair the records of one part
// of a field are, by the kind of byte turned into a space, so that the
// same fix again counts in that record (Fix.Repeat).
type spaceFixes [3]int // SpaceNUL, SpaceCR, SpaceLF: index+1, 0 for none

// add records fx, a space fix, in its part's record of its kind.
func (s *spaceFixes) add(r *Result, fx Fix) {
	k := 0
	switch fx.Kind {
	case SpaceCR:
		k = 1
	case SpaceLF:
		k = 2
	}
	if i := s[k]; i > 0 {
		r.Fixes[i-1].Repeat++
		return
	}
	r.Fixes = append(r.Fixes, fx)
	s[k] = len(r.Fixes)
}

// emptyAtEnd reports whether a field named name split off with the value
// rest, the rest of the field it comes from, is an empty From:, Date: or
// Message-ID:. Such a field is split off but never added (see
// emptyMadeUp), so it does not take up its name: a real one after it
// may still be split off. Only a value with nothing but blanks and line
// ends to its end is sure to stay empty; whatever a stray line end in
// it becomes, no field can be split off there.
func emptyAtEnd(name, rest string) bool {
	return madeUpName(name) && strings.Trim(rest, " \t\r\n") == ""
}

// maxLineLen is the longest line RFC 5322 section 2.1.1 allows, without
// its CRLF.
const maxLineLen = 998

// pieceLen is the length of s up to its first CR or LF, the text that a
// stray line end just before s joins to the line before it; any
// length beyond maxLineLen counts as maxLineLen+1. The next CR or LF
// decides for itself whether it ends the line, so each stray character
// folds only when the line would grow too long, and the scan is bounded:
// the repair stays linear in the size of the value.
func pieceLen(s string) int {
	if len(s) > maxLineLen+1 {
		s = s[:maxLineLen+1]
	}
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return i
	}
	return len(s)
}

// splitMerged appends f to the result, split where a field of strict
// syntax swallowed the next field (see strictFields).
func (rp *repairer) splitMerged(idx int, f Field) {
	r := &rp.r
	for {
		first, name, rest, ok := unmerge(f.Name, f.Value)
		if !ok || !(emptyAtEnd(name, rest) || rp.maySplit(idx, name)) {
			break
		}
		r.Fixes = append(r.Fixes, Fix{Kind: SplitMerged, Field: f.Name, Index: idx, NewField: name})
		// A field repaired so is tidied as one with a stray line end
		// (see dropBlankLines): the part split off must not carry a
		// line of blanks the client sent into the field it adds.
		f.Value = dropBlankLines(first)
		r.Fields = append(r.Fields, f)
		f = Field{Header: filters.Header{Name: name, Value: dropBlankLines(rest)}, Source: idx, SplitOff: true}
	}
	r.Fields = append(r.Fields, f)
}

// fieldAt reports whether s starts with a header field: a field name (RFC
// 5322 2.2: printable ASCII except colon), a colon, and then a space, a
// tab, a line end or nothing. Requiring the blank after the colon keeps
// text such as "http://..." or "10:30" from being taken for a field;
// real fields are written "Name: value". It returns the name and where
// the value starts (after the colon and any spaces and tabs).
func fieldAt(s string) (name string, start int, ok bool) {
	i := 0
	for i < len(s) && isFtext(s[i]) {
		i++
	}
	if i == 0 || i >= len(s) || s[i] != ':' {
		return "", 0, false
	}
	j := i + 1
	if j < len(s) && s[j] != ' ' && s[j] != '\t' && s[j] != '\r' && s[j] != '\n' {
		return "", 0, false
	}
	for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
		j++
	}
	return s[:i], j, true
}

func isFtext(c byte) bool { return c >= 33 && c <= 126 && c != ':' }

// validName reports whether s is a field name a header edit can carry.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isFtext(s[i]) {
			return false
		}
	}
	return true
}
