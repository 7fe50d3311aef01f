package headerfix

import (
	"reflect"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/filters"
)

// The values below are written as the MTAs hand them to a milter (see
// docs/headerfix.md): no leading space, folding as a bare LF before the
// continuation line, a stray CR or LF kept by Sendmail when it is told to
// accept them, and a bare CR turned into a space by Postfix.

const (
	exDate = "Fri, 8 Sep 2017 13:44:33 -0400 (EDT)"
	exFrom = `"Example Name" <example@example.com>`
)

func hs(kv ...string) []filters.Header {
	var out []filters.Header
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, filters.Header{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

func TestRepair(t *testing.T) {
	long := strings.Repeat("abcdefghij ", 120)
	tests := []struct {
		name  string
		in    []filters.Header
		want  []filters.Header
		kinds []Kind
	}{
		{
			name: "CRLF variant: two fields, nothing to do",
			in:   hs("Date", exDate, "From", exFrom, "Subject", "x"),
			want: hs("Date", exDate, "From", exFrom, "Subject", "x"),
		},
		{
			name:  "bare CR variant as Sendmail delivers it",
			in:    hs("Date", exDate+"\rFrom: "+exFrom, "Subject", "x"),
			want:  hs("Date", exDate, "From", exFrom, "Subject", "x"),
			kinds: []Kind{SplitCR},
		},
		{
			name:  "bare LF variant as Sendmail delivers it",
			in:    hs("Date", exDate+"\nFrom: "+exFrom, "Subject", "x"),
			want:  hs("Date", exDate, "From", exFrom, "Subject", "x"),
			kinds: []Kind{SplitLF},
		},
		{
			name:  "bare CR variant as Postfix delivers it: the CR is a space",
			in:    hs("Date", exDate+" From: "+exFrom, "Subject", "x", "Message-Id", "<20261123142326.343D9988691@postfix.test>", "From", "alice@example.org"),
			want:  hs("Date", exDate, "From", exFrom, "Subject", "x", "Message-Id", "<20261123142326.343D9988691@postfix.test>", "From", "alice@example.org"),
			kinds: []Kind{SplitMerged},
		},
		{
			name: "folded fields are valid",
			in:   hs("Subject", "a\n b\n\tc", "X-A", "p\r\n q", "Received", "from a\n\tby b; "+exDate),
			want: hs("Subject", "a\n b\n\tc", "X-A", "p\r\n q", "Received", "from a\n\tby b; "+exDate),
		},
		{
			name: "RFC 2047 words, UTF-8 values and long lines are valid",
			in:   hs("Subject", "=?UTF-8?B?w6TDtsO8?= =?ISO-8859-1?Q?caf=E9?=", "X-U", "äö € 日本", "X-Long", long),
			want: hs("Subject", "=?UTF-8?B?w6TDtsO8?= =?ISO-8859-1?Q?caf=E9?=", "X-U", "äö € 日本", "X-Long", long),
		},
		{
			name: "several broken lines in one header block",
			in: hs("Subject", "a\n b", "X-B", "p\r q", "X-C", "p\rX-D: q\rX-E: r", "Date", exDate+"\nMessage-ID: <1@x>",
				"X-F", "end"),
			want: hs("Subject", "a\n b", "X-B", "p  q", "X-C", "p", "X-D", "q", "X-E", "r", "Date", exDate,
				"Message-ID", "<1@x>", "X-F", "end"),
			kinds: []Kind{SpaceCR, SplitCR, SplitCR, SplitLF},
		},
		{
			name:  "bare CR at the end of the last field",
			in:    hs("Subject", "x", "X-Last", "v\r"),
			want:  hs("Subject", "x", "X-Last", "v "),
			kinds: []Kind{SpaceCR},
		},
		{
			name:  "bare LF at the end of a field (Sendmail, LF before CRLF)",
			in:    hs("Subject", "x\n"),
			want:  hs("Subject", "x "),
			kinds: []Kind{SpaceLF},
		},
		{
			name:  "NUL bytes become spaces",
			in:    hs("Subject", "x\x00y", "X-N", "a\x00"),
			want:  hs("Subject", "x y", "X-N", "a "),
			kinds: []Kind{SpaceNUL, SpaceNUL},
		},
		{
			name:  "CRLF inside a value that is not folding",
			in:    hs("X-A", "a\r\nX-B: b", "X-C", "c\r\nd"),
			want:  hs("X-A", "a", "X-B", "b", "X-C", "c d"),
			kinds: []Kind{SplitLF, SpaceLF},
		},
		{
			name:  "two CRs in a row",
			in:    hs("Subject", "x\r\rX-Y: z"),
			want:  hs("Subject", "x ", "X-Y", "z"),
			kinds: []Kind{SpaceCR, SplitCR},
		},
		{
			name:  "text that is not a field is not split",
			in:    hs("Subject", "see\rhttp://example.com/ at\r10:30", "X-A", "a\r: b", "X-B", "b\rno colon here"),
			want:  hs("Subject", "see http://example.com/ at 10:30", "X-A", "a : b", "X-B", "b no colon here"),
			kinds: []Kind{SpaceCR, SpaceCR, SpaceCR, SpaceCR},
		},
		{
			name:  "CR before folding whitespace",
			in:    hs("Subject", "x\r y"),
			want:  hs("Subject", "x  y"),
			kinds: []Kind{SpaceCR},
		},
		{
			name:  "split-off field with folding and an empty value",
			in:    hs("X-A", "a\rX-B: b\n c\rX-C:"),
			want:  hs("X-A", "a", "X-B", "b\n c", "X-C", ""),
			kinds: []Kind{SplitCR, SplitCR},
		},
		{
			name:  "field that is empty before the split",
			in:    hs("X-A", "\rX-B: b"),
			want:  hs("X-A", "", "X-B", "b"),
			kinds: []Kind{SplitCR},
		},
		{
			name: "Postfix merge in a free-text field cannot be told from text",
			in:   hs("Subject", "x  X-Y: z", "To", "a@example.org Cc: b@example.org"),
			want: hs("Subject", "x  X-Y: z", "To", "a@example.org Cc: b@example.org"),
		},
		{
			name: "strict fields merged with the next field, Postfix style",
			in: hs("Message-ID", "<a@b> Date: "+exDate+" From: x", "Content-Transfer-Encoding", "base64 X-A: 1",
				"MIME-Version", "1.0 (generated) Content-Type: text/plain", "References", "<1@a> <2@a>\n <3@a> X-B: 2"),
			want: hs("Message-ID", "<a@b>", "Date", exDate, "From", "x", "Content-Transfer-Encoding", "base64", "X-A", "1",
				"MIME-Version", "1.0 (generated)", "Content-Type", "text/plain", "References", "<1@a> <2@a>\n <3@a>", "X-B", "2"),
			kinds: []Kind{SplitMerged, SplitMerged, SplitMerged, SplitMerged, SplitMerged},
		},
		{
			name: "Received chain merged by Postfix",
			in: hs("Received", "from b.example (b [192.0.2.1]) by a.example; "+exDate+" Received: from c.example by b.example; "+exDate,
				"Received", `from "x;y" (c; d) by c; `+exDate+" X-A: 1"),
			want: hs("Received", "from b.example (b [192.0.2.1]) by a.example; "+exDate, "Received", "from c.example by b.example; "+exDate,
				"Received", `from "x;y" (c; d) by c; `+exDate, "X-A", "1"),
			kinds: []Kind{SplitMerged, SplitMerged},
		},
		{
			name: "Received fields that are not valid are not guessed at",
			in:   hs("Received", "from a by b X-A: 1", "Received", "from a by b; yesterday X-A: 1", "Received", `from "a; b X-A: 1`),
			want: hs("Received", "from a by b X-A: 1", "Received", "from a by b; yesterday X-A: 1", "Received", `from "a; b X-A: 1`),
		},
		{
			name: "valid strict fields are left alone",
			in: hs("Date", exDate, "Date", "8 Sep 17 13:44 EDT", "Date", "Fri,\n 8 Sep 2017 13:44:33 +0000 (UTC) (x)",
				"Message-ID", "<a@b> (c)", "MIME-Version", "1.0", "Received", "(qmail 1 invoked by uid 0); 8 Sep 2017 13:44:33 -0000"),
			want: hs("Date", exDate, "Date", "8 Sep 17 13:44 EDT", "Date", "Fri,\n 8 Sep 2017 13:44:33 +0000 (UTC) (x)",
				"Message-ID", "<a@b> (c)", "MIME-Version", "1.0", "Received", "(qmail 1 invoked by uid 0); 8 Sep 2017 13:44:33 -0000"),
		},
		{
			name: "a strict field that is invalid anyway is not guessed at",
			in:   hs("Date", "Fri, 8 Sep 2017 13:44:33 From: x", "Date", "yesterday X-A: 1", "Date", exDate+"X-A: 1"),
			want: hs("Date", "Fri, 8 Sep 2017 13:44:33 From: x", "Date", "yesterday X-A: 1", "Date", exDate+"X-A: 1"),
		},
		{
			name:  "a split-off strict field is checked too",
			in:    hs("Subject", "hi\rDate: "+exDate+" From: x"),
			want:  hs("Subject", "hi", "Date", exDate, "From", "x"),
			kinds: []Kind{SplitCR, SplitMerged},
		},
		{
			name: "fields with invalid names are left alone",
			in:   hs("Bad Name", "a\rX: b", "", "c\rY: d"),
			want: hs("Bad Name", "a\rX: b", "", "c\rY: d"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]filters.Header(nil), tc.in...)
			res := Repair(in, AppendsAtEnd)
			if !reflect.DeepEqual(in, tc.in) {
				t.Fatal("Repair modified its input")
			}
			got := res.Headers()
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("headers:\n got %q\nwant %q", got, tc.want)
			}
			var kinds []Kind
			for _, f := range res.Fixes {
				for range f.N() {
					kinds = append(kinds, f.Kind)
				}
			}
			if !reflect.DeepEqual(kinds, tc.kinds) {
				t.Errorf("fixes %v, want kinds %v", res.Fixes, tc.kinds)
			}
			again := Repair(got, AppendsAtEnd)
			if len(again.Fixes) > 0 || !reflect.DeepEqual(again.Headers(), got) {
				t.Errorf("not idempotent: second pass %v -> %q", again.Fixes, again.Headers())
			}
		})
	}
}

// With an MTA that adds a field before the first one of its name
// (Sendmail), a field joins no others of its name and no Received: is
// split off; the line end becomes a space instead.
func TestRepairAddsBeforeSameName(t *testing.T) {
	tests := []struct {
		name  string
		in    []filters.Header
		want  []filters.Header
		kinds []Kind
	}{
		{
			name:  "a new name is split off",
			in:    hs("Date", exDate+"\rFrom: "+exFrom, "Subject", "x"),
			want:  hs("Date", exDate, "From", exFrom, "Subject", "x"),
			kinds: []Kind{SplitCR},
		},
		{
			name:  "a name the header has is not",
			in:    hs("Date", exDate+"\rFrom: "+exFrom, "From", "a@example.org", "X-A", "1\rX-B: 2\rX-b: 3"),
			want:  hs("Date", exDate+" From: "+exFrom, "From", "a@example.org", "X-A", "1", "X-B", "2 X-b: 3"),
			kinds: []Kind{SpaceCR, SplitCR, SpaceCR},
		},
		{
			name:  "Received is not",
			in:    hs("Received", "from b by a; "+exDate+"\rReceived: from c by b; "+exDate, "Subject", "x\nReceived: y"),
			want:  hs("Received", "from b by a; "+exDate+" Received: from c by b; "+exDate, "Subject", "x Received: y"),
			kinds: []Kind{SpaceCR, SpaceLF},
		},
		{
			name:  "a merged strict field stays merged when its neighbour's name is taken",
			in:    hs("Date", exDate+" From: "+exFrom, "From", "a@example.org", "Message-ID", "<a@b> X-C: 1"),
			want:  hs("Date", exDate+" From: "+exFrom, "From", "a@example.org", "Message-ID", "<a@b>", "X-C", "1"),
			kinds: []Kind{SplitMerged},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := Repair(tc.in, AddsBeforeSameName)
			got := res.Headers()
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("headers:\n got %q\nwant %q", got, tc.want)
			}
			var kinds []Kind
			for _, f := range res.Fixes {
				kinds = append(kinds, f.Kind)
			}
			if !reflect.DeepEqual(kinds, tc.kinds) {
				t.Errorf("fixes %v, want kinds %v", res.Fixes, tc.kinds)
			}
			if again := Repair(got, AddsBeforeSameName); len(again.Fixes) > 0 {
				t.Errorf("not idempotent: %v", again.Fixes)
			}
		})
	}
}

func TestRepairReportsSources(t *testing.T) {
	res := Repair(hs("Subject", "s", "Date", exDate+"\rFrom: "+exFrom+"\rX-A: 1"), AppendsAtEnd)
	want := []Field{
		{Header: filters.Header{Name: "Subject", Value: "s"}, Source: 0},
		{Header: filters.Header{Name: "Date", Value: exDate}, Source: 1},
		{Header: filters.Header{Name: "From", Value: exFrom}, Source: 1, SplitOff: true},
		{Header: filters.Header{Name: "X-A", Value: "1"}, Source: 1, SplitOff: true},
	}
	if !reflect.DeepEqual(res.Fields, want) {
		t.Errorf("fields:\n got %+v\nwant %+v", res.Fields, want)
	}
	wantFixes := []Fix{
		{Kind: SplitCR, Field: "Date", Index: 1, NewField: "From"},
		{Kind: SplitCR, Field: "From", Index: 1, NewField: "X-A"},
	}
	if !reflect.DeepEqual(res.Fixes, wantFixes) {
		t.Errorf("fixes:\n got %+v\nwant %+v", res.Fixes, wantFixes)
	}
}

func TestKindNames(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range Kinds() {
		s := k.String()
		if s == "" || s == "unknown" || seen[s] {
			t.Errorf("kind %d has name %q", k, s)
		}
		seen[s] = true
	}
	if got := Kind(200).String(); got != "unknown" {
		t.Errorf("Kind(200) = %q", got)
	}
}

func TestDateTimePrefix(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{exDate, len(exDate)},
		{exDate + " From: x", len(exDate) + 1},
		{"Fri, 08 Sep 2017 13:44:33 GMT", 29},
		{"8 Sep 2017 13:44 -0400", 22},
		{"Fri, 8 Sep 2017 13:44:33 -0400 (EDT (nested) \\) x)  ", 52},
		{"8 Sep 2017 13:44:33 Z", 21},
		{"8 Sep 2017 13:44:33 J", -1},
		{"Fri 8 Sep 2017 13:44:33 -0400", -1},
		{"8 Sept 2017 13:44:33 -0400", -1},
		{"8 Sep 2017 13:44:33 -04000", -1},
		{"8 Sep 2017 13:44:33", -1},
		{"8 Sep 2017 13 -0400", -1},
		{"", -1},
		{"(unclosed", -1},
	}
	for _, tc := range tests {
		if got := dateTimePrefix(tc.in); got != tc.want {
			t.Errorf("dateTimePrefix(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestSummaryFolded(t *testing.T) {
	var fixes []Fix
	for i := 0; i < 12; i++ {
		fixes = append(fixes, Fix{Kind: SplitCR, Field: "X-Field-" + strings.Repeat("n", i*2), NewField: "Y"})
	}
	fixes = append(fixes, Fix{Kind: SpaceCR, Field: "Subject"}, Fix{Kind: SpaceCR, Field: "Subject"})
	sum := summarize(fixes, nil, nil)
	if !strings.HasSuffix(sum, ", and 5 more") || !strings.Contains(sum, "split X-Field-") {
		t.Errorf("summary %q", sum)
	}
	if got := summarize(fixes[12:], nil, nil); got != "CR to space in Subject (x2)" {
		t.Errorf("summary %q", got)
	}
	name := "X-Sluice-Repaired"
	folded := fold(len(name)+2, sum)
	for i, line := range strings.Split(folded, "\n") {
		n := len(line)
		if i == 0 {
			n += len(name) + 2
		} else if !strings.HasPrefix(line, "\t") {
			t.Errorf("continuation line %q does not start with a tab", line)
		}
		if n > 78 {
			t.Errorf("line %d is %d characters long: %q", i, n, line)
		}
	}
	if back := strings.ReplaceAll(folded, ",\n\t", ", "); back != sum {
		t.Errorf("unfolded %q, want %q", back, sum)
	}
	if err := (filters.HeaderEdit{Kind: filters.AddHeader, Name: name, Value: folded}).Validate(); err != nil {
		t.Error(err)
	}
}

// longestLine is the longest line of the field as written: "Name: " and
// its value's lines.
func longestLine(name, v string) int {
	m := 0
	for i, l := range strings.Split(v, "\n") {
		n := len(strings.TrimSuffix(l, "\r"))
		if i == 0 {
			n += len(name) + 2
		}
		m = max(m, n)
	}
	return m
}

// A stray LF between two lines of 900 bytes (each within RFC 5322's 998,
// as the MTA writes them) is not joined into one line of 1,800: it is
// kept as folding. Short lines are still joined with a space, up to the
// limit. A stray bare CR folds the same way: Sendmail writes it inside
// one line and cuts a header line off after 2,303 bytes, so the text
// after a long run of such lines would be lost.
func TestStrayLFKeepsLinesShort(t *testing.T) {
	a, b, c, d := strings.Repeat("a", 300), strings.Repeat("b", 300), strings.Repeat("c", 300), strings.Repeat("d", 300)
	for _, tc := range []struct{ value, want string }{
		{strings.Repeat("a", 900) + "\n" + strings.Repeat("b", 900), strings.Repeat("a", 900) + "\n " + strings.Repeat("b", 900)},
		{strings.Repeat("a", 900) + "\r\n" + strings.Repeat("b", 900), strings.Repeat("a", 900) + "\n " + strings.Repeat("b", 900)},
		{"c\nd", "c d"},
		// Each stray character folds only where the line would pass
		// the limit, the LF and the CR alike.
		{strings.Repeat("a", 900) + "\n" + strings.Repeat("b", 50) + "\r" + strings.Repeat("c", 900),
			strings.Repeat("a", 900) + " " + strings.Repeat("b", 50) + "\n " + strings.Repeat("c", 900)},
		{strings.Repeat("a", 900) + "\r" + strings.Repeat("b", 900), strings.Repeat("a", 900) + "\n " + strings.Repeat("b", 900)},
		{"c\rd", "c d"},
		// Lines of 300 bytes ended by bare CRs are joined up to the
		// limit, and folded beyond it.
		{a + "\r" + b + "\r" + c, a + " " + b + " " + c},
		{a + "\r" + b + "\r" + c + "\r" + d, a + " " + b + " " + c + "\n " + d},
	} {
		for _, p := range []Placement{AppendsAtEnd, AddsBeforeSameName} {
			res := Repair(hs("Subject", tc.value), p)
			if len(res.Fields) != 1 || res.Fields[0].Value != tc.want {
				t.Errorf("placement %d, %.20q...: %d fields, value %.40q..., longest line %d bytes", p, tc.value, len(res.Fields), res.Fields[0].Value, longestLine("Subject", res.Fields[0].Value))
				continue
			}
			if n := longestLine("Subject", res.Fields[0].Value); n > 998 {
				t.Errorf("placement %d: a line of %d bytes", p, n)
			}
			// The repair is idempotent.
			if again := Repair(hs("Subject", res.Fields[0].Value), p); len(again.Fixes) != 0 {
				t.Errorf("placement %d: repairing again fixes %v", p, again.Fixes)
			}
		}
	}
}

// A continuation line is valid folding, whatever it holds: every reader
// takes it as part of the field above. Postfix's merge leaves a space
// where the bare CR was, never a line break, so a strict field whose
// continuation line reads like a header field is not split there: that
// would make a new field (a second From:) out of text that every program
// before sluice read as part of the Date.
func TestRepairKeepsFoldedContinuation(t *testing.T) {
	in := hs("Date", exDate+"\n From: mallory@example.net", "Message-ID", "<a@b>\r\n\tBcc: x@example.net",
		"Received", "from a by b; "+exDate+"\n\tReceived: from c by d; "+exDate, "From", exFrom)
	for _, p := range []Placement{AppendsAtEnd, AddsBeforeSameName} {
		res := Repair(in, p)
		if got := res.Headers(); !reflect.DeepEqual(got, in) || len(res.Fixes) != 0 {
			t.Errorf("placement %d: folded fields changed:\n got %q\nwant %q\nfixes %v", p, got, in, res.Fixes)
		}
	}
	// A space on the line, as Postfix leaves it, is still split.
	res := Repair(hs("Date", exDate+"\n (EDT) From: "+exFrom), AppendsAtEnd)
	want := hs("Date", exDate+"\n (EDT)", "From", exFrom)
	if got := res.Headers(); !reflect.DeepEqual(got, want) {
		t.Errorf("merge after a fold:\n got %q\nwant %q", got, want)
	}
}

// A value of 100 KB (Postfix's header_size_limit) in short lines ended
// by bare CRs: the lines are joined up to the limit and folded there,
// and the folded value unfolds to the lines joined with spaces.
func TestStrayCRLongValue(t *testing.T) {
	const n = 100 << 10 / 3
	in := strings.Repeat("ab\r", n) + "ab"
	want := strings.Repeat("ab ", n) + "ab"
	for _, p := range []Placement{AppendsAtEnd, AddsBeforeSameName} {
		res := Repair(hs("Subject", in), p)
		fixes := 0
		for _, fx := range res.Fixes {
			fixes += fx.N()
		}
		if len(res.Fields) != 1 || fixes != n || len(res.Fixes) != 1 {
			t.Fatalf("placement %d: %d fields, %d fixes in %d records, want 1 and %d in one", p, len(res.Fields), fixes, len(res.Fixes), n)
		}
		got := res.Fields[0].Value
		if strings.ReplaceAll(got, "\n ", " ") != want {
			t.Errorf("placement %d: the value does not unfold to the lines joined with spaces", p)
		}
		if m := longestLine("Subject", got); m > 998 {
			t.Errorf("placement %d: a line of %d bytes", p, m)
		}
		if folds := strings.Count(got, "\n"); folds > len(want)/990 {
			t.Errorf("placement %d: %d lines, want them filled up to 998 bytes", p, folds+1)
		}
		if again := Repair(hs("Subject", got), p); len(again.Fixes) != 0 {
			t.Errorf("placement %d: repairing again fixes %d things", p, len(again.Fixes))
		}
	}
}
