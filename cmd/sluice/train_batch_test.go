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

// learnSizes records the tokens of each Learn call.
type learnSizes struct {
	classifier.Store
	tokens []int
}

func (l *learnSizes) Learn(ctx context.Context, ops []classifier.LearnOp) ([]classifier.Outcome, error) {
	n := 0
	for _, op := range ops {
		n += len(op.Tokens)
	}
	l.tokens = append(l.tokens, n)
	return l.Store.Learn(ctx, ops)
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
	tr := &trainer{c: classifier.New(st, classifier.DefaultParams()), class: classifier.Spam, errw: io.Discard}
	const perMessage = 5000
	msgs := trainBatchTokens/perMessage + 10 // more than a batch's tokens, fewer than trainBatch messages
	most := 0
	for i := range msgs {
		var body strings.Builder
		fmt.Fprintf(&body, "Subject: wide %d\n\n", i)
		for j := range perMessage {
			fmt.Fprintf(&body, "%s ", word(i*perMessage+j))
		}
		op := tr.c.PrepareBytes([]byte(body.String()), classifier.Spam, false)
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
	if len(st.tokens) < 2 {
		t.Errorf("%d messages of about %d tokens learned in %d batch(es) of %v tokens, want batches of at most %d", msgs, most, len(st.tokens), st.tokens, trainBatchTokens+most)
	}
	for _, n := range st.tokens {
		if n > trainBatchTokens+most {
			t.Errorf("a batch of %d tokens, want at most %d", n, trainBatchTokens+most)
		}
	}
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
