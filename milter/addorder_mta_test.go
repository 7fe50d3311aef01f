package milter_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// orderRecorder answers at end of message with the header edits listed
// for the message's Subject, and keeps the header it was shown.
type orderRecorder struct {
	edits map[string][]filters.HeaderEdit
	shown headersBySubject
}

func (*orderRecorder) Name() string { return "order-recorder" }

func (*orderRecorder) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageEOM), Headers: true}
}

func (f *orderRecorder) Check(_ context.Context, _ filters.Stage, m *filters.Message) (filters.Verdict, error) {
	subject := f.shown.record(m)
	return filters.Verdict{Edits: f.edits[subject]}, nil
}

// An added field goes to the end of the header, as the filters (and the
// archive, which writes the header they saw) have it, in both MTAs, also
// when the header already has a field of its name: the bayes filter's
// verdict field after it deleted the one the sender forged, and the
// dnsbl filter's several tag fields. Sendmail puts a field added with
// SMFIR_ADDHEADER before the first field of its name, a deleted one
// included, so the verdict field took the forged one's place near the
// top and a second tag field went above the first.
func TestAddedFieldsLandAtTheEndInBothMTAs(t *testing.T) {
	rec := &orderRecorder{edits: map[string][]filters.HeaderEdit{
		"forged": {
			{Kind: filters.DeleteHeader, Name: "X-Verdict", Index: 1},
			{Kind: filters.AddHeader, Name: "X-Verdict", Value: "ours"},
		},
		"several": {
			{Kind: filters.AddHeader, Name: "X-Tag", Value: "first"},
			{Kind: filters.AddHeader, Name: "X-Tag", Value: "second"},
			{Kind: filters.AddHeader, Name: "X-Tag", Value: "third"},
		},
		"kept": {
			{Kind: filters.AddHeader, Name: "X-Verdict", Value: "ours"},
		},
	}}
	subjects := []string{"forged", "several", "kept"}
	for _, name := range []string{"postfix", "sendmail"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			spec := serveUnix(t, filters.NewPipeline([]filters.Step{{Filter: rec}}, nil))
			mta := startMTA(t, name, spec)
			c := mtatest.DialSMTP(t, mta.Addr())
			c.Cmd("EHLO client.example")
			for _, subject := range subjects {
				raw := "X-Verdict: forged\r\nFrom: alice@lab.example\r\nTo: " + name + "@lab.example\r\nSubject: " + subject + "\r\n" +
					"Date: Mon, 23 Nov 2026 12:00:00 +0000\r\nX-Tag: sent\r\nMessage-ID: <order@mtatest.example>\r\n\r\nbody\r\n"
				if r := c.Send("alice@lab.example", []string{"bob@lab.example"}, []byte(raw)); r.Code != 250 {
					t.Fatalf("%s: %v", subject, r)
				}
			}
			c.Quit()
			for _, d := range mta.WaitDelivered(t, len(subjects), 30*time.Second) {
				subject := d.Get("Subject")
				seen := rec.shown.of(subject)
				var want []string
				for _, h := range filters.ApplyEdits(slices.Clone(seen), rec.edits[subject]) {
					want = append(want, h.Name+": "+h.Value)
				}
				// The fields the MTA puts on top: Return-Path,
				// X-Original-To, Delivered-To and its own Received.
				var got []string
				own := true
				for _, f := range d.Header {
					if own {
						own = !strings.EqualFold(f.Name, "Received")
						continue
					}
					got = append(got, f.Name+": "+f.Value)
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s: delivered\n%s\nwant, as the filters saw it\n%s", subject, strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
			}
		})
	}
}
