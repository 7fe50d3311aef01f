package main

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/milter/mtatest"
)

// End to end, through Postfix and through Sendmail told to accept bare CR
// and LF: hostile line ends the other tests do not send. want gives, for
// each field name as spelt, the values the mailbox must have (nil: no such
// field), and the filter after headerfix must have seen the same (but for
// the From: Sendmail hides); body, when set, is the delivered body.
func TestHeaderfixEndToEndHostile(t *testing.T) {
	mtatest.Require(t)
	// Eight lines of 300 bytes ended by bare CRs: one Subject of 2,407
	// bytes once the CRs are gone.
	var pieces []string
	for c := byte('a'); c < 'a'+8; c++ {
		pieces = append(pieces, strings.Repeat(string(c), 300))
	}
	longSubject := strings.Join(pieces, " ")
	// Many fields, each with a bare CR before another field.
	const manyLines = 2000
	many := strings.Repeat("X-M: v\rX-N: w\r\n", manyLines) + "From: " + headerfixFrom + "\r\n\r\nBody.\r\n"
	type hostileCase struct {
		raw  string
		want map[string]map[string][]string // MTA kind, spelling, values
		body map[string]string              // MTA kind, body
		line map[string]string              // MTA kind, a field exactly as delivered
	}
	cases := map[string]hostileCase{
		// CR CR LF: both MTAs drop the CR before CRLF and the one
		// before it; nothing for the filter to do.
		"crcrlf": {
			raw: "Subject: a\r\r\nFrom: " + headerfixFrom + "\r\n\r\nBody.\r\n",
			want: map[string]map[string][]string{
				"postfix":          {"Subject": {"a"}, "From": {headerfixFrom}, "X-Sluice-Repaired": nil},
				"sendmail-relaxed": {"Subject": {"a"}, "From": {headerfixFrom}, "X-Sluice-Repaired": nil},
			},
		},
		// A bare CR at the start of the line that should end the
		// header. Postfix turns it into a space, which makes the first
		// body line a continuation of the last field: the body is lost
		// into the header before a milter sees it. Sendmail takes the
		// CRLF before it as the end of the header and keeps the CR in
		// the body.
		"crbody": {
			raw: "Subject: a\r\nX-B: b\r\n\rBody.\r\n",
			want: map[string]map[string][]string{
				"postfix":          {"X-B": {"b\n Body."}, "X-Sluice-Repaired": nil},
				"sendmail-relaxed": {"X-B": {"b"}, "X-Sluice-Repaired": nil},
			},
			body: map[string]string{"postfix": "", "sendmail-relaxed": "\rBody.\n"},
		},
		// Two bare CRs and a field in place of the blank line: Postfix
		// makes the line a continuation of the field above, the real
		// blank line after it ends the header.
		"crfield": {
			raw: "Subject: a\r\n\r\rX-C: c\r\n\r\nBody.\r\n",
			want: map[string]map[string][]string{
				"postfix":          {"Subject": {"a\n  X-C: c"}, "X-C": nil, "X-Sluice-Repaired": nil},
				"sendmail-relaxed": {"Subject": {"a"}, "X-C": nil, "X-Sluice-Repaired": nil},
			},
			body: map[string]string{"postfix": "Body.\n", "sendmail-relaxed": "\r\rX-C: c\n\nBody.\n"},
		},
		// A bare CR, or LF, at the end of a folded continuation line,
		// before a From:. Postfix leaves a Subject of free text whole,
		// and adds its own From:; with Sendmail the From: is split off.
		"foldcr": {
			raw: "Subject: a\r\n b\rFrom: " + headerfixFrom + "\r\n\r\nBody.\r\n",
			want: map[string]map[string][]string{
				"postfix":          {"Subject": {"a\n b From: " + headerfixFrom}, "From": {headerfixSender}, "X-Sluice-Repaired": nil},
				"sendmail-relaxed": {"Subject": {"a\n b"}, "From": {headerfixFrom}, "X-Sluice-Repaired": {"split Subject/From"}},
			},
		},
		"foldlf": {
			raw: "Subject: a\r\n b\nFrom: " + headerfixFrom + "\r\n\r\nBody.\r\n",
			want: map[string]map[string][]string{
				"postfix":          {"Subject": {"a\n b"}, "From": {headerfixFrom}, "X-Sluice-Repaired": nil},
				"sendmail-relaxed": {"Subject": {"a\n b"}, "From": {headerfixFrom}, "X-Sluice-Repaired": {"split Subject/From"}},
			},
		},
		// A field with nothing but a blank before the bare CR: with
		// Sendmail it is left with only that blank ("X-A:  "; the
		// maildir reader drops the blanks after the colon).
		"blank": {
			raw: "X-A: \rFrom: " + headerfixFrom + "\r\n\r\nBody.\r\n",
			want: map[string]map[string][]string{
				"postfix":          {"X-A": {"From: " + headerfixFrom}, "From": {headerfixSender}, "X-Sluice-Repaired": nil},
				"sendmail-relaxed": {"X-A": {""}, "From": {headerfixFrom}, "X-Sluice-Repaired": {"split X-A/From"}},
			},
			line: map[string]string{"postfix": "X-A:  From: " + headerfixFrom, "sendmail-relaxed": "X-A:  "},
		},
		// Text without a colon after the bare CR is no field.
		"nocolon": {
			raw: "Subject: a\rnot a field\r\nFrom: " + headerfixFrom + "\r\n\r\nBody.\r\n",
			want: map[string]map[string][]string{
				"postfix":          {"Subject": {"a not a field"}, "From": {headerfixFrom}, "X-Sluice-Repaired": nil},
				"sendmail-relaxed": {"Subject": {"a not a field"}, "From": {headerfixFrom}, "X-Sluice-Repaired": {"CR to space in Subject"}},
			},
		},
		// 8-bit bytes, UTF-8 and not, on both sides of the bare CR stay
		// as they are.
		"eightbit": {
			raw: "Subject: caf\xc3\xa9\rX-B: \xff\xfe\r\nFrom: " + headerfixFrom + "\r\n\r\nBody.\r\n",
			want: map[string]map[string][]string{
				"postfix":          {"Subject": {"caf\xc3\xa9 X-B: \xff\xfe"}, "X-B": nil, "X-Sluice-Repaired": nil},
				"sendmail-relaxed": {"Subject": {"caf\xc3\xa9"}, "X-B": {"\xff\xfe"}, "X-Sluice-Repaired": {"split Subject/X-B"}},
			},
		},
		// A long Subject in lines ended by bare CRs. Sendmail writes a
		// header line of at most 2,303 bytes and drops the rest, so the
		// repair folds where joining the lines would pass RFC 5322's
		// 998 bytes; the folded value unfolds to longSubject. Postfix
		// has made the CRs spaces and writes the long line whole.
		"long": {
			raw: "Subject: " + strings.Join(pieces, "\r") + "\r\nFrom: " + headerfixFrom + "\r\n\r\nBody.\r\n",
			want: map[string]map[string][]string{
				"postfix": {"Subject": {longSubject}, "X-Sluice-Repaired": nil},
				"sendmail-relaxed": {
					"Subject":           {strings.Join(pieces[:3], " ") + "\n " + strings.Join(pieces[3:6], " ") + "\n " + strings.Join(pieces[6:], " ")},
					"X-Sluice-Repaired": {"CR to space in Subject (x7)"},
				},
			},
		},
	}
	for _, kind := range []string{"postfix", "sendmail-relaxed"} {
		t.Run(kind, func(t *testing.T) {
			rec, mta := headerfixRecorded(t, kind)
			names := slices.Sorted(maps.Keys(cases))
			for _, k := range names {
				if r := headerfixSend(t, mta, k+"@lab.example", cases[k].raw); r.Code != 250 {
					t.Fatalf("%s: reply %v", k, r)
				}
			}
			if r := headerfixSend(t, mta, "many@lab.example", many); r.Code != 250 {
				t.Fatalf("many: reply %v", r)
			}
			mta.WaitDelivered(t, len(cases)+1, 60*time.Second)
			mta.WaitIdle(t, 30*time.Second)
			ds := mta.Delivered(t)
			for _, k := range names {
				full := headerfixDelivered(t, ds, k+"@lab.example")
				d := headerfixOwnFields(full)
				seen, _ := rec.headers(k + "@lab.example")
				var seenFields []mtatest.Field
				for _, h := range seen {
					// The maildir reader drops the blanks after the colon.
					seenFields = append(seenFields, mtatest.Field{Name: h.Name, Value: strings.TrimLeft(h.Value, " \t")})
				}
				for _, name := range slices.Sorted(maps.Keys(cases[k].want[kind])) {
					want := cases[k].want[kind][name]
					if got := headerfixSpelt(d, name); !slices.Equal(got, want) {
						t.Errorf("%s: mailbox has %s fields %q, want %q\n%s", k, name, got, want, strings.Join(headerfixFields(d), "\n"))
					}
					hidden := kind != "postfix" && name == "From"
					if got := headerfixSpelt(seenFields, name); !hidden && !slices.Equal(got, want) {
						t.Errorf("%s: later filter saw %s fields %q, want %q", k, name, got, want)
					}
				}
				if want, ok := cases[k].line[kind]; ok && !slices.ContainsFunc(d, func(f mtatest.Field) bool { return f.Raw == want }) {
					t.Errorf("%s: no field delivered as %q\n%s", k, want, strings.Join(headerfixFields(d), "\n"))
				}
				if want, ok := cases[k].body[kind]; ok && string(full.Body) != want {
					t.Errorf("%s: body %q, want %q", k, full.Body, want)
				}
				if kind != "postfix" {
					for _, line := range strings.Split(string(full.Raw), "\n") {
						if len(line) > 998 {
							t.Errorf("%s: a line of %d bytes: %.40q...", k, len(line), line)
						}
					}
				}
			}

			// Thousands of broken lines: delivered, every field once, in
			// a bounded time (WaitDelivered). With Postfix the CRs are
			// spaces already and the fields free text, so nothing is
			// split. With Sendmail splitting them would take more than
			// 256 header edits: the message is marked, not repaired.
			d := headerfixDelivered(t, ds, "many@lab.example")
			wantM, wantRepaired := "v X-N: w", []string(nil)
			if kind != "postfix" {
				wantM, wantRepaired = "v\rX-N: w", []string{"not repaired: 2001 header edits, more than 256"}
			}
			if got := d.Values("X-M"); len(got) != manyLines || got[0] != wantM || got[manyLines-1] != wantM {
				t.Errorf("many: %d X-M fields, first %q, want %d of %q", len(got), got[:min(1, len(got))], manyLines, wantM)
			}
			if got := d.Values("X-N"); len(got) != 0 {
				t.Errorf("many: %d X-N fields, want none", len(got))
			}
			if got := d.Values("From"); !slices.Equal(got, []string{headerfixFrom}) {
				t.Errorf("many: From fields %q", got)
			}
			if got := d.Values("X-Sluice-Repaired"); !slices.Equal(got, wantRepaired) {
				t.Errorf("many: X-Sluice-Repaired %q, want %q", got, wantRepaired)
			}
		})
	}
}

// End to end through Postfix: a field Postfix removes from a message as it
// comes in (message_drop_headers: Return-Path:, Content-Length:, Bcc:,
// Resent-Bcc:) stays out of the mailbox when a bare CR hid it behind a
// Date:. Cut out of the Date: and added, it would be the only such field
// the client could get past Postfix: a second Return-Path: below the one
// the delivery agent writes, a Content-Length: an mbox reader takes for
// the end of the message.
func TestHeaderfixEndToEndDroppedOnArrival(t *testing.T) {
	mtatest.Require(t)
	rec, mta := headerfixRecorded(t, "postfix")
	fields := map[string]string{
		"rp":   "Return-Path: <evil@example.net>",
		"cl":   "Content-Length: 5",
		"bcc":  "Bcc: secret@example.net",
		"rbcc": "Resent-Bcc: other@example.net",
	}
	names := slices.Sorted(maps.Keys(fields))
	for _, k := range names {
		raw := "Date: " + headerfixDate + "\r" + fields[k] + "\r\nFrom: " + headerfixFrom + "\r\nSubject: s\r\n\r\nBody.\r\n"
		if r := headerfixSend(t, mta, k+"@lab.example", raw); r.Code != 250 {
			t.Fatalf("%s: reply %v", k, r)
		}
	}
	mta.WaitDelivered(t, len(fields), 60*time.Second)
	mta.WaitIdle(t, 30*time.Second)
	ds := mta.Delivered(t)
	for _, k := range names {
		d := headerfixDelivered(t, ds, k+"@lab.example")
		name, _, _ := strings.Cut(fields[k], ":")
		want := []string(nil)
		if name == "Return-Path" {
			want = []string{"<" + headerfixSender + ">"} // the delivery agent's own
		}
		if got := d.Values(name); !slices.Equal(got, want) {
			t.Errorf("%s: mailbox has %s fields %q, want %q\n%s", k, name, got, want, d.Raw)
		}
		if got := d.Values("Date"); !slices.Equal(got, []string{headerfixDate}) {
			t.Errorf("%s: mailbox has Date fields %q", k, got)
		}
		seen, _ := rec.headers(k + "@lab.example")
		for _, h := range seen {
			if strings.EqualFold(h.Name, name) {
				t.Errorf("%s: later filter saw %s: %s", k, h.Name, h.Value)
			}
		}
	}
}
