package milter_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// rawKeeper keeps the header block the filters read (Message.Raw) of
// each message, and adds, inserts and changes fields.
type rawKeeper struct {
	mu  sync.Mutex
	hdr map[string][]byte
}

func (*rawKeeper) Name() string { return "raw-keeper" }
func (*rawKeeper) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageEOM), Headers: true, Body: true}
}

func (k *rawKeeper) Check(_ context.Context, _ filters.Stage, m *filters.Message) (filters.Verdict, error) {
	raw, err := io.ReadAll(m.Raw())
	if err != nil {
		return filters.Verdict{}, err
	}
	hdr, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	k.mu.Lock()
	k.hdr[m.QueueID] = append(hdr, "\r\n"...)
	k.mu.Unlock()
	return filters.Verdict{Edits: []filters.HeaderEdit{
		{Kind: filters.AddHeader, Name: "X-Added", Value: "added"},
		{Kind: filters.InsertHeader, Name: "X-Inserted", Index: 0, Value: "inserted"},
		{Kind: filters.ChangeHeader, Name: "X-Changed", Index: 1, Value: "changed"},
		{Kind: filters.AddHeader, Name: "X-Folded", Value: "one\n\ttwo"},
		{Kind: filters.AddHeader, Name: "X-Empty-Added", Value: ""},
	}}, nil
}

// A field written without a space after its colon ("X-N:x", "X-E:", a
// tab instead) reaches the filters as written, where they used to read it
// with a space it never had; both MTAs deliver it untouched. The fields
// sluice adds, inserts or changes are delivered with one space after the
// colon, no more and no fewer: sluice asks for the values' leading space
// (SMFIP_HDR_LEADSPC), and then the MTA adds none of its own.
func TestHeaderSpacingAsWrittenThroughBothMTAs(t *testing.T) {
	sent := []string{"X-N:x", "X-E:", "X-T:\tz", "X-S:  two", "X-Changed:old", "X-W: w"}
	raw := "From: alice@lab.example\r\nTo: bob@lab.example\r\nSubject: spacing\r\n" +
		"Date: Mon, 23 Nov 2026 12:00:00 +0000\r\nMessage-ID: <spacing@mtatest.example>\r\n" +
		strings.Join(sent, "\r\n") + "\r\n\r\nbody\r\n"
	// Postfix told to speak version 2 of the protocol does not offer
	// the option: sluice must not ask for it (Postfix would give up on
	// the milter), and reads each field with a space after its colon,
	// as before it asked.
	old := func(s string) string {
		name, value, _ := strings.Cut(s, ":")
		return name + ": " + strings.TrimPrefix(value, " ")
	}
	for _, name := range []string{"postfix", "sendmail", "postfix-v2"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			k := &rawKeeper{hdr: map[string][]byte{}}
			spec := serveUnix(t, filters.NewPipeline([]filters.Step{{Filter: k}}, nil))
			var mta *mtatest.MTA
			if name == "postfix-v2" {
				mta = mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: spec, ExtraConfig: []string{"milter_protocol = 2"}})
			} else {
				mta = startMTA(t, name, spec)
			}
			c := mtatest.DialSMTP(t, mta.Addr())
			c.Cmd("EHLO client.example")
			r := c.Send("alice@lab.example", []string{"bob@lab.example"}, []byte(raw))
			id := r.QueueID()
			if id == "" {
				t.Fatalf("send: %v", r)
			}
			c.Quit()
			d := mta.WaitDelivered(t, 1, 30*time.Second)[0]
			k.mu.Lock()
			seen, ok := k.hdr[id]
			k.mu.Unlock()
			if !ok {
				t.Fatalf("the filter saw no message with queue id %s", id)
			}
			for _, f := range sent {
				if name == "postfix-v2" {
					f = old(f)
				}
				if !bytes.Contains(seen, []byte("\r\n"+f+"\r\n")) {
					t.Errorf("the filters read no line %q in\n%s", f, seen)
				}
			}
			delivered := bytes.ReplaceAll(d.Raw, []byte("\r\n"), []byte("\n"))
			for _, f := range append(sent[:4:4], "X-W: w", "X-Added: added", "X-Inserted: inserted", "X-Changed: changed", "X-Folded: one\n\ttwo", "X-Empty-Added: ") {
				if !bytes.Contains(delivered, []byte("\n"+f+"\n")) {
					t.Errorf("%s delivered no line %q in\n%s", name, f, delivered)
				}
			}
		})
	}
}
