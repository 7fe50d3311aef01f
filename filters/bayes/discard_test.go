package bayes_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/senders"
)

// Quarantine, which keeps a message, beats discard, which loses it (see
// docs/filters.md). A message that a senders rule holds at MAIL FROM and
// that the Bayes filter would discard as spam is held, and released from
// the hold queue it is delivered: it must carry the Bayes verdict then,
// for the filing rules and the archive's verdict_header, or spam the
// filter condemned reaches the inbox untagged.
func TestDiscardedSpamHeldElsewhereIsTagged(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "access")
	if err := os.WriteFile(rules, []byte("From:casino-royal.example QUARANTINE:suspicious sender\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	off := time.Duration(0)
	hold, err := senders.New(filters.Env{Name: "senders", Logger: slog.New(slog.DiscardHandler), StateDir: dir},
		senders.Config{Files: []senders.FileConfig{{Path: rules}}, ReloadInterval: &off}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hold.Close() })
	bf := newFilter(t, trainedStore(t), "spam: {action: discard}", nil)
	p := filters.NewPipeline([]filters.Step{{Filter: hold, Timeout: 5 * time.Second}, {Filter: bf, Timeout: 5 * time.Second}}, nil)

	// The stages as the milter edge runs them (milter/flow.go): each
	// stage sees the outcome so far, and its result is added to it.
	m := spamMessage()
	m.From = filters.Address{Addr: "promo@casino-royal.example"}
	m.Rcpts = []filters.Address{{Addr: "bob@lab.example"}}
	var out filters.Outcome
	for _, stage := range []filters.Stage{filters.StageMailFrom, filters.StageHeaders, filters.StageEOM} {
		m.Decided = out.Decided()
		out.Add(p.Run(context.Background(), stage, m))
	}
	if out.Action != filters.Quarantine || out.Filter != "senders" {
		t.Fatalf("outcome %s by %q, want quarantine by senders", out.Action, out.Filter)
	}
	var bayesVerdict string
	for _, e := range out.Edits {
		if e.Name == "X-Sluice-Bayes" && (e.Kind == filters.AddHeader || e.Kind == filters.InsertHeader) {
			bayesVerdict = e.Value
		}
	}
	if !strings.HasPrefix(bayesVerdict, "Spam,") {
		t.Errorf("the held message gets edits %+v, no X-Sluice-Bayes: Spam field", out.Edits)
	}
}
