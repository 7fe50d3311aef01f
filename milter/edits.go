package milter

import (
	"slices"

	"github.com/sluice-mail/sluice/filters"
)

// The edits a message's filters return address fields as sluice's model
// has them after every earlier edit (filters.ApplyEdits): once a field
// is deleted, the next field of its name takes its index. Postfix counts
// the same way, Sendmail does not: a field deleted with smfi_chgheader
// keeps its place in Sendmail's count, so a later change or delete of
// that index hits the deleted field again, and the field meant stays
// untouched (observed with Sendmail 8.17.1.9: "delete X-T 1, change X-T
// 1" brought the deleted field back with the new value). An add of a
// name the header has shifts Sendmail's count too, as Sendmail puts the
// new field before the first field of that name. (The session sends an
// add of a name the MTA showed as an insert at the end instead, see
// applyEdits; the rules here do not count on it.)
//
// Most edit lists are not affected: a filter deletes the last field of a
// name first, and filters rarely touch a name another one touched. Those
// go to the MTA as they are, in the order the filters made them. For the
// others, mtaEdits sends the net effect of the edits in an order both
// MTAs count alike: first the changes of fields the MTA showed sluice,
// by their index as it showed them; then the deletions of such fields,
// the last of each name first; then the fields the filters added or
// inserted, with their final values, in the order the filters made them.

// countsDiffer reports whether the MTAs may take an index in edits to
// mean different fields: a change or delete of a name after a deletion
// of a field of that name at the same index or above it, or after a
// field of that name was added or inserted. A change past the last field
// of a name adds one (filters.ApplyEdits, and both MTAs), so it counts as
// an addition: Sendmail puts such a field before the first of its name,
// and a later "change X-T 1" would hit it there. shown are the fields
// the MTA showed sluice, before any edit.
func countsDiffer(shown []filters.Header, edits []filters.HeaderEdit) bool {
	// count[name] is how many fields of the name the model has after
	// the edits so far; lowestDeleted[name] is the lowest index deleted
	// so far; made[name] marks names a field was made of.
	count := map[string]int{}
	for _, h := range shown {
		count[filters.NameKey(h.Name)]++
	}
	lowestDeleted := map[string]int{}
	made := map[string]bool{}
	for _, e := range edits {
		key := filters.NameKey(e.Name)
		switch e.Kind {
		case filters.AddHeader, filters.InsertHeader:
			made[key] = true
			count[key]++
		case filters.ChangeHeader, filters.DeleteHeader:
			if low, ok := lowestDeleted[key]; made[key] || ok && low <= e.Index {
				return true
			}
			removes := e.Kind == filters.DeleteHeader || e.Value == ""
			switch {
			case e.Index > count[key] && !removes:
				made[key] = true
				count[key]++
			case removes:
				lowestDeleted[key] = e.Index
				if e.Index >= 1 && e.Index <= count[key] {
					count[key]--
				}
			}
		}
	}
	return false
}

// editEntry is a field of the header while the edits are worked through.
type editEntry struct {
	name, value string
	// nth is the field's 1-based index among the fields of its name the
	// MTA showed sluice; 0 for a field an edit made.
	nth int
	// original is the value the MTA has for the field and pos its place
	// among the fields shown, for nth > 0.
	original string
	pos      int
	// noSpace is the shown field's filters.Header.NoSpace: a change,
	// even to the value it has, gives it the space it lacks.
	noSpace bool
	// changedAs is the name of the last edit that changed the field.
	changedAs string
	// inserted marks a field an InsertHeader made (else AddHeader, or a
	// change of a field that was not there, which adds it).
	inserted bool
}

// mtaEdits returns edits for the MTA that leave the header fields it
// showed sluice (shown) as edits leaves them in sluice's model; see above.
// shown must be the fields as the MTA handed them over, before any edit.
func mtaEdits(shown []filters.Header, edits []filters.HeaderEdit) []filters.HeaderEdit {
	if len(edits) == 0 {
		return nil
	}
	entries := make([]*editEntry, 0, len(shown)+len(edits))
	seen := map[string]int{}
	for i, h := range shown {
		key := filters.NameKey(h.Name)
		seen[key]++
		entries = append(entries, &editEntry{name: h.Name, value: h.Value, nth: seen[key], original: h.Value, pos: i, noSpace: h.NoSpace})
	}
	var made []*editEntry    // fields the edits made, in order
	var deleted []*editEntry // shown fields the edits deleted
	for k := 0; k < len(edits); k++ {
		e := edits[k]
		if n := filters.DeletionRun(edits[k:]); n > 1 {
			// As in filters.ApplyEdits: a sender's many fields of a
			// name a filter deletes, the last first, go in one pass.
			entries = filters.DeleteRun(entries, func(e *editEntry) string { return e.name }, edits[k:k+n], func(e *editEntry) {
				if e.nth > 0 { // a field the MTA showed
					deleted = append(deleted, e)
				}
			})
			k += n - 1
			continue
		}
		switch e.Kind {
		case filters.AddHeader:
			n := &editEntry{name: e.Name, value: e.Value}
			entries = append(entries, n)
			made = append(made, n)
		case filters.InsertHeader:
			n := &editEntry{name: e.Name, value: e.Value, inserted: true}
			i := min(max(e.Index, 0), len(entries))
			entries = append(entries, nil)
			copy(entries[i+1:], entries[i:])
			entries[i] = n
			made = append(made, n)
		case filters.ChangeHeader, filters.DeleteHeader:
			i := nthEntry(entries, e.Name, e.Index)
			if i < 0 {
				// As filters.ApplyEdits: changing a field that does not
				// exist adds it; deleting one does nothing.
				if e.Kind == filters.ChangeHeader && e.Value != "" {
					n := &editEntry{name: e.Name, value: e.Value}
					entries = append(entries, n)
					made = append(made, n)
				}
				continue
			}
			if e.Kind == filters.DeleteHeader || e.Value == "" {
				if entries[i].nth > 0 {
					deleted = append(deleted, entries[i])
				}
				entries = append(entries[:i], entries[i+1:]...)
				continue
			}
			entries[i].value = e.Value
			entries[i].changedAs = e.Name
		}
	}

	var out []filters.HeaderEdit
	for _, n := range entries {
		if n.nth > 0 && n.changedAs != "" && (n.value != n.original || n.noSpace) {
			out = append(out, filters.HeaderEdit{Kind: filters.ChangeHeader, Name: n.changedAs, Index: n.nth, Value: n.value})
		}
	}
	// From the last field up: per name the highest index goes first, so Postfix
	// finds the fields still to delete where they were (and Sendmail
	// always does).
	slices.SortFunc(deleted, func(a, b *editEntry) int { return b.pos - a.pos })
	for _, d := range deleted {
		out = append(out, filters.HeaderEdit{Kind: filters.DeleteHeader, Name: d.name, Index: d.nth})
	}
	// An added field ends up below every field there when it was made,
	// so sending the made fields in the order they were made, each after
	// the fields that stay, puts them where the model has them: an add
	// stays an add, an insert gets the index of its final place among
	// the fields there by then.
	present := map[*editEntry]bool{}
	for _, n := range entries {
		if n.nth > 0 {
			present[n] = true
		}
	}
	for _, m := range made {
		pos, before := -1, 0
		for i, n := range entries {
			if n == m {
				pos = i
				break
			}
			if present[n] {
				before++
			}
		}
		if pos < 0 {
			continue // deleted again by a later edit
		}
		present[m] = true
		if m.inserted {
			out = append(out, filters.HeaderEdit{Kind: filters.InsertHeader, Name: m.name, Index: before, Value: m.value})
		} else {
			out = append(out, filters.HeaderEdit{Kind: filters.AddHeader, Name: m.name, Value: m.value})
		}
	}
	return out
}

// nthEntry is nthField (filters.ApplyEdits' rule) over entries.
func nthEntry(entries []*editEntry, name string, n int) int {
	for i, e := range entries {
		if filters.SameName(e.name, name) {
			n--
			if n == 0 {
				return i
			}
		}
	}
	return -1
}
