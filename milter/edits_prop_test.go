package milter

import (
	"math/rand"
	"slices"
	"testing"

	"github.com/sluice-mail/sluice/filters"
)

// sendmailEdits applies edits as Sendmail 8.17 does (observed, see
// docs/headerfix.md and docs/filters.md): a change or delete counts the
// fields of a name that the milter was shown, and fields a milter added,
// and a field deleted through the milter keeps its place in that count,
// so that a later change of its index brings it back; an added field, or
// one a change past the last field adds, goes before the first field of
// its name, else at the end. Inserts are left out: their index counts
// fields Sendmail never shows.
func sendmailEdits(shown []filters.Header, edits []filters.HeaderEdit) []filters.Header {
	type field struct {
		name, value string
		deleted     bool
	}
	var fs []*field
	for _, h := range shown {
		fs = append(fs, &field{name: h.Name, value: h.Value})
	}
	add := func(name, value string) {
		for i, f := range fs {
			if filters.SameName(f.name, name) {
				fs = slices.Insert(fs, i, &field{name: name, value: value})
				return
			}
		}
		fs = append(fs, &field{name: name, value: value})
	}
	for _, e := range edits {
		if e.Kind == filters.AddHeader {
			add(e.Name, e.Value)
			continue
		}
		value := e.Value
		if e.Kind == filters.DeleteHeader {
			value = ""
		}
		var hit *field
		n := e.Index
		for _, f := range fs {
			if filters.SameName(f.name, e.Name) {
				if n--; n == 0 {
					hit = f
					break
				}
			}
		}
		switch {
		case hit == nil && value != "":
			add(e.Name, value)
		case hit == nil:
		case value == "":
			hit.deleted = true
		default:
			hit.value, hit.deleted = value, false
		}
	}
	var out []filters.Header
	for _, f := range fs {
		if !f.deleted {
			out = append(out, filters.Header{Name: f.name, Value: f.value})
		}
	}
	return out
}

// valuesByName returns each name's values, sorted: which fields a header
// holds, whatever the place an MTA gives an added one.
func valuesByName(hs []filters.Header) map[string][]string {
	out := map[string][]string{}
	for _, h := range hs {
		k := filters.NameKey(h.Name)
		out[k] = append(out[k], h.Value)
	}
	for _, vs := range out {
		slices.Sort(vs)
	}
	return out
}

func sameValues(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, vs := range a {
		if !slices.Equal(vs, b[k]) {
			return false
		}
	}
	return true
}

// The edits sent to the MTA (deliveredEdits' choice between the filters'
// edits and mtaEdits) must leave the header the filters saw
// (filters.ApplyEdits), for random headers and edit lists over a few
// names that differ in case only: in Postfix's count, exactly; in
// Sendmail's, with every field of a name and its value, whatever the
// place Sendmail gives an added field. The table tests in
// edits_mta_test.go hold the cases seen with the real MTAs; this looks
// for the ones nobody thought of. The filters' edits sent as they are
// must fail Sendmail's count now and then, or the check could not tell.
func TestSentEditsLeaveTheModelInBothCounts(t *testing.T) {
	names := []string{"X-T", "x-t", "X-T", "X-U", "Subject"}
	r := rand.New(rand.NewSource(1))
	rawWrong := 0
	for range 100000 {
		var shown []filters.Header
		for range r.Intn(6) {
			shown = append(shown, filters.Header{Name: names[r.Intn(len(names))], Value: string(rune('a' + r.Intn(26)))})
		}
		var edits []filters.HeaderEdit
		inserts := false
		for range 1 + r.Intn(5) {
			e := filters.HeaderEdit{Kind: filters.EditKind(r.Intn(4)), Name: names[r.Intn(len(names))], Index: r.Intn(5), Value: string(rune('A' + r.Intn(26)))}
			switch {
			case e.Kind == filters.DeleteHeader:
				e.Value = ""
			case r.Intn(6) == 0:
				e.Value = "" // a change with an empty value deletes
			}
			if e.Kind == filters.ChangeHeader || e.Kind == filters.DeleteHeader {
				e.Index = max(e.Index, 1)
			}
			inserts = inserts || e.Kind == filters.InsertHeader
			edits = append(edits, e)
		}
		model := filters.ApplyEdits(slices.Clone(shown), slices.Clone(edits))
		sent := edits
		if countsDiffer(shown, edits) {
			sent = mtaEdits(shown, edits)
		}
		if got := filters.ApplyEdits(slices.Clone(shown), slices.Clone(sent)); !slices.Equal(got, model) {
			t.Fatalf("Postfix's count: shown %v, filters' edits %v, sent %v: header %v, the filters saw %v", shown, edits, sent, got, model)
		}
		if inserts {
			continue
		}
		want := valuesByName(model)
		if got := sendmailEdits(shown, sent); !sameValues(valuesByName(got), want) {
			t.Fatalf("Sendmail's count: shown %v, filters' edits %v, sent %v: header %v, the filters saw %v", shown, edits, sent, got, model)
		}
		if !sameValues(valuesByName(sendmailEdits(shown, edits)), want) {
			rawWrong++
		}
	}
	if rawWrong == 0 {
		t.Error("the filters' edits sent as they are never went wrong in Sendmail's count: the check tells nothing apart")
	}
}

// A field the MTA showed without a space after its colon, which a filter
// changes to the value it has, on the reordered path (mtaEdits): the
// model writes it with the space the edit's value goes out with, so the
// change must go to the MTA too, or the delivered field and the model
// (the archive's copy) differ by that space.
func TestSameValueChangeOfUnspacedField(t *testing.T) {
	shown := []filters.Header{{Name: "X-T", Value: "a", NoSpace: true}, {Name: "X-T", Value: "b"}}
	edits := []filters.HeaderEdit{
		{Kind: filters.AddHeader, Name: "X-T", Value: "c"},
		{Kind: filters.ChangeHeader, Name: "X-T", Index: 1, Value: "a"},
	}
	if !countsDiffer(shown, edits) {
		t.Fatal("not the reordered path")
	}
	render := func(hs []filters.Header) string {
		var b []byte
		for _, h := range hs {
			b = filters.AppendField(b, h)
		}
		return string(b)
	}
	want := render(filters.ApplyEdits(shown, edits))
	if got := render(filters.ApplyEdits(shown, mtaEdits(shown, edits))); got != want {
		t.Errorf("the MTA's edits give\n%q\nthe model\n%q", got, want)
	}
}
