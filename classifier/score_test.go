package classifier

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestChi2LogTailsValues(t *testing.T) {
	tests := []struct {
		x    float64
		df   int
		want float64 // Q
	}{
		{0, 10, 1},
		{-1, 4, 1},
		{3, 2, math.Exp(-1.5)},
		{6, 4, math.Exp(-3) * (1 + 3)},
		{10, 6, math.Exp(-5) * (1 + 5 + 12.5)},
		{20, 6, math.Exp(-10) * (1 + 10 + 50)},
		{1, 8, math.Exp(-0.5) * (1 + 0.5 + 0.125 + 0.125/6)},
	}
	for _, tc := range tests {
		lnQ, lnP := chi2LogTails(tc.x, tc.df)
		if q := math.Exp(lnQ); math.Abs(q-tc.want) > 1e-12 {
			t.Errorf("Q(%v, %d) = %v, want %v", tc.x, tc.df, q, tc.want)
		}
		if p := math.Exp(lnP); math.Abs(p-(1-tc.want)) > 1e-12 {
			t.Errorf("1-Q(%v, %d) = %v, want %v", tc.x, tc.df, p, 1-tc.want)
		}
	}
	// exp(-1000) underflows; its logarithm does not.
	if lnQ, _ := chi2LogTails(2000, 2); math.Abs(lnQ+1000) > 1e-9 {
		t.Errorf("ln Q(2000, 2) = %v, want -1000", lnQ)
	}
	// Many degrees of freedom: x at the mean gives about one half.
	if lnQ, _ := chi2LogTails(2000, 2000); math.Exp(lnQ) < 0.4 || math.Exp(lnQ) > 0.6 {
		t.Errorf("Q(2000, 2000) = %v, want about 0.5", math.Exp(lnQ))
	}
}

func TestScore(t *testing.T) {
	p := DefaultParams()
	tot := Totals{Spam: 100, Ham: 100}
	spammy := []Counts{{Spam: 50}, {Spam: 40, Ham: 1}, {Spam: 30}}
	hammy := []Counts{{Ham: 50}, {Ham: 40, Spam: 1}, {Ham: 30}}
	neutral := []Counts{{Spam: 10, Ham: 10}, {}}
	toks := []string{"a", "b", "c"}

	// The token in 40 spam and 1 ham has probability 0.973, just beyond
	// the default min_dev (0.47) of 0.5: all three tokens count.
	r := Score(p, tot, toks, spammy, false)
	if r.Verdict != VerdictSpam || r.Spamicity < 0.99 || r.Used != 3 {
		t.Errorf("spammy: %+v", r)
	}
	r = Score(p, tot, toks, hammy, false)
	if r.Verdict != VerdictHam || r.Spamicity > 0.01 {
		t.Errorf("hammy: %+v", r)
	}
	r = Score(p, tot, toks[:2], neutral, false)
	if r.Verdict != VerdictUnsure || r.Spamicity != 0.5 || r.Used != 0 || r.Reason != "" {
		t.Errorf("neutral: %+v", r)
	}
	// Not enough training: unsure with a reason, whatever the score.
	r = Score(p, Totals{Spam: 3, Ham: 100}, toks, spammy, false)
	if r.Verdict != VerdictUnsure || !strings.Contains(r.Reason, "not enough training") || r.Spamicity < 0.99 {
		t.Errorf("little training: %+v", r)
	}
	// Explain: clues most decisive first.
	r = Score(p, tot, []string{"weak", "strong"}, []Counts{{Spam: 8}, {Spam: 90}}, true)
	if len(r.Clues) != 2 || r.Clues[0].Token != "strong" || r.Clues[0].Spam != 90 {
		t.Errorf("clues %+v, want strong first", r.Clues)
	}
	if got := TokenProb(p, tot, 0, 0); got != p.RobX {
		t.Errorf("unseen token prob %v, want robx", got)
	}
	// Ratios, not raw counts: a token in 10% of 1000 ham and 10% of 100
	// spam is neutral.
	if got := TokenProb(p, Totals{Spam: 100, Ham: 1000}, 10, 100); math.Abs(got-0.5) > 0.01 {
		t.Errorf("equal frequencies: %v, want 0.5", got)
	}
}

func TestParamsValidate(t *testing.T) {
	if err := (Params{}).Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	bad := []Params{{RobX: 1.5}, {MinDev: 0.6}, {SpamCutoff: 0.3, HamCutoff: 0.4}, {RobS: -1}}
	for _, p := range bad {
		if err := p.Validate(); err == nil {
			t.Errorf("%+v: no error", p)
		}
	}
}

// TestClassifierTrainClassify trains on the fixture corpus through the
// public API and checks verdicts, outcomes and explanations.
func TestClassifierTrainClassify(t *testing.T) {
	ctx := context.Background()
	st, err := OpenBolt(filepath.Join(t.TempDir(), "db"), BoltOptions{NoSync: true, LockTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := NewForStore(ctx, st, Params{})
	if err != nil {
		t.Fatal(err)
	}
	fix := filepath.Join("..", "testdata", "classifier")
	res, err := c.Classify(ctx, bytes.NewReader(readFixture(t, "html.eml")))
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != VerdictUnsure || res.Reason == "" {
		t.Errorf("untrained: %+v, want unsure with a reason", res)
	}
	ops := fixtureOps(t, c, Spam, Ham)
	out, err := c.Learn(ctx, ops)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out {
		if o != Learned {
			t.Fatalf("op %d: %v", i, o)
		}
	}
	for _, tc := range []struct {
		file string
		want Verdict
	}{{"spam-0.eml", VerdictSpam}, {"spam-3.eml", VerdictSpam}, {"ham-1.eml", VerdictHam}, {"ham-4.eml", VerdictHam}} {
		raw, err := os.ReadFile(filepath.Join(fix, "check", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Explain(ctx, bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if res.Verdict != tc.want || res.Reason != "" || len(res.Clues) == 0 {
			t.Errorf("%s: %v %.4f reason %q clues %d, want %v", tc.file, res.Verdict, res.Spamicity, res.Reason, len(res.Clues), tc.want)
		}
	}
	// A spam fixture trained again: no-op; as ham: moved; unlearned.
	raw, _ := os.ReadFile(filepath.Join(fix, "train", "spam", "00.eml"))
	for _, step := range []struct {
		class   Class
		unlearn bool
		want    Outcome
	}{{Spam, false, AlreadyLearned}, {Ham, false, Moved}, {Ham, true, Unlearned}, {Ham, true, NotLearned}} {
		var o Outcome
		if step.unlearn {
			o, err = c.Untrain(ctx, bytes.NewReader(raw), step.class)
		} else {
			o, err = c.Train(ctx, bytes.NewReader(raw), step.class)
		}
		if err != nil || o != step.want {
			t.Errorf("train %v unlearn=%v: %v %v, want %v", step.class, step.unlearn, o, err, step.want)
		}
	}
	tot, _, err := st.Lookup(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tot != (Totals{Spam: 24, Ham: 25}) {
		t.Errorf("totals %+v, want 24 spam 25 ham", tot)
	}
	if _, err := NewForStore(ctx, st, Params{Limits: TokenizerOptions{Dialect: DialectBogofilter}}); err == nil {
		t.Error("bogofilter dialect on a sluice store: no error")
	}
}

// Q and 1-Q from chi2LogTails add up to 1 on both sides of the mean, and
// stay finite where one of them underflows.
func TestChi2LogTails(t *testing.T) {
	for _, df := range []int{2, 10, 60, 400} {
		for _, x := range []float64{0.5, 3, 10, 40, 80, 300, 500} {
			lnQ, lnP := chi2LogTails(x, df)
			if s := math.Exp(lnQ) + math.Exp(lnP); math.Abs(s-1) > 1e-12 {
				t.Errorf("x=%v df=%d: Q + (1-Q) = %v", x, df, s)
			}
		}
	}
	// Far in the upper tail Q underflows but its logarithm does not.
	lnQ, lnP := chi2LogTails(5000, 10)
	if lnQ > -2000 || lnQ < -3000 || lnP != 0 {
		t.Errorf("x=5000 df=10: lnQ=%v lnP=%v", lnQ, lnP)
	}
	// Far in the lower tail 1-Q underflows likewise.
	lnQ, lnP = chi2LogTails(0.001, 400)
	if lnQ != 0 || lnP > -1000 {
		t.Errorf("x=0.001 df=400: lnQ=%v lnP=%v", lnQ, lnP)
	}
}

// LogOdds is the log-odds of Spamicity where Spamicity is not rounded, and
// keeps ordering messages whose Spamicity is exactly 1 or 0.
func TestScoreLogOdds(t *testing.T) {
	p := DefaultParams()
	tot := Totals{Spam: 1000, Ham: 1000}
	counts := func(spam, ham, n int) []Counts {
		var c []Counts
		for range n {
			c = append(c, Counts{Spam: uint32(spam), Ham: uint32(ham)})
		}
		return c
	}
	toks := func(n int) []string { return make([]string, n) }
	// Moderate evidence: spamicity strictly inside (0,1).
	for _, c := range [][]Counts{append(counts(30, 1, 2), counts(1, 30, 2)...), append(counts(40, 1, 3), counts(1, 30, 1)...)} {
		r := Score(p, tot, toks(len(c)), c, false)
		want := math.Log(r.Spamicity / (1 - r.Spamicity))
		if r.Spamicity <= 0 || r.Spamicity >= 1 || math.Abs(r.LogOdds-want) > 1e-6*math.Max(1, math.Abs(want)) {
			t.Errorf("spamicity %v: LogOdds %v, want %v", r.Spamicity, r.LogOdds, want)
		}
	}
	// Strong evidence: more of it still ranks higher after Spamicity has
	// reached exactly 1 (or 0 for ham).
	prevSpam, prevHam := 0.0, 0.0
	for _, n := range []int{20, 40, 80, 160} {
		s := Score(p, tot, toks(n), counts(500, 1, n), false)
		h := Score(p, tot, toks(n), counts(1, 500, n), false)
		if s.LogOdds <= prevSpam || h.LogOdds >= prevHam || math.IsInf(s.LogOdds, 0) || math.IsInf(h.LogOdds, 0) {
			t.Errorf("%d tokens: spam LogOdds %v (before %v), ham %v (before %v)", n, s.LogOdds, prevSpam, h.LogOdds, prevHam)
		}
		prevSpam, prevHam = s.LogOdds, h.LogOdds
		if n == 160 && (s.Spamicity != 1 || h.Spamicity > 1e-100) {
			t.Errorf("160 tokens: spamicity %v and %v, expected 1 (rounded) and about 0", s.Spamicity, h.Spamicity)
		}
	}
	if r := Score(p, tot, nil, nil, false); r.LogOdds != 0 || r.Spamicity != 0.5 {
		t.Errorf("no tokens: %+v", r)
	}
}

// TestScoreSplit checks CombineSplit against its definition, built from
// CombineFisher scores of the whole message and of its two parts.
func TestScoreSplit(t *testing.T) {
	tot := Totals{Spam: 500, Ham: 500}
	fisher := DefaultParams()
	fisher.Combine = CombineFisher
	split := DefaultParams()
	if split.Combine != CombineSplit {
		t.Fatalf("default combine %q, want %q", split.Combine, CombineSplit)
	}
	// A clear ham header (a list's Received chain and List-Id), a long
	// body of spammy words, and a neutral token.
	var toks []string
	var counts []Counts
	var hToks, bToks []string
	var hCounts, bCounts []Counts
	add := func(tok string, c Counts) {
		toks, counts = append(toks, tok), append(counts, c)
		if HeaderToken(tok) {
			hToks, hCounts = append(hToks, tok), append(hCounts, c)
		} else {
			bToks, bCounts = append(bToks, tok), append(bCounts, c)
		}
	}
	for i := range 4 {
		add(fmt.Sprintf("rcvd:relay%d.example.org", i), Counts{Ham: 200})
	}
	add("list:users.example.org", Counts{Ham: 150, Spam: 1})
	for i := range 40 {
		add(fmt.Sprintf("offer%d", i), Counts{Spam: 60, Ham: 1})
	}
	add("the", Counts{Spam: 400, Ham: 400})

	all := Score(fisher, tot, toks, counts, false)
	h := Score(fisher, tot, hToks, hCounts, false)
	b := Score(fisher, tot, bToks, bCounts, false)
	if h.Used != 5 || b.Used != 40 || all.Used != 45 {
		t.Fatalf("used: all %d, header %d, body %d", all.Used, h.Used, b.Used)
	}
	got := Score(split, tot, toks, counts, false)
	want := (all.LogOdds + (h.LogOdds+b.LogOdds)/2) / 2
	if math.Abs(got.LogOdds-want) > 1e-9*math.Max(1, math.Abs(want)) {
		t.Errorf("split LogOdds %v, want %v (all %v, header %v, body %v)", got.LogOdds, want, all.LogOdds, h.LogOdds, b.LogOdds)
	}
	if wantS := 1 / (1 + math.Exp(-want)); math.Abs(got.Spamicity-wantS) > 1e-12 {
		t.Errorf("split spamicity %v, want %v", got.Spamicity, wantS)
	}
	// Header and body disagree, and the body's evidence is the stronger:
	// one test over everything drifts towards the middle, the split score
	// follows the stronger part.
	if !(b.LogOdds > -h.LogOdds && h.LogOdds < 0) {
		t.Fatalf("fixture: header %v, body %v; want a clear ham header and a stronger spam body", h.LogOdds, b.LogOdds)
	}
	if !(got.LogOdds > all.LogOdds) {
		t.Errorf("split %v not above fisher %v", got.LogOdds, all.LogOdds)
	}
	if got.Used != all.Used {
		t.Errorf("split used %d, fisher %d", got.Used, all.Used)
	}
	// Explain reports the parts as scored alone.
	ex := Score(split, tot, toks, counts, true)
	if len(ex.Parts) != 2 || ex.Parts[0] != (Part{"header", h.Used, h.Spamicity}) || ex.Parts[1] != (Part{"body", b.Used, b.Spamicity}) {
		t.Errorf("parts %+v, want header %v/%d and body %v/%d", ex.Parts, h.Spamicity, h.Used, b.Spamicity, b.Used)
	}
	if ex.LogOdds != got.LogOdds || len(got.Parts) != 0 {
		t.Errorf("explain changed the score (%v, %v) or parts without explain %+v", ex.LogOdds, got.LogOdds, got.Parts)
	}
	// With one part empty, split is the whole-message score.
	onlyBody := Score(split, tot, bToks, bCounts, false)
	if onlyBody.LogOdds != b.LogOdds || onlyBody.Spamicity != b.Spamicity {
		t.Errorf("body only: split %+v, fisher %+v", onlyBody, b)
	}
}

// TestHeaderToken keeps HeaderToken in step with the tokenizer's header
// prefixes: every prefix the tokenizer gives a header field counts as
// header, and the body's own prefixes do not.
func TestHeaderToken(t *testing.T) {
	for _, name := range []string{"subject", "from", "sender", "reply-to", "to", "cc", "return-path", "received",
		"message-id", "x-mailer", "user-agent", "x-mimeole", "list-id", "list-unsubscribe", "precedence",
		"x-priority", "importance", "organization"} {
		prefix, ok := headerPrefix(name)
		if !ok {
			t.Errorf("%s: no header prefix", name)
			continue
		}
		if !HeaderToken(prefix + "word") {
			t.Errorf("%s: %q is not a header token", name, prefix+"word")
		}
	}
	for _, tok := range []string{"hdr:x-mailing-list", "subj:free", "to:example.org", "rnet:192.0", "date:+0200", "ord:0123abcd"} {
		if !HeaderToken(tok) {
			t.Errorf("%q: not a header token", tok)
		}
	}
	for _, tok := range []string{"click here", "url:example.org", "ctype:text/html", "cte:base64", "charset:big5",
		"ext:pdf", "mime:broken", "mailto:remove", "http", "to", ":x", "a:b"} {
		if HeaderToken(tok) {
			t.Errorf("%q: counted as a header token", tok)
		}
	}
	// The tokenizer's own header tokens, from a message.
	m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte("Subject: cheap pills\r\nX-Odd: 1\r\n\r\nbody words here\r\n"))
	var hdr, body int
	for _, tok := range m.Tokens {
		if HeaderToken(tok) {
			hdr++
		} else {
			body++
		}
	}
	if hdr < 3 || body < 3 {
		t.Errorf("tokens %q: %d header, %d body", m.Tokens, hdr, body)
	}
}

// A robs small enough to pass Validate makes a token seen in one class
// exactly 0 or 1: the score stays a number.
func TestScoreTinyRobS(t *testing.T) {
	p := Params{RobS: 1e-17, MinSpam: -1, MinHam: -1}
	if err := p.Validate(); err != nil {
		t.Fatalf("robs 1e-17 refused: %v", err)
	}
	r := Score(p, Totals{Spam: 10, Ham: 10}, []string{"a", "b"}, []Counts{{Spam: 1}, {Ham: 3}}, false)
	if math.IsNaN(r.LogOdds) || math.IsNaN(r.Spamicity) {
		t.Errorf("LogOdds %v, Spamicity %v", r.LogOdds, r.Spamicity)
	}
	r = Score(p, Totals{Spam: 10, Ham: 10}, []string{"a", "b"}, []Counts{{Spam: 1}, {Spam: 3}}, false)
	if r.Verdict != VerdictSpam {
		t.Errorf("two spam tokens: %+v", r)
	}
}

// The classifier scores tokens in the order they occur, not sorted (see
// Classifier.Classify): the same tokens, the same counts, and the same
// result but for the last bits of the sums, from the in-memory index and
// from the file alike.
func TestClassifyUnsortedTokens(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	fix := filepath.Join("..", "testdata", "classifier")
	var stores []*BoltStore
	for _, o := range []BoltOptions{{IndexAfter: 1}, {IndexTokens: -1}} {
		o.NoSync, o.LockTimeout = true, 5*time.Second
		st, err := OpenBolt(path, o)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		stores = append(stores, st)
	}
	c := New(stores[0], Params{MinSpam: -1, MinHam: -1})
	ops := fixtureOps(t, c, Spam, Ham)
	if len(ops) < 20 {
		t.Fatalf("%d training fixtures", len(ops))
	}
	if _, err := c.Learn(ctx, ops); err != nil {
		t.Fatal(err)
	}
	if err := stores[0].BuildIndex(ctx); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(fix, "check", "*.eml"))
	if len(files) < 5 {
		t.Fatalf("%d check fixtures", len(files))
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sorted := c.tok.TokenizeBytes(raw)
		plain := c.tok.tokenize(raw, false)
		if slices.IsSorted(plain.Tokens) {
			t.Errorf("%s: tokens in message order are sorted; the test shows nothing", f)
		}
		if got := slices.Sorted(slices.Values(plain.Tokens)); !slices.Equal(got, sorted.Tokens) {
			t.Errorf("%s: tokens in message order differ from the sorted tokens", f)
		}
		if a, b := slices.Sorted(slices.Values(plain.Features)), slices.Sorted(slices.Values(sorted.Features)); !slices.Equal(a, b) {
			t.Errorf("%s: features differ", f)
		}
		want, err := c.ClassifyMessage(ctx, sorted, false)
		if err != nil {
			t.Fatal(err)
		}
		for i, st := range stores {
			// Counts come back in the order asked, from the index
			// and from the file.
			_, wantCounts, err := st.Lookup(ctx, sorted.Tokens)
			if err != nil {
				t.Fatal(err)
			}
			_, counts, err := st.Lookup(ctx, plain.Tokens)
			if err != nil {
				t.Fatal(err)
			}
			known := 0
			for k, tok := range plain.Tokens {
				j, _ := slices.BinarySearch(sorted.Tokens, tok)
				if counts[k] != wantCounts[j] {
					t.Errorf("%s, store %d: %q: counts %+v, want %+v", f, i, tok, counts[k], wantCounts[j])
				}
				if counts[k] != (Counts{}) {
					known++
				}
			}
			if known == 0 {
				t.Errorf("%s, store %d: no token known", f, i)
			}
			got, err := New(st, Params{MinSpam: -1, MinHam: -1}).ClassifyBytes(ctx, raw, false)
			if err != nil {
				t.Fatal(err)
			}
			if got.Verdict != want.Verdict || got.Used != want.Used || got.Tokens != want.Tokens ||
				math.Abs(got.LogOdds-want.LogOdds) > 1e-9*max(1, math.Abs(want.LogOdds)) {
				t.Errorf("%s, store %d: %v %v used %d of %d, want %v %v used %d of %d", f, i,
					got.Verdict, got.LogOdds, got.Used, got.Tokens, want.Verdict, want.LogOdds, want.Used, want.Tokens)
			}
		}
	}
}

// TestClassifyBytesConcurrent checks that ClassifyBytes, which tokenises
// into scratch slices kept with the pooled walker, gives each of several
// goroutines its own message's result: the same verdict, score and clues
// as scoring a tokenised copy of that message on its own.
func TestClassifyBytesConcurrent(t *testing.T) {
	ctx := context.Background()
	st, err := OpenBolt(filepath.Join(t.TempDir(), "db"), BoltOptions{IndexAfter: 1, NoSync: true, LockTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := New(st, Params{MinSpam: -1, MinHam: -1})
	if _, err := c.Learn(ctx, fixtureOps(t, c, Spam, Ham)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refit(ctx); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "classifier", "check", "*.eml"))
	if len(files) < 5 {
		t.Fatalf("%d check fixtures", len(files))
	}
	var raws [][]byte
	var want []Result
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.ClassifyMessage(ctx, c.tok.TokenizeBytes(raw), true)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Ngram {
			t.Fatalf("%s: no n-gram score; the test would not cover the features", f)
		}
		raws, want = append(raws, raw), append(want, res)
	}
	same := func(got, want Result) bool {
		if got.Verdict != want.Verdict || got.Used != want.Used || got.Tokens != want.Tokens ||
			math.Abs(got.LogOdds-want.LogOdds) > 1e-9*max(1, math.Abs(want.LogOdds)) ||
			len(got.Clues) != len(want.Clues) {
			return false
		}
		g := slices.Sorted(func(yield func(string) bool) {
			for _, cl := range got.Clues {
				yield(cl.Token)
			}
		})
		w := slices.Sorted(func(yield func(string) bool) {
			for _, cl := range want.Clues {
				yield(cl.Token)
			}
		})
		return slices.Equal(g, w)
	}
	const workers, rounds = 4, 20
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			var kept []Result // earlier results must stay intact
			for r := range rounds {
				for k := range raws {
					i := (k + w*3 + r) % len(raws)
					got, err := c.ClassifyBytes(ctx, raws[i], true)
					if err != nil {
						errs <- err
						return
					}
					if !same(got, want[i]) {
						errs <- fmt.Errorf("worker %d, %s: %v %.6f used %d, want %v %.6f used %d",
							w, files[i], got.Verdict, got.LogOdds, got.Used, want[i].Verdict, want[i].LogOdds, want[i].Used)
						return
					}
					if r == 0 {
						kept = append(kept, got)
					}
				}
			}
			for k, got := range kept {
				if i := (k + w*3) % len(raws); !same(got, want[i]) {
					errs <- fmt.Errorf("worker %d, %s: an earlier result changed", w, files[i])
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// A minimum turned off (MinSpam, MinHam negative, as BogofilterParams and
// "min_spam: 0" give) stays off, and so does a HamCutoff of 0 (negative):
// New fills the defaults in, and Classify's Score fills them in again,
// which must not take the 0 that the first pass left for "use the default".
func TestOffMinimumsAndZeroHamCutoffStayOff(t *testing.T) {
	ctx := context.Background()
	st, err := OpenBolt(filepath.Join(t.TempDir(), "db"), BoltOptions{NoSync: true, LockTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b := Batch{Totals: Totals{Spam: 1, Ham: 1}}
	for i := range 20 {
		b.Records = append(b.Records, Record{Token: fmt.Sprintf("casino%d", i), Counts: Counts{Spam: 1, LastSeen: 20240101}})
	}
	if err := st.Add(ctx, b); err != nil {
		t.Fatal(err)
	}
	var msg strings.Builder
	msg.WriteString("Subject: x\n\n")
	for i := range 20 {
		fmt.Fprintf(&msg, "casino%d ", i)
	}
	msg.WriteString("\n")

	p := BogofilterParams()
	p.Limits.Dialect = DialectSluice
	res, err := New(st, p).ClassifyBytes(ctx, []byte(msg.String()), false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Reason != "" || res.Verdict != VerdictSpam {
		t.Errorf("bogofilter's parameters with 1 spam and 1 ham learned: %s (%.6f), reason %q; want spam, no minimum", res.Verdict, res.Spamicity, res.Reason)
	}
	if got := New(st, p).Params(); got.MinSpam > 0 || got.MinHam > 0 {
		t.Errorf("Params: min_spam %d, min_ham %d; want off", got.MinSpam, got.MinHam)
	}

	// HamCutoff negative: only an exact 0 is ham, never the default 0.1.
	r := Result{Totals: Totals{Spam: 20, Ham: 20}, LogOdds: math.Log(0.05 / 0.95)}
	p = New(st, Params{HamCutoff: -1}).Params()
	r.decide(p.withDefaults())
	if r.Verdict != VerdictUnsure {
		t.Errorf("ham_cutoff 0, spamicity 0.05: %s, want unsure", r.Verdict)
	}
}
