package classifier

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sluice-mail/sluice/classifier/redistest"
)

func TestNgramFeatures(t *testing.T) {
	lf := "From: a@example.org\nSubject: cheap pills\n\nBuy now.\nBuy now.\n"
	f := NgramFeatures([]byte(lf))
	if len(f) == 0 || !slices.IsSorted(f) || len(slices.Compact(slices.Clone(f))) != len(f) {
		t.Fatalf("features %v: want sorted, distinct, non-empty", f)
	}
	for _, v := range f {
		if v >= 1<<ngramBits {
			t.Fatalf("feature %d out of range", v)
		}
	}
	// What an MTA passes (CRLF) and what a file holds (LF), with or
	// without an mbox From_ line, are the same message.
	crlf := strings.ReplaceAll(lf, "\n", "\r\n")
	mbox := "From a@example.org Mon Nov 23 10:00:00 2026\n" + lf
	for name, v := range map[string]string{"crlf": crlf, "mbox": mbox} {
		if g := NgramFeatures([]byte(v)); !slices.Equal(g, f) {
			t.Errorf("%s: features differ from the LF message's", name)
		}
	}
	// Repeating a sequence adds nothing; another word adds features.
	if g := NgramFeatures([]byte(lf + "Buy now.\n")); !slices.Equal(g, f) {
		t.Error("repeated text changed the features")
	}
	if g := NgramFeatures([]byte(lf + "Unsubscribe here.\n")); len(g) <= len(f) {
		t.Error("new text added no feature")
	}
	// Only the first ngramBytes bytes count.
	long := bytes.Repeat([]byte("abcdefgh"), ngramBytes/8)
	if !slices.Equal(NgramFeatures(append(slices.Clone(long), "zzzz tail"...)), NgramFeatures(long)) {
		t.Error("bytes past the limit changed the features")
	}
	for _, short := range []string{"", "abc", "\r\r\r\r\r"} {
		if g := NgramFeatures([]byte(short)); len(g) != 0 {
			t.Errorf("%q: features %v, want none", short, g)
		}
	}
}

// A tokenised message's features are its byte sequences' and its
// tokens', each once; the tokens' depend on the token alone.
func TestWordFeatures(t *testing.T) {
	raw := readFixture(t, "html.eml")
	m := NewTokenizer(TokenizerOptions{}).TokenizeBytes(raw)
	words := WordFeatures(m.Tokens)
	if len(words) == 0 || !slices.IsSorted(words) || len(slices.Compact(slices.Clone(words))) != len(words) {
		t.Fatalf("word features %v: want sorted, distinct, non-empty", words)
	}
	if len(words) < len(m.Tokens)*9/10 {
		t.Errorf("%d tokens hash to only %d features", len(m.Tokens), len(words))
	}
	want := slices.Concat(NgramFeatures(raw), words)
	slices.Sort(want)
	want = slices.Compact(want)
	got := slices.Clone(m.Features)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("message has %d features, want %d: the byte sequences' and the tokens'", len(got), len(want))
	}
	a := WordFeatures([]string{"viagra", "subj:cheap"})
	b := WordFeatures([]string{"subj:cheap", "viagra", "viagra"})
	if len(a) != 2 || !slices.Equal(a, b) {
		t.Errorf("word features %v and %v: want the same two", a, b)
	}
	if slices.Equal(WordFeatures([]string{"viagra"}), WordFeatures([]string{"viagrb"})) {
		t.Error("two tokens a byte apart share a feature")
	}
	if len(WordFeatures(nil)) != 0 {
		t.Error("no tokens gave features")
	}
}

func TestFeaturesEncoding(t *testing.T) {
	f := NgramFeatures(readFixture(t, "html.eml"))
	b := EncodeFeatures(f)
	g, err := DecodeFeatures(b)
	if err != nil || !slices.Equal(f, g) {
		t.Fatalf("round trip: %v, equal %v", err, slices.Equal(f, g))
	}
	if len(b) > 3*len(f) {
		t.Errorf("%d features take %d bytes", len(f), len(b))
	}
	for name, bad := range map[string][]byte{
		"cut varint":   {0x80},
		"out of range": EncodeFeatures([]uint32{1 << ngramBits}),
		"repeated":     {5, 0},
		"overlong":     {0x85, 0x00},
		// 5, then a gap of 2^64-3 that would wrap round to 2.
		"wrapping gap": {5, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 3},
	} {
		if _, err := DecodeFeatures(bad); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// sortFeatures must order features exactly as slices.Sort does, since the
// sorted features are encoded into the store: short lists and long, with
// repeated values, at the ends of the range, and with a value out of it.
func TestSortFeatures(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	random := func(n int, limit uint32) []uint32 {
		f := make([]uint32, n)
		for i := range f {
			f[i] = r.Uint32N(limit)
		}
		return f
	}
	cases := map[string][]uint32{
		"empty":        {},
		"one":          {7},
		"short":        random(100, 1<<ngramBits),
		"at the bound": random(255, 1<<ngramBits),
		"long":         random(5000, 1<<ngramBits),
		"repeats":      random(3000, 50),
		"same high":    random(1000, 1<<(ngramBits/2)),
		"ends":         append(random(500, 1<<ngramBits), 0, 1<<ngramBits-1, 0, 1<<ngramBits-1),
		"out of range": append(random(500, 1<<ngramBits), 1<<ngramBits, 1<<32-1),
		"descending": func() []uint32 {
			f := random(2000, 1<<ngramBits)
			slices.Sort(f)
			slices.Reverse(f)
			return f
		}(),
	}
	msg := NewTokenizer(TokenizerOptions{}).TokenizeBytes(readFixture(t, "html.eml"))
	cases["a message's"] = slices.Clone(msg.Features)
	for name, f := range cases {
		want := slices.Clone(f)
		slices.Sort(want)
		sortFeatures(f)
		if !slices.Equal(f, want) {
			t.Errorf("%s: %d features sorted differ from slices.Sort's", name, len(f))
		}
	}
}

// BenchmarkSortFeatures sorts the features of a message of the size of the
// SpamAssassin corpus's, about 2,000, as preparing each message for
// learning does.
func BenchmarkSortFeatures(b *testing.B) {
	r := rand.New(rand.NewPCG(11, 12))
	f := make([]uint32, 2000)
	for i := range f {
		f[i] = r.Uint32N(1 << ngramBits)
	}
	work := make([]uint32, len(f))
	for _, sorter := range []struct {
		name string
		sort func([]uint32)
	}{{"radix", sortFeatures}, {"slices", slices.Sort[[]uint32]}} {
		b.Run(sorter.name, func(b *testing.B) {
			for b.Loop() {
				copy(work, f)
				sorter.sort(work)
			}
		})
	}
}

// appendValidFeatures must unpack every encoding appendDecoded accepts to
// the same features: those of messages, and lists with gaps of one, two
// and three bytes, the least and the greatest feature.
func TestAppendValidFeatures(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	lists := [][]uint32{
		{},
		{0},
		{1<<ngramBits - 1},
		{0, 1, 127, 128, 16383, 16384, 1<<ngramBits - 1},
	}
	for _, n := range []int{1, 10, 300, 3000, 100000} {
		seen := map[uint32]bool{}
		var f []uint32
		for len(f) < n {
			if v := r.Uint32N(1 << ngramBits); !seen[v] {
				seen[v] = true
				f = append(f, v)
			}
		}
		slices.Sort(f)
		lists = append(lists, f)
	}
	for _, op := range fixtureOps(t, New(nil, Params{}), Spam, Ham) {
		f, err := DecodeFeatures(op.Features)
		if err != nil {
			t.Fatal(err)
		}
		lists = append(lists, f)
	}
	for _, f := range lists {
		enc := EncodeFeatures(f)
		want, err := appendDecoded([]uint32{42}, enc)
		if err != nil {
			t.Fatalf("%d features: %v", len(f), err)
		}
		if got := appendValidFeatures([]uint32{42}, enc); !slices.Equal(got, want) {
			t.Errorf("%d features in %d bytes: unpacked to %d features unlike appendDecoded's %d", len(f), len(enc), len(got)-1, len(want)-1)
		}
	}
}

// An example whose encoded features do not decode counts as one without
// features, as when every pass of the fit checked them: the fit gives the
// same model as with no features for it, and does not take the bytes
// for features (which might be out of range of the weights).
func TestFitNgramBadEncoded(t *testing.T) {
	var ex []Example
	for _, e := range fixtureExamples(t) {
		ex = append(ex, Example{Digest: e.Digest, Spam: e.Spam, Encoded: EncodeFeatures(e.Features)})
	}
	bad := [][]byte{
		{0x80},                   // cut short
		{0xff, 0xff, 0xff, 0x7f}, // a gap beyond the weights
		{5, 0},                   // a feature twice
		{0x85, 0x00},             // overlong
	}
	withBad := slices.Clone(ex)
	withNone := slices.Clone(ex)
	for i, b := range bad {
		withBad[i].Encoded = b
		withNone[i].Encoded = nil
		withNone[i].Features = []uint32{}
	}
	a, _ := FitNgram(withBad).MarshalBinary()
	b, _ := FitNgram(withNone).MarshalBinary()
	if !bytes.Equal(a, b) {
		t.Error("a fit with examples whose features do not decode differs from one where they have none")
	}
	if withBad[0].Encoded[0] != 0x80 {
		t.Error("the fit changed the caller's examples")
	}
}

// BenchmarkFitNgram fits the model on 5,000 messages, their features
// encoded as a refit reads them from the store: the training fixtures
// over and over, each time under other digests, so that the passes over
// the messages, not the setting up of the weights, take most of the
// time, as they do on a store of thousands of messages.
func BenchmarkFitNgram(b *testing.B) {
	ops := fixtureOps(b, New(nil, Params{}), Spam, Ham)
	var ex []Example
	for i := 0; len(ex) < 5000; i++ {
		op := ops[i%len(ops)]
		d := op.Digest
		d[0], d[1] = byte(i), byte(i>>8)
		ex = append(ex, Example{Digest: d, Spam: op.Class == Spam, Encoded: op.Features})
	}
	for b.Loop() {
		FitNgram(ex)
	}
	b.ReportMetric(float64(b.N*len(ex))/b.Elapsed().Seconds(), "msgs/s")
}

// fixtureExamples reads the classifier training fixtures as the store
// would hand them to FitNgram.
func fixtureExamples(t *testing.T) []Example {
	t.Helper()
	var ex []Example
	for _, op := range fixtureOps(t, New(nil, Params{}), Spam, Ham) {
		f, err := DecodeFeatures(op.Features)
		if err != nil {
			t.Fatal(err)
		}
		ex = append(ex, Example{Digest: op.Digest, Spam: op.Class == Spam, Features: f})
	}
	return ex
}

// newBoltClassifier opens an empty bbolt store in a temporary directory
// and a classifier on it with p.
func newBoltClassifier(t *testing.T, p Params) (*BoltStore, *Classifier) {
	t.Helper()
	st, err := OpenBolt(filepath.Join(t.TempDir(), "db"), BoltOptions{NoSync: true, LockTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := NewForStore(context.Background(), st, p)
	if err != nil {
		t.Fatal(err)
	}
	return st, c
}

// fixtureOps prepares the classifier training fixtures of each class as
// learn ops, in the order of classes.
func fixtureOps(t testing.TB, c *Classifier, classes ...Class) []LearnOp {
	t.Helper()
	var ops []LearnOp
	for _, class := range classes {
		files, _ := filepath.Glob(filepath.Join("..", "testdata", "classifier", "train", class.String(), "*.eml"))
		if len(files) < 10 {
			t.Fatalf("%d %s fixtures", len(files), class)
		}
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			ops = append(ops, c.PrepareBytes(raw, class, false))
		}
	}
	return ops
}

func TestFitNgram(t *testing.T) {
	ex := fixtureExamples(t)
	m := FitNgram(ex)
	if m.Spam == 0 || m.Ham == 0 || m.Spam+m.Ham != len(ex) {
		t.Fatalf("fitted on %d spam %d ham of %d", m.Spam, m.Ham, len(ex))
	}
	for _, e := range ex {
		if lo := m.LogOdds(e.Features); (lo > 0) != e.Spam {
			t.Errorf("%x (spam %v): log-odds %.2f after fitting on it", e.Digest[:4], e.Spam, lo)
		}
	}
	// The same messages in another order give the same model, bit for
	// bit: training runs may come in any order.
	shuffled := slices.Clone(ex)
	rand.New(rand.NewPCG(7, 7)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	a, _ := m.MarshalBinary()
	b, _ := FitNgram(shuffled).MarshalBinary()
	if !bytes.Equal(a, b) {
		t.Error("another order of the same messages gave another model")
	}
	var back NgramModel
	if err := back.UnmarshalBinary(a); err != nil {
		t.Fatal(err)
	}
	if c, _ := back.MarshalBinary(); !bytes.Equal(a, c) || back.Spam != m.Spam || back.Ham != m.Ham {
		t.Error("model changed in a marshal round trip")
	}
	// A Redis store's Meta gives the model as a string.
	var fromString NgramModel
	if err := unmarshalModel(&fromString, string(a)); err != nil {
		t.Fatal(err)
	}
	if c, _ := fromString.MarshalBinary(); !bytes.Equal(a, c) {
		t.Error("model changed in a round trip through a string")
	}
	bad := slices.Clone(a)
	copy(bad[len(bad)-4:], []byte{0, 0, 0xc0, 0x7f}) // a NaN weight
	inf := slices.Clone(a)
	copy(inf[len(inf)-8:], []byte{0, 0, 0x80, 0xff}) // minus infinity
	for name, blob := range map[string][]byte{"cut": a[:len(a)-1], "magic": []byte("xxxx" + string(a[4:])), "nan": bad, "inf": inf, "empty": nil} {
		if err := new(NgramModel).UnmarshalBinary(blob); err == nil {
			t.Errorf("%s: no error", name)
		}
		if err := unmarshalModel(new(NgramModel), string(blob)); err == nil {
			t.Errorf("%s, as a string: no error", name)
		}
	}
}

func TestBlendNgram(t *testing.T) {
	logit := func(p float64) float64 { return math.Log(p / (1 - p)) }
	for _, c := range [][2]float64{{0, 0}, {2, -1}, {-3, -0.5}, {5, 5}, {-4, 4}} {
		pa, pb := logistic(c[0]), logistic(c[1])
		if got, want := blendNgram(c[0], c[1]), logit((pa+pb)/2); math.Abs(got-want) > 1e-9 {
			t.Errorf("blend(%v, %v) = %v, want %v", c[0], c[1], got, want)
		}
		if blendNgram(c[0], c[1]) != blendNgram(c[1], c[0]) {
			t.Errorf("blend(%v, %v) not symmetric", c[0], c[1])
		}
	}
	// Where the mean of the probabilities rounds to 1 the log-odds keep
	// their order; two opposite certainties cancel out.
	if a, b := blendNgram(800, 60), blendNgram(800, 70); !(b > a && a > 50) {
		t.Errorf("blend(800, 60) = %v, blend(800, 70) = %v: want increasing, above 50", a, b)
	}
	if v := blendNgram(800, -800); math.Abs(v) > 1e-9 {
		t.Errorf("blend(800, -800) = %v, want 0", v)
	}
	// One sure opinion against a neutral one gives at most ln 3: the
	// mean of 1 and 0.5.
	if v := blendNgram(800, 0); v > 2 {
		t.Errorf("blend(800, 0) = %v: one model alone must not make a message sure", v)
	}
}

// Training ham then spam, or spam then ham, in any number of runs, gives
// the same model; a refit reaches a classifier already running; the
// classifier averages it in only when it is on and fitted on enough mail.
func TestNgramThroughStore(t *testing.T) {
	ctx := context.Background()
	train := func(t *testing.T, c *Classifier, classes ...Class) {
		for _, class := range classes {
			if _, err := c.Learn(ctx, fixtureOps(t, c, class)); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Refit(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	open := func(t *testing.T, p Params) (*BoltStore, *Classifier) {
		st, c := newBoltClassifier(t, p)
		c.model.every = -1
		return st, c
	}
	s1, c1 := open(t, Params{})
	s2, c2 := open(t, Params{})
	// The daemon's classifier is made before any training. It keeps
	// the default check interval: the store's lookups bring the model's
	// id, so it sees each refit on the next message, not a second later.
	running, err := NewForStore(ctx, s1, Params{})
	if err != nil {
		t.Fatal(err)
	}
	msg := readFixture(t, "html.eml")
	if r, err := running.ClassifyBytes(ctx, msg, false); err != nil || r.Ngram {
		t.Fatalf("untrained store: ngram %v, %v", r.Ngram, err)
	}
	train(t, c1, Ham, Spam)
	train(t, c2, Spam, Ham)
	id1, _ := s1.Meta(ctx, MetaModelID)
	id2, _ := s2.Meta(ctx, MetaModelID)
	if id1 == "" || id1 != id2 {
		t.Errorf("model ids %q and %q: want the same non-empty model whatever the training order", id1, id2)
	}
	r, err := running.ClassifyBytes(ctx, msg, true)
	if err != nil || !r.Ngram || r.TokenLogOdds == r.LogOdds {
		t.Fatalf("after training: ngram %v, token log-odds %v, log-odds %v, %v", r.Ngram, r.TokenLogOdds, r.LogOdds, err)
	}
	if n := len(r.Parts); n == 0 || r.Parts[n-1].Name != "ngram" || r.Parts[n-1].Used == 0 {
		t.Errorf("explain parts %+v: want the n-gram part last", r.Parts)
	}
	// Unlearning every spam leaves a model of one class, not used.
	ops := fixtureOps(t, c1, Spam)
	for i := range ops {
		ops[i].Unlearn = true
	}
	if _, err := c1.Learn(ctx, ops); err != nil {
		t.Fatal(err)
	}
	m, err := c1.Refit(ctx)
	if err != nil || m == nil || m.Spam != 0 {
		t.Fatalf("refit after unlearning spam: %+v, %v", m, err)
	}
	if r, _ := running.ClassifyBytes(ctx, msg, false); r.Ngram {
		t.Error("a model without spam was averaged in")
	}
	// Off in the parameters: not fitted, not used.
	_, off := open(t, Params{Ngram: NgramOff})
	train(t, off, Ham, Spam)
	if id, _ := off.Store().Meta(ctx, MetaModelID); id != "" {
		t.Error("ngram off: a model was fitted")
	}
	if r, _ := off.ClassifyBytes(ctx, msg, false); r.Ngram {
		t.Error("ngram off: the model was averaged in")
	}
}

// A store that cannot hand over the model leaves the model read before in
// use, and says why; classification does not fail.
func TestNgramModelReadFails(t *testing.T) {
	ctx := context.Background()
	bs, _ := newBoltClassifier(t, Params{})
	st := &metaCounting{BoltStore: bs}
	// Wrapped in a bare Store, its lookups do not bring the model's id:
	// the classifier asks with Meta, the path of other stores.
	c, err := NewForStore(ctx, struct{ Store }{st}, Params{})
	if err != nil {
		t.Fatal(err)
	}
	c.model.every = -1
	if _, err := c.Learn(ctx, fixtureOps(t, c, Spam, Ham)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refit(ctx); err != nil {
		t.Fatal(err)
	}
	msg := readFixture(t, "html.eml")
	want, err := c.ClassifyBytes(ctx, msg, false)
	if err != nil || !want.Ngram || c.ModelErr() != nil {
		t.Fatalf("model readable: ngram %v, %v, model error %v", want.Ngram, err, c.ModelErr())
	}
	st.fail = true
	got, err := c.ClassifyBytes(ctx, msg, false)
	if err != nil || got.LogOdds != want.LogOdds || c.ModelErr() == nil {
		t.Errorf("model unreadable: log-odds %v (want %v), %v, model error %v", got.LogOdds, want.LogOdds, err, c.ModelErr())
	}
	// A classifier that never read the model scores with the tokens alone.
	fresh, _ := NewForStore(ctx, struct{ Store }{st}, Params{})
	if r, err := fresh.ClassifyBytes(ctx, msg, false); err != nil || r.Ngram || fresh.ModelErr() == nil {
		t.Errorf("fresh classifier, model unreadable: ngram %v, %v, model error %v", r.Ngram, err, fresh.ModelErr())
	}
	st.fail = false
	fresh.model.every = -1
	if r, _ := fresh.ClassifyBytes(ctx, msg, false); !r.Ngram || fresh.ModelErr() != nil {
		t.Errorf("store readable again: ngram %v, model error %v", r.Ngram, fresh.ModelErr())
	}
}

// BenchmarkNgram measures what the n-gram model adds to scoring one
// message: its features and their weights.
func BenchmarkNgram(b *testing.B) {
	// Fixtures one after the other: varied text, as a real message has.
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "classifier", "train", "*", "*.eml"))
	var raw []byte
	for _, f := range files {
		m, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		raw = append(raw, m...)
	}
	if len(raw) < ngramBytes {
		b.Fatalf("%d bytes of fixtures", len(raw))
	}
	m := &NgramModel{w: make([]float32, 1<<ngramBits)}
	r := rand.New(rand.NewPCG(1, 1))
	for i := range m.w {
		m.w[i] = float32(r.NormFloat64())
	}
	toks := NewTokenizer(TokenizerOptions{}).TokenizeBytes(raw).Tokens
	b.Run("features", func(b *testing.B) {
		var seen ngramSeen // as the tokenizer keeps one per walker
		for range b.N {
			seen.features(raw, toks)
		}
	})
	var seen ngramSeen
	f := seen.features(raw, toks)
	b.Logf("%d features", len(f))
	b.Run("logodds", func(b *testing.B) {
		for range b.N {
			m.LogOdds(f)
		}
	})
}

// Classifying on several goroutines while the model is refitted: no
// race (go test -race), no error, and the model always averaged in,
// whether decoded or read in place.
func TestNgramConcurrentRefit(t *testing.T) {
	t.Run("decoded", func(t *testing.T) { testNgramConcurrentRefit(t, false) })
	t.Run("in-place", func(t *testing.T) { testNgramConcurrentRefit(t, true) })
}

func testNgramConcurrentRefit(t *testing.T, inPlace bool) {
	ctx := context.Background()
	_, c := newBoltClassifier(t, Params{})
	c.model.every = -1
	if inPlace {
		c.UseModelInPlace()
	}
	ops := fixtureOps(t, c, Spam, Ham)
	if _, err := c.Learn(ctx, ops); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refit(ctx); err != nil {
		t.Fatal(err)
	}
	msg := readFixture(t, "html.eml")
	done := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				r, err := c.ClassifyBytes(ctx, msg, false)
				if err == nil && !r.Ngram {
					err = errors.New("classified without the model")
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	// Unlearn and learn one spam back, refitting each time.
	for i := range 6 {
		op := ops[0]
		op.Unlearn = i%2 == 0
		if _, err := c.Learn(ctx, []LearnOp{op}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Refit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// metaCounting is a bbolt store (so its lookups bring the model's id)
// whose model reads fail while fail is set, counting them.
type metaCounting struct {
	*BoltStore
	fail  bool
	reads int
}

func (s *metaCounting) Meta(ctx context.Context, key string) (string, error) {
	if key == MetaModelID || key == MetaModel {
		s.reads++
		if s.fail {
			return "", errors.New("store too slow")
		}
	}
	return s.BoltStore.Meta(ctx, key)
}

// viewMeta counts and fails as Meta does: the bbolt store's model is read
// through it.
func (s *metaCounting) viewMeta(ctx context.Context, key string, fn func([]byte) error) error {
	if key == MetaModelID || key == MetaModel {
		s.reads++
		if s.fail {
			return errors.New("store too slow")
		}
	}
	return s.BoltStore.viewMeta(ctx, key, fn)
}

// A new model that cannot be read is tried again once per interval, not
// on every message.
func TestNgramModelReadRetries(t *testing.T) {
	ctx := context.Background()
	bs, trainer := newBoltClassifier(t, Params{})
	st := &metaCounting{BoltStore: bs}
	c, err := NewForStore(ctx, st, Params{})
	if err != nil {
		t.Fatal(err)
	}
	c.model.every = time.Hour
	msg := readFixture(t, "html.eml")
	if _, err := c.ClassifyBytes(ctx, msg, false); err != nil {
		t.Fatal(err)
	}
	if _, err := trainer.Learn(ctx, fixtureOps(t, trainer, Spam, Ham)); err != nil {
		t.Fatal(err)
	}
	if _, err := trainer.Refit(ctx); err != nil {
		t.Fatal(err)
	}
	st.fail, st.reads = true, 0
	for range 5 {
		if r, err := c.ClassifyBytes(ctx, msg, false); err != nil || r.Ngram {
			t.Fatalf("model unreadable: ngram %v, %v", r.Ngram, err)
		}
	}
	if st.reads != 1 || c.ModelErr() == nil {
		t.Errorf("%d model reads for 5 messages, model error %v: want one failed read", st.reads, c.ModelErr())
	}
	// Readable again: the next interval brings it.
	st.fail = false
	c.model.mu.Lock()
	c.model.checked = time.Now().Add(-2 * time.Hour)
	c.model.mu.Unlock()
	if r, err := c.ClassifyBytes(ctx, msg, false); err != nil || !r.Ngram || c.ModelErr() != nil {
		t.Errorf("after the interval: ngram %v, %v, model error %v", r.Ngram, err, c.ModelErr())
	}
}

// LoadModel reads the model before the first message, which then finds
// it held; a failed read is reported and the messages go on without it.
func TestLoadModel(t *testing.T) {
	ctx := context.Background()
	bs, _ := fittedBoltClassifier(t)
	st := &metaCounting{BoltStore: bs}
	c, err := NewForStore(ctx, st, Params{})
	if err != nil {
		t.Fatal(err)
	}
	c.model.every = time.Hour
	if err := c.LoadModel(ctx); err != nil {
		t.Fatal(err)
	}
	if st.reads != 2 {
		t.Errorf("LoadModel read the model id and model %d times, want 2", st.reads)
	}
	st.reads = 0
	if r, err := c.ClassifyBytes(ctx, readFixture(t, "html.eml"), false); err != nil || !r.Ngram {
		t.Fatalf("after LoadModel: ngram %v, %v", r.Ngram, err)
	}
	if st.reads != 0 {
		t.Errorf("the first message read the model %d times after LoadModel", st.reads)
	}

	st.fail = true
	c, err = NewForStore(ctx, st, Params{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LoadModel(ctx); err == nil {
		t.Error("LoadModel of an unreadable model: no error")
	}
	if r, err := c.ClassifyBytes(ctx, readFixture(t, "html.eml"), false); err != nil || r.Ngram {
		t.Errorf("model unreadable: ngram %v, %v", r.Ngram, err)
	}
}

// byDigest returns the digests of ops, sorted, and the op of each.
func byDigest(ops []LearnOp) ([]Digest, map[Digest]LearnOp) {
	var digests []Digest
	op := map[Digest]LearnOp{}
	for _, o := range ops {
		digests = append(digests, o.Digest)
		op[o.Digest] = o
	}
	slices.SortFunc(digests, func(a, b Digest) int { return bytes.Compare(a[:], b[:]) })
	return digests, op
}

// checkKeptFeatures checks that exactly the learned messages beyond the
// keep of lowest digest lost their features, and that every message of
// ops (digests, sorted, and op by digest) is still learned, in its class;
// it returns the learn generation of the walk.
func checkKeptFeatures(t *testing.T, st Store, digests []Digest, op map[Digest]LearnOp, keep int) uint64 {
	t.Helper()
	ctx := context.Background()
	gen, err := st.WalkLearned(ctx, func(d DigestClass) error {
		i := slices.IndexFunc(digests, func(x Digest) bool { return x == d.Digest })
		switch {
		case i < 0:
			t.Errorf("digest %s walked, not learned", d.Digest)
		case d.Class != op[d.Digest].Class:
			t.Errorf("digest %s is %v after the drop, want %v", d.Digest, d.Class, op[d.Digest].Class)
		case i < keep && !bytes.Equal(d.Features, op[d.Digest].Features):
			t.Errorf("digest %s, %d of lowest digest, has %d bytes of features, want its %d: within the %d kept", d.Digest, i+1, len(d.Features), len(op[d.Digest].Features), keep)
		case i >= keep && d.Features != nil:
			t.Errorf("digest %s, %d of lowest digest, still has %d bytes of features: beyond the %d kept", d.Digest, i+1, len(d.Features), keep)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Digests != len(digests) || stats.Features != keep {
		t.Errorf("stats: %d digests, %d with features; want %d, %d", stats.Digests, stats.Features, len(digests), keep)
	}
	return gen
}

// onBothStores runs test on a new bbolt store and on a Redis store of
// a redis-server of its own (keys under prefix).
func onBothStores(t *testing.T, prefix string, test func(*testing.T, Store)) {
	t.Run("bolt", func(t *testing.T) {
		st, _ := newBoltClassifier(t, Params{})
		test(t, st)
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		st, err := OpenRedis(RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		test(t, st)
	})
}

// Two refits at once (two "sluice train" runs, or one beside the daemon's
// auto-learning) where the one that read the learned messages first
// writes its model last: the store must keep the model of the later read,
// which has the message learned in between, and not go back to one
// without it until some next refit. On both stores, step by step.
func TestRefitInterleaved(t *testing.T) {
	onBothStores(t, "interleaved", testRefitInterleaved)
}

func testRefitInterleaved(t *testing.T, st Store) {
	ctx := context.Background()
	c, err := NewForStore(ctx, st, Params{})
	if err != nil {
		t.Fatal(err)
	}
	ops := fixtureOps(t, c, Spam, Ham)
	late := ops[len(ops)-1]
	if _, err := c.Learn(ctx, ops[:len(ops)-1]); err != nil {
		t.Fatal(err)
	}
	// The first run reads the learned messages...
	first, err := readRefit(ctx, st, maxFitMessages, keepFeatureMessages)
	if err != nil {
		t.Fatal(err)
	}
	// ... while it fits, a second run learns one more message and
	// refits, all of it ...
	if _, err := c.Learn(ctx, []LearnOp{late}); err != nil {
		t.Fatal(err)
	}
	want, err := Refit(ctx, st)
	if err != nil || fittedOn(want) != len(ops) {
		t.Fatalf("second refit: model of %d messages, %v", fittedOn(want), err)
	}
	wantBlob, _ := want.MarshalBinary()
	// ... and then the first run writes what it fitted.
	m, err := first.fitAndStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := fittedOn(m); n != len(ops) {
		t.Errorf("first refit returned a model of %d messages, want the store's, of %d", n, len(ops))
	}
	got, id, err := StoredModel(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if n := fittedOn(got); n != len(ops) {
		t.Errorf("stored model fitted on %d messages, want %d: the refit that read before the last learn wrote over the one that read after it", n, len(ops))
	}
	if id != modelID(wantBlob) {
		t.Errorf("stored model id %s, want %s (the later read's model)", id, modelID(wantBlob))
	}
	// Unlearning a message and refitting replaces the model as ever.
	un := late
	un.Unlearn = true
	if _, err := c.Learn(ctx, []LearnOp{un}); err != nil {
		t.Fatal(err)
	}
	if m, err := Refit(ctx, st); err != nil || fittedOn(m) != len(ops)-1 {
		t.Fatalf("refit after unlearning: model of %d messages, %v", fittedOn(m), err)
	}
	if got, _, err := StoredModel(ctx, st); err != nil || fittedOn(got) != len(ops)-1 {
		t.Errorf("stored model after unlearning: of %d messages, %v", fittedOn(got), err)
	}
}

// ModelStale follows the learned messages against the model, on both
// stores: a new store is current, a learn makes it stale, a refit current
// again, and a learn that changes nothing (the message was learned
// before) leaves it so.
func TestModelStale(t *testing.T) {
	onBothStores(t, "stale", func(t *testing.T, st Store) {
		ctx := context.Background()
		c, err := NewForStore(ctx, st, Params{})
		if err != nil {
			t.Fatal(err)
		}
		stale := func(want bool, when string) {
			t.Helper()
			got, err := ModelStale(ctx, st)
			if err != nil || got != want {
				t.Errorf("%s: stale %v, %v; want %v", when, got, err, want)
			}
		}
		stale(false, "new store")
		ops := fixtureOps(t, c, Spam, Ham)
		if _, err := c.Learn(ctx, ops); err != nil {
			t.Fatal(err)
		}
		stale(true, "learned, not fitted")
		if _, err := Refit(ctx, st); err != nil {
			t.Fatal(err)
		}
		stale(false, "fitted")
		if out, err := c.Learn(ctx, ops[:1]); err != nil || out[0] != AlreadyLearned {
			t.Fatalf("learn again: %v, %v", out, err)
		}
		stale(false, "the same message learned again")
		un := ops[0]
		un.Unlearn = true
		if _, err := c.Learn(ctx, []LearnOp{un}); err != nil {
			t.Fatal(err)
		}
		stale(true, "unlearned")
		if _, err := Refit(ctx, st); err != nil {
			t.Fatal(err)
		}
		stale(false, "fitted again")
	})
}

// A refit whose context ends after it read the learned messages stops in
// the fit, with the context's error, and stores no model: a daemon
// shutting down, or a signal to "sluice train", does not wait out a fit
// of tens of seconds.
func TestRefitStopsInFit(t *testing.T) {
	ctx := context.Background()
	st, c := newBoltClassifier(t, Params{})
	if _, err := c.Learn(ctx, fixtureOps(t, c, Spam, Ham)); err != nil {
		t.Fatal(err)
	}
	r, err := readRefit(ctx, st, maxFitMessages, keepFeatureMessages)
	if err != nil || len(r.ex) == 0 {
		t.Fatalf("read %d messages, %v", len(r.ex), err)
	}
	stop, cancel := context.WithCancel(ctx)
	cancel()
	m, err := r.fitAndStore(stop)
	if !errors.Is(err, context.Canceled) || m != nil {
		t.Fatalf("fit after the context ended: model %v, error %v; want context.Canceled", m != nil, err)
	}
	if got, id, err := StoredModel(ctx, st); err != nil || got != nil || id != "" {
		t.Errorf("stored model %v, id %q, %v; want none", got != nil, id, err)
	}
	if _, err := fitNgram(stop, r.ex); !errors.Is(err, context.Canceled) {
		t.Errorf("fitNgram: %v, want context.Canceled", err)
	}
}

// fittedOn is the number of messages m was fitted on, 0 for no model.
func fittedOn(m *NgramModel) int {
	if m == nil {
		return 0
	}
	return m.Spam + m.Ham
}

// A fit over more learned messages than it may hold takes those of lowest
// digest, exactly that many, whatever order they were learned in, and
// checks the features of all of them.
func TestRefitSample(t *testing.T) {
	ctx := context.Background()
	st, c := newBoltClassifier(t, Params{})
	ops := fixtureOps(t, c, Spam, Ham)
	if _, err := c.Learn(ctx, ops); err != nil {
		t.Fatal(err)
	}
	var digests []Digest
	class := map[Digest]bool{}
	for _, op := range ops {
		digests = append(digests, op.Digest)
		class[op.Digest] = op.Class == Spam
	}
	slices.SortFunc(digests, func(a, b Digest) int { return bytes.Compare(a[:], b[:]) })
	for _, most := range []int{0, 1, 7, len(ops) - 1, len(ops), len(ops) + 5} {
		r, err := readRefit(ctx, st, most, most)
		if err != nil {
			t.Fatal(err)
		}
		var got []Digest
		for _, e := range r.ex {
			got = append(got, e.Digest)
			if e.Spam != class[e.Digest] || len(e.Encoded) == 0 {
				t.Errorf("most %d: %s read as spam=%v with %d bytes of features", most, e.Digest, e.Spam, len(e.Encoded))
			}
		}
		slices.SortFunc(got, func(a, b Digest) int { return bytes.Compare(a[:], b[:]) })
		if want := digests[:min(most, len(digests))]; !slices.Equal(got, want) {
			t.Errorf("most %d: sampled %d messages %v, want the %d of lowest digest %v", most, len(got), got, len(want), want)
		}
	}
	// The same messages learned in the reverse order: the same sample,
	// so the same model.
	st2, c2 := newBoltClassifier(t, Params{})
	rev := slices.Clone(ops)
	slices.Reverse(rev)
	for _, op := range rev {
		if _, err := c2.Learn(ctx, []LearnOp{op}); err != nil {
			t.Fatal(err)
		}
	}
	fit := func(s Store) []byte {
		r, err := readRefit(ctx, s, 9, 9)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := FitNgram(r.ex).MarshalBinary()
		return b
	}
	if !bytes.Equal(fit(st), fit(st2)) {
		t.Error("learning order changed the model fitted on a sample")
	}
	// A message out of the sample with damaged features still fails the
	// fit: every message is checked.
	path := st.Path()
	st.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	last := digests[len(digests)-1]
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDigests).Put(last[:], digestValue(Spam, []byte{0xff, 0xff, 0xff}))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	st, err = OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := readRefit(ctx, st, 1, 1); err == nil || !strings.Contains(err.Error(), last.String()) {
		t.Errorf("damaged features out of the sample: %v, want an error naming %s", err, last)
	}
}

// A refit drops the features of the learned messages beyond the keep of
// lowest digest, and of no other: the digests stay learned (learning one
// again is a no-op, unlearning it works), the model is the one fitted on
// the sample before the drop, and the next refit fits the same model,
// with the same id, and drops nothing. With small bounds, most 3 and
// keep 5, over the fixtures (at least 20 messages), on both stores.
func TestRefitDropsFeatures(t *testing.T) {
	onBothStores(t, "dropfeatures", testRefitDropsFeatures)
}

func testRefitDropsFeatures(t *testing.T, st Store) {
	const most, keep = 3, 5
	ctx := context.Background()
	c, err := NewForStore(ctx, st, Params{})
	if err != nil {
		t.Fatal(err)
	}
	ops := fixtureOps(t, c, Spam, Ham)
	if _, err := c.Learn(ctx, ops); err != nil {
		t.Fatal(err)
	}
	digests, op := byDigest(ops)

	// The model of the sample, fitted before anything is dropped.
	before, err := readRefit(ctx, st, most, keep)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(before.drop, digests[keep:]) {
		t.Errorf("to drop: %v, want the %d above the %d of lowest digest: %v", before.drop, len(digests)-keep, keep, digests[keep:])
	}
	wantBlob, _ := FitNgram(before.ex).MarshalBinary()

	m, err := refitBounded(ctx, st, most, keep)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := m.MarshalBinary(); !bytes.Equal(b, wantBlob) {
		t.Error("the refit that dropped returned another model than the sample's")
	}
	_, id, err := StoredModel(ctx, st)
	if err != nil || id != modelID(wantBlob) {
		t.Fatalf("stored model id %s, %v; want the sample's, %s", id, err, modelID(wantBlob))
	}
	gen := checkKeptFeatures(t, st, digests, op, keep)
	// An export moves the digests without features as they are: imported
	// into a new store, it exports the same.
	var exp bytes.Buffer
	if err := Export(ctx, st, &exp); err != nil {
		t.Fatal(err)
	}
	moved, _ := newBoltClassifier(t, Params{})
	if _, err := Import(ctx, moved, bytes.NewReader(exp.Bytes())); err != nil {
		t.Fatal(err)
	}
	var exp2 bytes.Buffer
	if err := Export(ctx, moved, &exp2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(exp.Bytes(), exp2.Bytes()) {
		t.Error("export of the store imported from an export after the drop differs from it")
	}
	if ms, err := moved.Stats(ctx); err != nil || ms.Digests != len(ops) || ms.Features != keep {
		t.Errorf("imported store: %d digests, %d with features, %v; want %d, %d", ms.Digests, ms.Features, err, len(ops), keep)
	}

	// The drop raised the learn generation past the model's. The next
	// refit fits the same model, stores it under the same id (so no
	// classifier reads it again), and changes nothing else: no refit
	// after it has anything to do either.
	m2, err := refitBounded(ctx, st, most, keep)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := m2.MarshalBinary(); !bytes.Equal(b, wantBlob) {
		t.Error("the refit after the drop fitted another model")
	}
	if _, id2, err := StoredModel(ctx, st); err != nil || id2 != id {
		t.Errorf("stored model id %s after the next refit, %v; want %s, unchanged", id2, err, id)
	}
	if g, _ := st.WalkLearned(ctx, func(DigestClass) error { return nil }); g != gen {
		t.Errorf("the refit after the drop moved the learn generation from %d to %d: it dropped again", gen, g)
	}

	// A message whose features were dropped is still learned: learning
	// it again is a no-op (and brings its features back, for the next
	// refit to drop), unlearning it removes it and its counts.
	last := op[digests[len(digests)-1]]
	if out, err := c.Learn(ctx, []LearnOp{last}); err != nil || out[0] != AlreadyLearned {
		t.Errorf("learn a message without its features again: %v, %v; want already learned", out, err)
	}
	un := last
	un.Unlearn = true
	if out, err := c.Learn(ctx, []LearnOp{un}); err != nil || out[0] != Unlearned {
		t.Errorf("unlearn a message without its features: %v, %v; want unlearned", out, err)
	}
	// Unlearning a message of the sample: the next of lowest digest
	// still has its features, and the sample stays full.
	first := op[digests[0]]
	first.Unlearn = true
	if out, err := c.Learn(ctx, []LearnOp{first}); err != nil || out[0] != Unlearned {
		t.Errorf("unlearn a message of the sample: %v, %v; want unlearned", out, err)
	}
	var spam, ham uint32
	for _, d := range digests[1 : len(digests)-1] {
		if op[d].Class == Spam {
			spam++
		} else {
			ham++
		}
	}
	stats, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Totals != (Totals{Spam: spam, Ham: ham}) || stats.Digests != len(ops)-2 || stats.Features != keep-1 {
		t.Errorf("after unlearning two: %+v, %d digests, %d with features; want %d spam %d ham, %d, %d",
			stats.Totals, stats.Digests, stats.Features, spam, ham, len(ops)-2, keep-1)
	}
	m3, err := refitBounded(ctx, st, most, keep)
	if err != nil {
		t.Fatal(err)
	}
	if n := fittedOn(m3); n != most {
		t.Errorf("refit after unlearning a message of the sample: fitted on %d, want a full sample of %d", n, most)
	}
}

// A refit whose model is not stored, because a refit that read later
// stored its own, drops no features: messages unlearned in between may
// have brought some of what it would drop within the bound the later
// refit keeps. Most 3, keep 5, over the fixtures.
func TestRefitNotStoredDropsNothing(t *testing.T) {
	const most, keep = 3, 5
	ctx := context.Background()
	st, c := newBoltClassifier(t, Params{})
	ops := fixtureOps(t, c, Spam, Ham)
	if _, err := c.Learn(ctx, ops); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(ops, func(a, b LearnOp) int { return bytes.Compare(a.Digest[:], b.Digest[:]) })
	// The first refit reads: it would drop from the 6th of lowest digest on.
	first, err := readRefit(ctx, st, most, keep)
	if err != nil {
		t.Fatal(err)
	}
	// Meanwhile two messages of the sample are unlearned, and a second
	// refit reads, stores its model, and keeps the 6th and 7th.
	var un []LearnOp
	for _, op := range ops[:2] {
		op.Unlearn = true
		un = append(un, op)
	}
	if _, err := c.Learn(ctx, un); err != nil {
		t.Fatal(err)
	}
	if _, err := refitBounded(ctx, st, most, keep); err != nil {
		t.Fatal(err)
	}
	// The first refit's model is not stored, and it must not drop.
	if _, err := first.fitAndStore(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[Digest][]byte{}
	if err := st.WalkDigests(ctx, func(d DigestClass) error { got[d.Digest] = d.Features; return nil }); err != nil {
		t.Fatal(err)
	}
	for i, op := range ops[2:] {
		kept := i < keep
		if has := got[op.Digest] != nil; has != kept {
			t.Errorf("digest %s, %d of lowest digest after the unlearning: features kept %v, want %v", op.Digest, i+1, has, kept)
		}
	}
}

// dropFailStore is a store whose DropFeatures fails, after cancelling the
// refit's context if cancel is set (a signal to "sluice train").
type dropFailStore struct {
	Store
	cancel context.CancelFunc
}

func (s dropFailStore) DropFeatures(ctx context.Context, _ []Digest) (int, error) {
	if s.cancel != nil {
		s.cancel()
		return 0, ctx.Err()
	}
	return 0, errors.New("store down")
}

// A drop that fails leaves the model stored and fails the refit, saying
// so; one stopped by the refit's context (a signal) is no failure: the
// model is in, and the next refit drops the rest.
func TestRefitDropFails(t *testing.T) {
	ctx := context.Background()
	st, c := newBoltClassifier(t, Params{})
	if _, err := c.Learn(ctx, fixtureOps(t, c, Spam, Ham)); err != nil {
		t.Fatal(err)
	}
	m, err := refitBounded(ctx, dropFailStore{Store: st}, 3, 5)
	if err == nil || !strings.Contains(err.Error(), "model stored") || !strings.Contains(err.Error(), "store down") {
		t.Errorf("refit with a failing drop: %v, %v; want an error saying the model is stored", m, err)
	}
	if got, _, err := StoredModel(ctx, st); err != nil || fittedOn(got) != 3 {
		t.Errorf("stored model of %d messages, %v; want the refit's, of 3", fittedOn(got), err)
	}
	stop, cancel := context.WithCancel(ctx)
	defer cancel()
	if m, err := refitBounded(stop, dropFailStore{Store: st, cancel: cancel}, 4, 5); err != nil || fittedOn(m) != 4 {
		t.Errorf("refit with a drop stopped by its context: model of %d messages, %v; want the model of 4 and no error", fittedOn(m), err)
	}
}

// A model an earlier version fitted on the logistic loss ("ngr1 ") is
// read and scored at the scale it was fitted for until a refit replaces
// it; one of this version ("ngr2 ") at ngramScale. Both write back as
// they were read.
func TestNgramModelLogisticFormat(t *testing.T) {
	m := &NgramModel{w: make([]float32, 1<<ngramBits), Spam: 3, Ham: 4}
	m.w[7], m.w[9] = 0.5, -0.25
	f := []uint32{7, 9}
	blob, _ := m.MarshalBinary()
	if string(blob[:len(ngramMagic)]) != "ngr2 " {
		t.Fatalf("new model written as %q", blob[:len(ngramMagic)])
	}
	old := slices.Clone(blob)
	copy(old, "ngr1 ")
	for _, tc := range []struct {
		blob []byte
		want float64
	}{{blob, 3.0 * 0.25}, {old, 2.0 * 0.25}} {
		var got NgramModel
		if err := got.UnmarshalBinary(tc.blob); err != nil {
			t.Fatalf("%q: %v", tc.blob[:5], err)
		}
		if lo := got.LogOdds(f); lo != tc.want || got.Spam != 3 || got.Ham != 4 {
			t.Errorf("%q: log-odds %v, fitted on %d/%d; want %v, 3/4", tc.blob[:5], lo, got.Spam, got.Ham, tc.want)
		}
		again, _ := got.MarshalBinary()
		if !bytes.Equal(again, tc.blob) {
			t.Errorf("%q: written back as %q", tc.blob[:5], again[:5])
		}
	}
	bad := slices.Clone(blob)
	copy(bad, "ngr3 ")
	var got NgramModel
	if err := got.UnmarshalBinary(bad); err == nil {
		t.Error("a model of an unknown format was read")
	}
}
