package headerfix

import (
	"reflect"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/filters"
)

// fuzzHeaders decodes a fuzz input into header fields: fields are
// separated by 0x1e, and a field's name from its value by the first 0x1f.
// The seed corpus in testdata/fuzz/FuzzRepair uses the same encoding.
func fuzzHeaders(block string) []filters.Header {
	if block == "" {
		return nil
	}
	var out []filters.Header
	for _, f := range strings.Split(block, "\x1e") {
		name, value, _ := strings.Cut(f, "\x1f")
		out = append(out, filters.Header{Name: name, Value: value})
	}
	return out
}

// content is what a repair must keep: every field's name, a colon and its
// value, in order, without whitespace and line-end characters (splitting
// moves a name from inside a value to a field of its own, and removes the
// whitespace around the cut).
func content(hs []filters.Header) string {
	var b strings.Builder
	for _, h := range hs {
		for _, s := range []string{h.Name, ":", h.Value} {
			for i := 0; i < len(s); i++ {
				switch s[i] {
				case ' ', '\t', '\r', '\n', 0:
				default:
					b.WriteByte(s[i])
				}
			}
		}
	}
	return b.String()
}

// strays counts the stray line ends and NULs in fields that Repair works
// on: a CRLF pair counts once, folding does not count.
func strays(hs []filters.Header) int {
	n := 0
	for _, h := range hs {
		if !validName(h.Name) {
			continue
		}
		v := h.Value
		for i := 0; i < len(v); i++ {
			switch v[i] {
			case 0:
				n++
			case '\r':
				if i+1 < len(v) && v[i+1] == '\n' {
					if i+2 < len(v) && (v[i+2] == ' ' || v[i+2] == '\t') {
						i++
						continue
					}
					i++
				}
				n++
			case '\n':
				if i+1 < len(v) && (v[i+1] == ' ' || v[i+1] == '\t') {
					continue
				}
				n++
			}
		}
	}
	return n
}

func FuzzRepair(f *testing.F) {
	for _, s := range []string{
		"Date\x1f" + "Fri, 8 Sep 2017 13:44:33 -0400 (EDT)\rFrom: \"Example Name\" <example@example.com>\x1eSubject\x1fx",
		"Date\x1fFri, 8 Sep 2017 13:44:33 -0400 (EDT) From: a@b\x1eFrom\x1falice@example.org",
		"Subject\x1fa\n b\r\n\tc\x1eX\x1fp\rY: q\nZ: r\r\n\x00",
		"Message-ID\x1f<a@b> Date: 8 Sep 2017 13:44 EDT Content-Transfer-Encoding: base64 X: 1",
		"Date\x1f8 Sep 2017 13:44 EDT DATE: 9 Sep 2017 13:44 EDT\x1edate\x1f10 Sep 2017 13:44 EDT",
		"Subject\x1fx\rFrom:  \x1eDate\x1f8 Sep 2017 13:44 EDT From:\x1eFrom\x1falice@example.org",
		"Subject\x1fx\rFrom:\rbob@example.net\x1eX-A\x1fy\rFrom: a@b",
		"Subject\x1fhi\rthere\x1eX-Folded\x1ffirst\n \n second",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, block string) {
		for _, p := range []Placement{AppendsAtEnd, AddsBeforeSameName} {
			checkRepair(t, fuzzHeaders(block), p)
		}
	})
}

func checkRepair(t *testing.T, in []filters.Header, p Placement) {
	m := &filters.Message{QueueID: "Q1", From: filters.Address{Addr: "alice@example.org"}}
	orig := append([]filters.Header(nil), in...)
	res := Repair(in, p)
	if !reflect.DeepEqual(in, orig) {
		t.Fatal("Repair modified its input")
	}
	out := res.Headers()

	// Idempotent.
	again := Repair(out, p)
	if len(again.Fixes) != 0 || !reflect.DeepEqual(again.Headers(), out) {
		t.Fatalf("placement %d: second pass changed %q: %v", p, out, again.Fixes)
	}
	// A field with no fix reported stays byte for byte as it was (the
	// docs promise it), whatever was repaired in other fields.
	fixed := map[int]bool{}
	for _, fx := range res.Fixes {
		fixed[fx.Index] = true
	}
	for _, fd := range res.Fields {
		if !fixed[fd.Source] && fd.Header != in[fd.Source] {
			t.Fatalf("placement %d: field %d %q, with no fix reported, became %q", p, fd.Source, in[fd.Source], fd.Header)
		}
	}
	// Nothing but stray line ends, NULs and whitespace removed or added,
	// and every stray one reported.
	if content(in) != content(out) {
		t.Fatalf("placement %d: content changed:\n in %q\nout %q", p, in, out)
	}
	if strays(out) != 0 {
		t.Fatalf("placement %d: stray line ends left in %q", p, out)
	}
	// With a trace field, whose split-off copies the filter drops and
	// whose copies in the input it deletes first, the header the MTA
	// delivers needs no further repair either.
	const trace = "X-Sluice-Repaired"
	var untraced []filters.Header
	for _, h := range in {
		if !strings.EqualFold(h.Name, trace) {
			untraced = append(untraced, h)
		}
	}
	var kept []filters.Header
	for _, fd := range repair(untraced, p, trace, nil).Fields {
		if !fd.SplitOff || !strings.EqualFold(fd.Name, trace) {
			kept = append(kept, fd.Header)
		}
	}
	if again := repair(kept, p, trace, nil); len(again.Fixes) != 0 {
		t.Fatalf("placement %d: with trace field %s, second pass over %q: %v", p, trace, kept, again.Fixes)
	}

	reported := 0
	for _, fx := range res.Fixes {
		if fx.Kind != SplitMerged {
			reported += fx.N()
		}
		if fx.Kind.IsSplit() && !validName(fx.NewField) {
			t.Fatalf("split off an invalid name: %+v", fx)
		}
	}
	if strays(in) != reported {
		t.Fatalf("placement %d: %d stray characters in %q, %d reported: %v", p, strays(in), in, reported, res.Fixes)
	}

	// The edits are valid, make every name's values the repaired ones,
	// and leave nothing to repair. Both MTAs match names in ASCII only
	// and pass no others to a milter, while ApplyEdits folds Unicode case
	// (the Kelvin sign matches "k"), so inputs with non-ASCII names stop
	// here.
	for _, h := range in {
		for i := 0; i < len(h.Name); i++ {
			if h.Name[i] >= 0x80 {
				return
			}
		}
	}
	drop := invented(in, res, m)
	es := edits(in, res, drop, "", p)
	added := map[string]bool{}
	for _, e := range es {
		if p == AddsBeforeSameName && e.Kind == filters.AddHeader {
			// The second would go before the first.
			if k := strings.ToLower(e.Name); added[k] {
				t.Fatalf("two adds of %s with placement AddsBeforeSameName", e.Name)
			} else {
				added[k] = true
			}
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("invalid edit %+v: %v", e, err)
		}
		if p == AddsBeforeSameName && e.Kind == filters.AddHeader {
			for _, h := range in {
				if strings.EqualFold(h.Name, e.Name) {
					t.Fatalf("add of %s, a name the header has, with placement AddsBeforeSameName", e.Name)
				}
			}
		}
	}
	after := filters.ApplyEdits(append([]filters.Header(nil), in...), es)
	var want []filters.Header
	for _, fd := range res.Fields {
		if fd.SplitOff && !emptyMadeUp(fd) && !dropsOnArrival(fd, p) || !fd.SplitOff && !drop[fd.Source] {
			want = append(want, fd.Header)
		}
	}
	if got, w := byName(after), byName(want); !reflect.DeepEqual(got, w) {
		t.Fatalf("values by name after the edits:\n got %q\nwant %q", got, w)
	}
	if r := Repair(after, p); len(r.Fixes) != 0 {
		t.Fatalf("edited header still needs %v", r.Fixes)
	}
}

// byName groups values by field name as spelt, in order, for the fields
// a header edit can address: each value must keep the spelling of its
// name, though the MTAs count Subject and SUBJECT as one name. An empty
// value stands for the single space that edits write instead (see
// changeValue).
func byName(hs []filters.Header) map[string][]string {
	out := map[string][]string{}
	for _, h := range hs {
		if !validName(h.Name) {
			continue
		}
		v := h.Value
		if v == " " {
			v = ""
		}
		out[h.Name] = append(out[h.Name], v)
	}
	return out
}
