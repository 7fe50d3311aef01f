package headerfix

import (
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/filters"
)

// A typical header without stray line ends: the cost every message pays.
func BenchmarkRepairClean(b *testing.B) {
	in := hs(
		"Received", "from mail.example.org (mail.example.org [192.0.2.1])\n\tby mx.lab.example (Postfix) with ESMTPS id 4XyZ12\n\tfor <bob@lab.example>; "+exDate,
		"Received", "from [10.0.0.2] by mail.example.org with ESMTPSA id abc; "+exDate,
		"Date", exDate,
		"From", exFrom,
		"To", "Bob <bob@lab.example>",
		"Subject", "=?UTF-8?Q?Caf=C3=A9_tomorrow?=",
		"Message-ID", "<20170908134433.12345@mail.example.org>",
		"MIME-Version", "1.0",
		"Content-Type", "text/plain; charset=utf-8",
		"Content-Transfer-Encoding", "quoted-printable",
	)
	b.ReportAllocs()
	for b.Loop() {
		if r := Repair(in, AppendsAtEnd); len(r.Fixes) != 0 {
			b.Fatal(r.Fixes)
		}
	}
}

// The example of docs/headerfix.md as Postfix hands it over.
func BenchmarkRepairPostfixMerged(b *testing.B) {
	in := hs("Date", exDate+" From: "+exFrom, "Subject", "x", "Message-Id", "<20261123142326.Q1@postfix.test>", "From", "alice@example.org")
	m := &filters.Message{QueueID: "Q1", From: filters.Address{Addr: "alice@example.org"}, Headers: in}
	b.ReportAllocs()
	for b.Loop() {
		r := Repair(in, AppendsAtEnd)
		if len(edits(in, r, invented(in, r, m), "", AppendsAtEnd)) != 2 {
			b.Fatal("want two edits")
		}
	}
}

// A 100 KB value in lines of two bytes ended by bare CRs: each CR looks
// only at the text up to the next line end, so the cost stays linear.
func BenchmarkRepairManyCR(b *testing.B) {
	in := hs("Subject", strings.Repeat("ab\r", 100<<10/3))
	b.ReportAllocs()
	for b.Loop() {
		Repair(in, AddsBeforeSameName)
	}
}

// BenchmarkRepairStrayBytes repairs a header value of 1 MiB (the most a
// header block may hold) of NUL bytes, and one of short lines ended by
// bare CRs, and summarises the fixes for the trace field. A record per
// byte took about half a second and 300 MB for the NULs.
func BenchmarkRepairStrayBytes(b *testing.B) {
	for name, v := range map[string]string{
		"nul": strings.Repeat("\x00", 1<<20),
		"cr":  strings.Repeat("a\r", 1<<19),
	} {
		in := []filters.Header{{Name: "Subject", Value: v}, {Name: "From", Value: "a@example.com"}}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := Repair(in, AddsBeforeSameName)
				summarize(r.Fixes, in, nil)
			}
		})
	}
}
