package classifier

import (
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// A classifier that reads the n-gram model in place scores every message
// exactly as one that decoded the whole model, without the 4 MB copy that
// costs a one-message "sluice classify" more than the rest of its work.
func TestModelInPlace(t *testing.T) {
	ctx := context.Background()
	st, _ := fittedBoltClassifier(t)
	decoded, err := NewForStore(ctx, st, Params{})
	if err != nil {
		t.Fatal(err)
	}
	if err := decoded.LoadModel(ctx); err != nil {
		t.Fatal(err)
	}
	inPlace, err := NewForStore(ctx, st, Params{})
	if err != nil {
		t.Fatal(err)
	}
	inPlace.UseModelInPlace()

	msgs := [][]byte{readFixture(t, "html.eml")}
	for _, class := range []string{"spam", "ham"} {
		files, _ := filepath.Glob(filepath.Join("..", "testdata", "classifier", "train", class, "*.eml"))
		for _, f := range files[:min(len(files), 4)] {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, raw)
		}
	}
	if len(msgs) != 9 {
		t.Fatalf("%d messages", len(msgs))
	}
	// The first message, as "sluice classify" has it: the allocations
	// of a tokenised message and its lookups, no model.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got, err := inPlace.ClassifyBytes(ctx, msgs[0], false)
	runtime.ReadMemStats(&after)
	if err != nil || !got.Ngram {
		t.Fatalf("in place: ngram %v, %v", got.Ngram, err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("the first message allocated %d bytes: the model was copied", n)
	}
	for i, raw := range msgs {
		want, err := decoded.ClassifyBytes(ctx, raw, true)
		if err != nil {
			t.Fatal(err)
		}
		got, err := inPlace.ClassifyBytes(ctx, raw, true)
		if err != nil {
			t.Fatal(err)
		}
		if got.LogOdds != want.LogOdds || got.TokenLogOdds != want.TokenLogOdds || !got.Ngram || got.Verdict != want.Verdict {
			t.Errorf("message %d: in place log-odds %v (tokens %v, ngram %v), decoded %v (tokens %v)", i, got.LogOdds, got.TokenLogOdds, got.Ngram, want.LogOdds, want.TokenLogOdds)
		}
		if len(got.Parts) != len(want.Parts) || got.Parts[len(got.Parts)-1] != want.Parts[len(want.Parts)-1] {
			t.Errorf("message %d: explained parts %+v, want %+v", i, got.Parts, want.Parts)
		}
	}
	if inPlace.ModelErr() != nil {
		t.Errorf("model error %v", inPlace.ModelErr())
	}
}

// In place, the model read is always the store's current one: a refit is
// used from the next message on, a model removed is no longer used.
func TestModelInPlaceFollowsStore(t *testing.T) {
	ctx := context.Background()
	st, trainer := newBoltClassifier(t, Params{})
	c, err := NewForStore(ctx, st, Params{})
	if err != nil {
		t.Fatal(err)
	}
	c.UseModelInPlace()
	msg := readFixture(t, "html.eml")
	if r, err := c.ClassifyBytes(ctx, msg, false); err != nil || r.Ngram {
		t.Fatalf("no model yet: ngram %v, %v", r.Ngram, err)
	}
	ops := fixtureOps(t, trainer, Spam, Ham)
	if _, err := trainer.Learn(ctx, ops[:len(ops)-4]); err != nil {
		t.Fatal(err)
	}
	if _, err := trainer.Refit(ctx); err != nil {
		t.Fatal(err)
	}
	first, err := c.ClassifyBytes(ctx, msg, false)
	if err != nil || !first.Ngram {
		t.Fatalf("after a fit: ngram %v, %v", first.Ngram, err)
	}
	if _, err := trainer.Learn(ctx, ops[len(ops)-4:]); err != nil {
		t.Fatal(err)
	}
	if _, err := trainer.Refit(ctx); err != nil {
		t.Fatal(err)
	}
	second, err := c.ClassifyBytes(ctx, msg, false)
	if err != nil || !second.Ngram || second.LogOdds == first.LogOdds {
		t.Errorf("after a refit on more messages: ngram %v, log-odds %v, before %v, %v", second.Ngram, second.LogOdds, first.LogOdds, err)
	}
	fresh, err := NewForStore(ctx, st, Params{})
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := fresh.ClassifyBytes(ctx, msg, false); want.LogOdds != second.LogOdds {
		t.Errorf("in place log-odds %v, a classifier that read the new model %v", second.LogOdds, want.LogOdds)
	}
	// Unlearning every spam leaves a model of one class, not used.
	var spam []LearnOp
	for _, op := range ops {
		if op.Class == Spam {
			op.Unlearn = true
			spam = append(spam, op)
		}
	}
	if _, err := trainer.Learn(ctx, spam); err != nil {
		t.Fatal(err)
	}
	if _, err := trainer.Refit(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := c.ClassifyBytes(ctx, msg, false); err != nil || r.Ngram {
		t.Errorf("a model without spam: ngram %v, %v", r.Ngram, err)
	}
}

// A model with a weight that is not a number is refused in place as it is
// when decoded, whether or not the message's features reach that weight:
// "sluice classify" and the daemon must not disagree over a damaged store.
func TestModelInPlaceRefusesBadModel(t *testing.T) {
	ctx := context.Background()
	st, _ := fittedBoltClassifier(t)
	msg := readFixture(t, "html.eml")
	tokenOnly, err := NewForStore(ctx, st, Params{Ngram: NgramOff})
	if err != nil {
		t.Fatal(err)
	}
	want, err := tokenOnly.ClassifyBytes(ctx, msg, false)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := st.Meta(ctx, MetaModel)
	if err != nil || blob == "" {
		t.Fatalf("model: %d bytes, %v", len(blob), err)
	}
	// The last weight, which the fixture's features do not reach.
	features := NewTokenizer(TokenizerOptions{}).TokenizeBytes(msg).Features
	last := uint32(1<<ngramBits - 1)
	for _, f := range features {
		if f&last == last {
			t.Fatal("the fixture has a feature on the last weight")
		}
	}
	bad := []byte(blob)
	binary.LittleEndian.PutUint32(bad[len(bad)-4:], math.Float32bits(float32(math.Inf(1))))
	// A generation past any fit's, so that the write is taken.
	if ok, err := st.SetModel(ctx, math.MaxUint64, string(bad), "damaged"); err != nil || !ok {
		t.Fatalf("set model: %v, %v", ok, err)
	}
	for _, inPlace := range []bool{false, true} {
		c, err := NewForStore(ctx, st, Params{})
		if err != nil {
			t.Fatal(err)
		}
		if inPlace {
			c.UseModelInPlace()
		}
		got, err := c.ClassifyBytes(ctx, msg, false)
		if err != nil || got.Ngram || got.LogOdds != want.LogOdds || c.ModelErr() == nil {
			t.Errorf("in place %v: ngram %v, log-odds %v (tokens alone %v), %v, model error %v", inPlace, got.Ngram, got.LogOdds, want.LogOdds, err, c.ModelErr())
		}
	}
}

// fittedBoltClassifier returns a new bbolt store that has learned the
// fixtures and fitted its n-gram model, and the classifier that trained
// it.
func fittedBoltClassifier(t *testing.T) (*BoltStore, *Classifier) {
	t.Helper()
	ctx := context.Background()
	st, trainer := newBoltClassifier(t, Params{})
	if _, err := trainer.Learn(ctx, fixtureOps(t, trainer, Spam, Ham)); err != nil {
		t.Fatal(err)
	}
	if _, err := trainer.Refit(ctx); err != nil {
		t.Fatal(err)
	}
	return st, trainer
}
