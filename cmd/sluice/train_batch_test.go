package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/cmd/sluice/internal/mailbox"
)

// learnSizes records the tokens and messages of each Learn call.
type learnSizes struct {
	classifier.Store
	tokens []int
	msgs   []int
}

func (l *learnSizes) Learn(ctx context.Context, ops []classifier.LearnOp) ([]classifier.Outcome, error) {
	n := 0
	for _, op := range ops {
		n += len(op.Tokens)
	}
	l.tokens = append(l.tokens, n)
	l.msgs = append(l.msgs, len(ops))
	return l.Store.Learn(ctx, ops)
}

// Messages of ordinary size (the SpamAssassin corpus's mean is 443
// tokens) are learned in batches that the token bound ends, not the
// messages bound: a transaction costs much the same for a few hundred
// messages as for a batch of trainBatchTokens, as it rewrites most of the
// token tree either way, and batches of 200 made training take about a
// third longer. The messages bound still ends batches of small messages.
func TestTrainBatchFilledToTokens(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		perMessage int // distinct words of a message's body, two tokens each
		msgs       int
		byTokens   bool // the token bound ends the batches, else the messages bound
	}{
		{perMessage: 220, msgs: 2*trainBatchTokens/440 + 10, byTokens: true},
		{perMessage: 10, msgs: 2*trainBatch + 10, byTokens: false},
	} {
		t.Run(fmt.Sprint(tc.perMessage), func(t *testing.T) {
			bolt, err := classifier.Open(filepath.Join(t.TempDir(), "bayes.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer bolt.Close()
			st := &learnSizes{Store: bolt}
			most := trainWords(ctx, t, st, classifier.Ham, tc.msgs, tc.perMessage)
			if len(st.msgs) < 3 {
				t.Fatalf("%d messages of up to %d tokens learned in %d batch(es) of %v messages, want 3 at least", tc.msgs, most, len(st.msgs), st.msgs)
			}
			// The last batch holds what was left.
			for i := range len(st.msgs) - 1 {
				n, tokens := st.msgs[i], st.tokens[i]
				if tc.byTokens && (tokens < trainBatchTokens || n >= trainBatch) {
					t.Errorf("batch %d: %d messages of %d tokens, want it ended by the token bound (%d) before the messages bound (%d)", i, n, tokens, trainBatchTokens, trainBatch)
				}
				if !tc.byTokens && (n != trainBatch || tokens >= trainBatchTokens) {
					t.Errorf("batch %d: %d messages of %d tokens, want it ended by the messages bound (%d)", i, n, tokens, trainBatch)
				}
			}
		})
	}
}

// A training batch is bounded by its tokens, not only by its messages:
// 200 messages of max_tokens distinct tokens each (long text or log
// attachments) made one transaction of 4 million tokens, 20 s during
// which the daemon could not read the store.
func TestTrainBatchBoundedByTokens(t *testing.T) {
	ctx := context.Background()
	bolt, err := classifier.Open(filepath.Join(t.TempDir(), "bayes.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	st := &learnSizes{Store: bolt}
	const perMessage = 5000
	msgs := trainBatchTokens/perMessage + 10 // more than a batch's tokens, fewer than trainBatch messages
	most := trainWords(ctx, t, st, classifier.Spam, msgs, perMessage)
	if len(st.tokens) < 2 {
		t.Errorf("%d messages of about %d tokens learned in %d batch(es) of %v tokens, want batches of at most %d", msgs, most, len(st.tokens), st.tokens, trainBatchTokens+most)
	}
	for _, n := range st.tokens {
		if n > trainBatchTokens+most {
			t.Errorf("a batch of %d tokens, want at most %d", n, trainBatchTokens+most)
		}
	}
}

// trainWords learns msgs messages of class into st through the trainer's
// batching, as sluice train does, each with perMessage words of its own,
// checks that all were learned, and returns the most tokens a message had.
func trainWords(ctx context.Context, t *testing.T, st classifier.Store, class classifier.Class, msgs, perMessage int) int {
	t.Helper()
	tr := &trainer{c: classifier.New(st, classifier.DefaultParams()), class: class, errw: io.Discard}
	most := 0
	for i := range msgs {
		var body strings.Builder
		fmt.Fprintf(&body, "Subject: message %d\n\n", i)
		for j := range perMessage {
			fmt.Fprintf(&body, "%s ", word(i*perMessage+j))
		}
		op := tr.c.PrepareBytes([]byte(body.String()), class, false)
		most = max(most, len(op.Tokens))
		if err := tr.add(ctx, &trainJob{m: mailbox.Message{Name: fmt.Sprint(i)}, match: true, op: op}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if tr.outcomes[classifier.Learned] != msgs {
		t.Fatalf("learned %d of %d messages", tr.outcomes[classifier.Learned], msgs)
	}
	return most
}

// word is a distinct lower-case word for each n.
func word(n int) string {
	b := []byte("w")
	for {
		b = append(b, byte('a'+n%26))
		n /= 26
		if n == 0 {
			return string(b)
		}
	}
}
