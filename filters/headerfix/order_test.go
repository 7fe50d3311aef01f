package headerfix_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/bayes"
	"github.com/sluice-mail/sluice/filters/dnsbl"
	"github.com/sluice-mail/sluice/filters/headerfix"
)

// The dnsbl and bayes filters delete the fields of their names a message
// came with (docs/dnsbl.md: "so a sender cannot pass off its own
// verdict"; bayes does it there so that a failed classification, which
// on_failure: accept delivers untagged, leaves none) at the end of the
// header block, where headerfix runs too. A field of those names hidden
// behind a bare CR, which headerfix brings to light, was delivered as a
// field of its own when the filter was listed before headerfix (as the
// DNSBL often is, first in the list): it had looked at the header before
// the repair. Through Postfix with its defaults, a client needs only a
// Date line ending in a bare CR. headerfix runs first at its stage
// whatever its place in the list, so every other filter of the stage
// judges the repaired header.
func TestRepairSeenByFiltersListedBefore(t *testing.T) {
	zero := time.Duration(0)
	// A client whose address is not known is not looked up: dnsbl only
	// deletes forged fields, and asks no server.
	d, err := dnsbl.New(filters.Env{Name: "dnsbl"}, dnsbl.Config{
		Servers: []string{"127.0.0.1:1"}, ProbeInterval: &zero,
		Zones: []dnsbl.ZoneConfig{{Zone: "tag.test", Action: "tag"}},
	}, dnsbl.NewShared())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	st, err := classifier.Open(filepath.Join(t.TempDir(), "bayes.db"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := bayes.New(filters.Env{Name: "bayes", StateDir: t.TempDir()}, bayes.Config{}, "1", st)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	hf := newFilter(t, headerfix.Config{}, nil)
	for _, tc := range []struct {
		owner filters.Filter
		field string
	}{{d, "X-Sluice-DNSBL"}, {b, "X-Sluice-Bayes"}} {
		for _, order := range [][]filters.Filter{{tc.owner, hf}, {hf, tc.owner}} {
			t.Run(tc.field+", "+order[0].Name()+" first", func(t *testing.T) {
				checkRepairSeen(t, order, tc.field)
			})
		}
	}
}

// checkRepairSeen runs the header stage of a pipeline of the two filters
// over a message with a field named field hidden behind a bare CR after
// its Date, as Postfix shows it, and checks that the field is not
// delivered.
func checkRepairSeen(t *testing.T, order []filters.Filter, field string) {
	t.Helper()
	p := filters.NewPipeline([]filters.Step{{Filter: order[0]}, {Filter: order[1]}}, nil)
	in := hs("From", "alice@example.org", "Date", exDate+" "+field+": forged",
		"Subject", "s", "Message-Id", "<m@example.org>")
	m := postfixMsg(append([]filters.Header(nil), in...))
	res := p.Run(context.Background(), filters.StageHeaders, m)
	delivered := filters.ApplyEdits(in, res.Verdict.Edits)
	for _, h := range delivered {
		if filters.SameName(h.Name, field) {
			t.Errorf("the sender's %s: %s is delivered (edits %v)", h.Name, h.Value, res.Verdict.Edits)
		}
	}
	if v, _ := (&filters.Message{Headers: delivered}).Header("Date"); v != exDate {
		t.Errorf("Date delivered as %q, want %q", v, exDate)
	}
}
