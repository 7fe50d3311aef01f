package main

import (
	"cmp"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"

	"github.com/sluice-mail/sluice/classifier"
)

// Cutoffs are chosen false-positive first: a lost ham is far worse than a
// spam let through, so among the cutoffs of a grid point only those with
// the fewest false positives (zero, if any cutoff gets there) count, and
// among them the lowest cost of false negatives and unsure verdicts wins.
// A spam let through costs more than an unsure verdict, which a human or a
// later rule handles.
const (
	costFN     = 5
	costUnsure = 1
)

// Candidate values searched by crossValidate.
var (
	gridRobX    = []float64{0.4, 0.45, 0.5, 0.52, 0.55, 0.6, 0.65}
	gridRobS    = []float64{0.0178, 0.05, 0.1, 0.2, 0.3, 0.5, 1}
	gridMinDev  = []float64{0.1, 0.2, 0.3, 0.35, 0.375, 0.4, 0.425, 0.45, 0.46, 0.47, 0.48, 0.49, 0.495}
	gridSpamCut = []float64{0.8, 0.85, 0.9, 0.95, 0.975, 0.99, 0.995, 0.999}
	gridHamCut  = []float64{0.05, 0.1, 0.2, 0.3, 0.4, 0.45, 0.5}
)

// cvMessage is a training message with its out-of-fold token counts.
type cvMessage struct {
	spam   bool
	tokens []string
	counts []classifier.Counts
	totals classifier.Totals
	// ngram is the log-odds of the n-gram model fitted on the same
	// folds as the counts; hasNgram says whether the model is averaged
	// in (as the classifier would: see classifier.NgramUsable).
	ngram    float64
	hasNgram bool
}

// score scores m with p as the classifier would.
func (m cvMessage) score(p classifier.Params, explain bool) classifier.Result {
	r := classifier.Score(p, m.totals, m.tokens, m.counts, explain)
	if m.hasNgram && p.Ngram != classifier.NgramOff {
		r = classifier.BlendNgram(p, r, m.ngram, 0, explain)
	}
	return r
}

// cvPoint is the outcome of one grid point.
type cvPoint struct {
	p            classifier.Params
	fp, fn, uns  int
	cost         int
	auc          float64
	scores       []scored
	spam, nTotal int
}

// better orders grid points: fewer false positives, then lower cost, then
// higher AUC.
func (a cvPoint) better(b cvPoint) bool {
	return cmp.Or(cmp.Compare(a.fp, b.fp), cmp.Compare(a.cost, b.cost), cmp.Compare(b.auc, a.auc)) < 0
}

// targets are the targets for sluice relative to bogofilter, as
// rates measured by putting bogofilter through the same cross-validation:
// no false positive, no more false negatives than bogofilter, at most half
// its unsure verdicts. The zero value sets no targets.
type targets struct {
	set           bool
	fnRate, unsRt float64 // largest allowed share of messages
	// fnFirst orders the points that meet the targets by their false
	// negatives before their cost: the issue asks for as few false
	// negatives as bogofilter and caps the unsure verdicts, where the
	// cost trades one against the other.
	fnFirst bool
	// margin, in log-odds, is how far inside its side of a cutoff a
	// message must score for the cutoffs' choice not to count it as
	// misfiled: a ham within margin below the spam cutoff counts as a
	// false positive, a spam within margin above the ham cutoff as a
	// false negative. The cutoffs that just keep every ham of the
	// training folds out of spam sit at the edge of that sample; new
	// mail scattered a little further crosses them. Unsure verdicts are
	// counted at the cutoffs themselves. Zero chooses at the edge.
	margin float64
}

// meets reports whether pt meets the targets.
func (t targets) meets(pt cvPoint) bool {
	n := float64(pt.nTotal)
	return t.set && pt.fp == 0 && float64(pt.fn) <= t.fnRate*n && float64(pt.uns) <= t.unsRt*n
}

// order compares grid points for choosing: with targets, the points that
// meet them come first, and among those the lowest cost; otherwise (and
// among the rest) cvPoint.better.
func (t targets) order(a, b cvPoint) int {
	ma, mb := t.meets(a), t.meets(b)
	switch {
	case ma && !mb:
		return -1
	case mb && !ma:
		return 1
	case ma && mb && t.fnFirst && a.fn != b.fn:
		return cmp.Compare(a.fn, b.fn)
	}
	if a.better(b) {
		return -1
	}
	if b.better(a) {
		return 1
	}
	return 0
}

// targetsThenAUC compares grid points for choosing: the points that meet
// the targets first, among them (and among the rest) the highest AUC,
// then targets.order.
func (t targets) targetsThenAUC(a, b cvPoint) int {
	ma, mb := t.meets(a), t.meets(b)
	switch {
	case ma && !mb:
		return -1
	case mb && !ma:
		return 1
	}
	return cmp.Or(cmp.Compare(b.auc, a.auc), t.order(a, b))
}

// crossValidate picks parameters by 5-fold cross-validation on the training
// set only: every training message is scored against counts learned from
// the other four folds, for each point of a grid of robx, robs and
// min_dev, and among the points whose cutoffs meet the targets
// (see targets.order) the one of the highest AUC wins, with the cutoffs
// that meet them with the fewest false negatives, then the lowest cost.
// Where no point meets the targets, the highest AUC wins. msgs holds the
// scorings of every way of dealing the folds (see cvMessages); false
// positives, false negatives and unsure verdicts are counted over all of
// them, and AUC over all their scores.
//
// Until this way, the highest AUC won whether or not its cutoffs met the
// targets: on one draw of the n-gram fit's order, a point ahead of the
// defaults by 0.0001 (1-AUC)%, well within the fit's noise, had 8.40%
// unsure verdicts on the folds while 36 others met the targets. Nested
// cross-validation (nestedCV) judged the two ways on folds the choice did
// not see: 1 ham let through as spam and 1 spam as ham both, at 2.17%
// unsure verdicts with this way and 2.20% with the earlier one, the same
// mean (1-AUC)% 0.0079. The lowest cost among the points that meet the
// targets let 3 and 2 through, at 1.37%, mean (1-AUC)% 0.0140.
func crossValidate(train []sample, msgs []cvMessage, tg targets) (classifier.Params, error) {
	tg.fnFirst = true
	results := gridSearch(msgs, tg)
	slices.SortFunc(results, tg.targetsThenAUC)
	fmt.Printf("cross-validation on %d training messages (%d spam), dealt into five folds %d ways (%d scorings each), %d grid points; best (highest AUC among the points that meet the targets):\n",
		len(train), countSpam(train), len(msgs)/len(train), len(msgs), len(results))
	if tg.set {
		fmt.Printf("  (cutoffs by the targets from bogofilter's rates on the split's own folds: no false positive, at most %.0f false negatives, at most %.0f unsure; then the fewest false negatives, then cost; %d points meet the targets)\n",
			tg.fnRate*float64(len(msgs)), tg.unsRt*float64(len(msgs)), countFunc(results, tg.meets))
	}
	if tg.margin > 0 {
		fmt.Printf("  (cutoffs chosen %g in log-odds inside: fp and fn below count the ham and spam within that of the cutoffs)\n", tg.margin)
	}
	for _, r := range results[:min(5, len(results))] {
		printPoint(r)
	}
	if tg.margin > 0 {
		fmt.Print("best, counted at its cutoffs:")
		printPoint(evaluateAt(results[0].p, msgs))
	}
	byOrder := slices.Clone(results)
	slices.SortFunc(byOrder, tg.order)
	fmt.Println("by the cutoffs' order alone (fewest false positives, the targets, fewest false negatives, cost):")
	for _, r := range byOrder[:min(3, len(byOrder))] {
		printPoint(r)
	}
	d := evaluate(defaultsFor(), msgs, tg)
	fmt.Print("package defaults, cutoffs chosen: ")
	printPoint(d)
	fmt.Print("package defaults, their cutoffs: ")
	printPoint(evaluateAt(defaultsFor(), msgs))
	chosen := evaluate(results[0].p, msgs, tg)
	if n := len(train); len(msgs) > n {
		fmt.Print("(1-AUC)% of each dealing with these parameters (the split's own folds first):")
		for i := 0; i+n <= len(chosen.scores); i += n {
			fmt.Printf(" %.4f", 100*(1-auc(chosen.scores[i:i+n], func(s scored) float64 { return s.rank })))
		}
		fmt.Println()
	}
	spread(chosen, results[0].p)
	calibration(chosen)
	return results[0].p, nil
}

// calibration reports how sure the chosen parameters' spamicities are:
// the share of spam at or above 0.99 and 0.999, and of ham at or below
// 0.01 and 0.001. The ranking and the verdicts do not show it, but
// auto-learning thresholds (autolearn.spam 0.999, say) and a reader of
// the header do: a model change that ranks better but leaves clear mail
// less sure changes what those thresholds catch.
func calibration(pt cvPoint) {
	var spam, ham, s99, s999, h01, h001 int
	for _, s := range pt.scores {
		if s.spam {
			spam++
			if s.score >= 0.99 {
				s99++
			}
			if s.score >= 0.999 {
				s999++
			}
			continue
		}
		ham++
		if s.score <= 0.01 {
			h01++
		}
		if s.score <= 0.001 {
			h001++
		}
	}
	if spam == 0 || ham == 0 {
		return
	}
	pc := func(n, of int) float64 { return 100 * float64(n) / float64(of) }
	fmt.Printf("how sure: spam at or above 0.99 %.1f%%, 0.999 %.1f%%; ham at or below 0.01 %.1f%%, 0.001 %.1f%%\n",
		pc(s99, spam), pc(s999, spam), pc(h01, ham), pc(h001, ham))
}

// spread shows how much a test set of the size of the split (858
// ham, 359 spam) would vary by chance alone: it draws such sets from the
// cross-validation scores of the chosen parameters and reports percentiles
// of what each would measure. One ham that ranks above a hundred spam moves
// (1-AUC)% of such a set by 0.03.
func spread(pt cvPoint, p classifier.Params) {
	var ham, spam []scored
	for _, s := range pt.scores {
		if s.spam {
			spam = append(spam, s)
		} else {
			ham = append(ham, s)
		}
	}
	const draws, nHam, nSpam = 400, 858, 359
	if len(ham) < nHam || len(spam) < nSpam {
		return
	}
	r := rand.New(rand.NewPCG(1, 2))
	var aucs, fps, uns []float64
	for range draws {
		r.Shuffle(len(ham), func(i, j int) { ham[i], ham[j] = ham[j], ham[i] })
		r.Shuffle(len(spam), func(i, j int) { spam[i], spam[j] = spam[j], spam[i] })
		set := append(slices.Clone(ham[:nHam]), spam[:nSpam]...)
		aucs = append(aucs, 100*(1-auc(set, func(s scored) float64 { return s.rank })))
		fp, u := 0, 0
		for _, s := range set {
			switch {
			case s.score >= p.SpamCutoff:
				if !s.spam {
					fp++
				}
			case s.score > p.HamCutoff:
				u++
			}
		}
		fps = append(fps, float64(fp))
		uns = append(uns, 100*float64(u)/float64(len(set)))
	}
	pct := func(xs []float64, q float64) float64 {
		s := slices.Clone(xs)
		slices.Sort(s)
		return s[int(q*float64(len(s)-1))]
	}
	fmt.Printf("test-sized samples of these cross-validation scores (%d draws of %d ham, %d spam), 5th/50th/95th percentile:\n"+
		"  (1-AUC)%% %.4f / %.4f / %.4f; false positives %.0f / %.0f / %.0f; unsure%% %.2f / %.2f / %.2f\n",
		draws, nHam, nSpam, pct(aucs, 0.05), pct(aucs, 0.5), pct(aucs, 0.95),
		pct(fps, 0.05), pct(fps, 0.5), pct(fps, 0.95), pct(uns, 0.05), pct(uns, 0.5), pct(uns, 0.95))
}

// defaultsFor returns DefaultParams without the training minimums, as the
// cross-validation scores them.
func defaultsFor() classifier.Params {
	p := classifier.DefaultParams()
	p.MinHam, p.MinSpam = -1, -1
	return p
}

func printPoint(r cvPoint) {
	fmt.Printf("  robx=%g robs=%g min_dev=%g spam_cutoff=%g ham_cutoff=%g: fp %d, fn %d, unsure %d (%.2f%%), cost %d, (1-AUC)%% %.4f\n",
		r.p.RobX, r.p.RobS, r.p.MinDev, r.p.SpamCutoff, r.p.HamCutoff, r.fp, r.fn, r.uns,
		100*float64(r.uns)/float64(r.nTotal), r.cost, 100*(1-r.auc))
}

// cvMessages tokenises the training set and gives every message the counts
// of the four folds it is not in. With repeats above 1 it does so again
// for repeats-1 other ways of dealing the messages into five folds (see
// redeal), and returns all of them one after the other: len(train)
// messages for the split's own folds first, then as many for each
// redealing.
//
// One way of dealing is not enough to choose by. The split's own folds
// were used for every decision about the tokenizer and the scoring, and
// on them (1-AUC)% was 0.0135 with the defaults; the four other dealings
// below give 0.0172 to 0.0272 (and others tried up to 0.0471), because a handful of
// messages (a spam rant sent through a web form, a vendor's newsletter
// labelled ham) score very differently depending on which of their
// relatives share their fold. Counting false positives, false negatives
// and unsure verdicts over several dealings chooses for the messages
// rather than for one dealing of them.
func cvMessages(train []sample, repeats int, orderSeed uint64) ([]cvMessage, error) {
	d, err := newCVData(train, orderSeed)
	if err != nil {
		return nil, err
	}
	msgs := d.messages(func(int) bool { return true }, -1)
	for r := 1; r < repeats; r++ {
		dr := countFolds(redeal(train, r), d.toks)
		dr.feats, dr.digests = d.feats, d.digests
		msgs = append(msgs, dr.messages(func(int) bool { return true }, -1)...)
	}
	return msgs, nil
}

// redeal returns the training set dealt into five folds another way,
// number r: by a hash of r and the message's path, so every run deals the
// same way.
func redeal(train []sample, r int) []sample {
	out := slices.Clone(train)
	for i := range out {
		h := sha1.Sum([]byte(strconv.Itoa(r) + "/" + out[i].rel))
		out[i].fold = int(binary.BigEndian.Uint64(h[:8]) % 5)
	}
	return out
}

// shCounts are a token's spam and ham counts.
type shCounts struct{ s, h uint32 }

// cvData holds the tokens of the training set and per-fold counts, from
// which the counts of any set of folds follow.
type cvData struct {
	train   []sample
	toks    [][]string
	feats   [][]uint32          // n-gram features, nil for the bogofilter dialect
	digests []classifier.Digest // as the store learns them
	total   map[string]shCounts
	folds   [5]map[string]shCounts
	foldTot [5]classifier.Totals
	allTot  classifier.Totals
}

// newCVData tokenises the training set. With orderSeed other than 0, the
// digests the n-gram fits see are replaced by others derived from the
// seed: the fit orders its passes by digest, and a change that reorders
// them alone (a field more or less in eight messages' digests did) can
// move the figures by as much as a model change. Comparing changes over a
// few seeds tells the two apart.
func newCVData(train []sample, orderSeed uint64) (*cvData, error) {
	tok := classifier.NewTokenizer(classifier.TokenizerOptions{})
	toks := make([][]string, len(train))
	feats := make([][]uint32, len(train))
	digests := make([]classifier.Digest, len(train))
	err := parallel(len(train), runtime.GOMAXPROCS(0), func(k int) error {
		raw, err := os.ReadFile(train[k].path)
		if err != nil {
			return err
		}
		m := tok.TokenizeBytes(raw)
		// Sorted, as the store keeps them: the fit sums in this order.
		slices.Sort(m.Features)
		toks[k], feats[k] = m.Tokens, m.Features
		digests[k] = classifier.MessageDigest(raw[:min(len(raw), tok.MaxBytes())])
		if orderSeed != 0 {
			digests[k] = reseed(digests[k], orderSeed)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	d := countFolds(train, toks)
	d.feats, d.digests = feats, digests
	return d, nil
}

// reseed returns another digest for d, the same for the same d and seed:
// distinct digests stay distinct (up to SHA-256 collisions).
func reseed(d classifier.Digest, seed uint64) classifier.Digest {
	h := sha256.New()
	h.Write(binary.LittleEndian.AppendUint64(nil, seed))
	h.Write(d[:])
	var out classifier.Digest
	copy(out[:], h.Sum(nil))
	return out
}

// ngramScores returns, for each training message for which keep(fold) is
// true, the log-odds of an n-gram model fitted on the training set minus
// its own fold and minus fold excl (-1: none), in the order of messages.
func (d *cvData) ngramScores(keep func(fold int) bool, excl int) []cvNgram {
	models := map[int]*classifier.NgramModel{}
	for f := range 5 {
		if !keep(f) || f == excl {
			continue
		}
		var ex []classifier.Example
		for k, s := range d.train {
			if s.fold != f && s.fold != excl {
				ex = append(ex, classifier.Example{Digest: d.digests[k], Spam: s.spam, Features: d.feats[k]})
			}
		}
		models[f] = classifier.FitNgram(dedupExamples(ex))
	}
	var out []cvNgram
	for k, s := range d.train {
		if !keep(s.fold) {
			continue
		}
		m := models[s.fold]
		if m == nil || d.feats[k] == nil {
			out = append(out, cvNgram{})
			continue
		}
		out = append(out, cvNgram{m.LogOdds(d.feats[k]), classifier.NgramUsable(defaultsFor(), m.Spam, m.Ham)})
	}
	return out
}

// cvNgram is one message's n-gram log-odds and whether it counts.
type cvNgram struct {
	logOdds float64
	ok      bool
}

// dedupExamples keeps the first example of each digest, as a store learns
// a message once however often it is trained.
func dedupExamples(ex []classifier.Example) []classifier.Example {
	seen := map[classifier.Digest]bool{}
	out := ex[:0:0]
	for _, e := range ex {
		if !seen[e.Digest] {
			seen[e.Digest] = true
			out = append(out, e)
		}
	}
	return out
}

// countFolds adds up the per-fold counts of the tokenised training set.
func countFolds(train []sample, toks [][]string) *cvData {
	d := &cvData{train: train, toks: toks, total: map[string]shCounts{}}
	for i := range d.folds {
		d.folds[i] = map[string]shCounts{}
	}
	for k, s := range train {
		f := d.folds[s.fold]
		for _, t := range d.toks[k] {
			a, b := d.total[t], f[t]
			if s.spam {
				a.s++
				b.s++
			} else {
				a.h++
				b.h++
			}
			d.total[t], f[t] = a, b
		}
		if s.spam {
			d.foldTot[s.fold].Spam++
			d.allTot.Spam++
		} else {
			d.foldTot[s.fold].Ham++
			d.allTot.Ham++
		}
	}
	return d
}

// messages returns the training messages for which keep(fold) is true,
// each with the counts of the training set minus its own fold and minus
// fold excl (-1: none).
func (d *cvData) messages(keep func(fold int) bool, excl int) []cvMessage {
	var msgs []cvMessage
	for k, s := range d.train {
		if !keep(s.fold) {
			continue
		}
		m := cvMessage{spam: s.spam, tokens: d.toks[k], counts: make([]classifier.Counts, len(d.toks[k]))}
		own := d.folds[s.fold]
		var other map[string]shCounts
		tot := classifier.Totals{Spam: d.allTot.Spam - d.foldTot[s.fold].Spam, Ham: d.allTot.Ham - d.foldTot[s.fold].Ham}
		if excl >= 0 && excl != s.fold {
			other = d.folds[excl]
			tot.Spam -= d.foldTot[excl].Spam
			tot.Ham -= d.foldTot[excl].Ham
		}
		for i, t := range d.toks[k] {
			a, b, c := d.total[t], own[t], other[t]
			m.counts[i] = classifier.Counts{Spam: a.s - b.s - c.s, Ham: a.h - b.h - c.h}
		}
		m.totals = tot
		msgs = append(msgs, m)
	}
	if d.feats != nil {
		for i, n := range d.ngramScores(keep, excl) {
			msgs[i].ngram, msgs[i].hasNgram = n.logOdds, n.ok
		}
	}
	return msgs
}

// nestedCV judges ways of choosing parameters, not parameters: for each
// fold, a procedure chooses parameters by cross-validation on the other
// four folds alone, and the fold is then scored with them. What the
// procedures get on the folds they did not see is what to expect of them on
// new mail (and on the test set).
//
// With targets (from bogofilter on the outer folds), more procedures
// choose among the grid points that meet them (see targets.order). With
// a margin, the targets' procedure and the highest AUC's are judged again
// with cutoffs chosen that far inside (see targets.margin).
func nestedCV(train []sample, tg targets, orderSeed uint64, margin float64) error {
	d, err := newCVData(train, orderSeed)
	if err != nil {
		return err
	}
	type procedure struct {
		name   string
		choose func([]cvPoint) cvPoint
		tg     targets // the grid's cutoffs are chosen by these
	}
	procs := []procedure{
		{"fewest false positives, then cost, then AUC", func(r []cvPoint) cvPoint {
			return slices.MinFunc(r, targets{}.order)
		}, targets{}},
		{"highest AUC, then cutoffs by fewest false positives and cost", func(r []cvPoint) cvPoint {
			return slices.MaxFunc(r, func(a, b cvPoint) int { return cmp.Compare(a.auc, b.auc) })
		}, targets{}},
	}
	costFirst, fnFirst := tg, tg
	costFirst.fnFirst, fnFirst.fnFirst = false, true
	if tg.set {
		procs = append(procs, procedure{"the issue's targets relative to bogofilter, then cost", func(r []cvPoint) cvPoint {
			return slices.MinFunc(r, costFirst.order)
		}, costFirst}, procedure{"the issue's targets, then fewest false negatives, then cost", func(r []cvPoint) cvPoint {
			return slices.MinFunc(r, fnFirst.order)
		}, fnFirst})
		procs = append(procs, procedure{"highest AUC, then cutoffs by the issue's targets and fewest false negatives", func(r []cvPoint) cvPoint {
			return slices.MaxFunc(r, func(a, b cvPoint) int { return cmp.Compare(a.auc, b.auc) })
		}, fnFirst})
		procs = append(procs, procedure{"highest AUC among the points that meet the issue's targets, cutoffs by fewest false negatives", func(r []cvPoint) cvPoint {
			return slices.MinFunc(r, fnFirst.targetsThenAUC)
		}, fnFirst})
		if margin > 0 {
			mt := costFirst
			mt.margin = margin
			procs = append(procs, procedure{fmt.Sprintf("the issue's targets with cutoffs chosen %g in log-odds inside, then cost", margin), func(r []cvPoint) cvPoint {
				return slices.MinFunc(r, mt.order)
			}, mt})
		}
	}
	if margin > 0 {
		procs = append(procs, procedure{fmt.Sprintf("highest AUC, then cutoffs chosen %g in log-odds inside by fewest false positives and cost", margin), func(r []cvPoint) cvPoint {
			return slices.MaxFunc(r, func(a, b cvPoint) int { return cmp.Compare(a.auc, b.auc) })
		}, targets{margin: margin}})
	}
	type outcome struct {
		fp, fn, uns, n int
		aucs           []float64
		chosen         []string
	}
	outs := make([]outcome, len(procs))
	for o := range 5 {
		inner := d.messages(func(f int) bool { return f != o }, o)
		outer := d.messages(func(f int) bool { return f == o }, -1)
		var outerNames []string
		for _, s := range d.train {
			if s.fold == o {
				outerNames = append(outerNames, s.rel)
			}
		}
		grids := map[targets][]cvPoint{}
		for pi, pr := range procs {
			if grids[pr.tg] == nil {
				grids[pr.tg] = gridSearch(inner, pr.tg)
			}
			best := pr.choose(grids[pr.tg])
			pt := evaluateAt(best.p, outer)
			printMisfiled(fmt.Sprintf("procedure %d, fold %d", pi+1, o), outerNames, outer, best.p)
			out := &outs[pi]
			out.fp += pt.fp
			out.fn += pt.fn
			out.uns += pt.uns
			out.n += len(outer)
			out.aucs = append(out.aucs, pt.auc)
			out.chosen = append(out.chosen, fmt.Sprintf("%g/%g/%g/%g/%g", best.p.RobX, best.p.RobS, best.p.MinDev, best.p.SpamCutoff, best.p.HamCutoff))
		}
	}
	fmt.Printf("nested cross-validation on %d training messages (robx/robs/min_dev/spam_cutoff/ham_cutoff chosen per fold):\n", len(train))
	for pi, pr := range procs {
		out := outs[pi]
		mean := 0.0
		for _, a := range out.aucs {
			mean += a
		}
		mean /= float64(len(out.aucs))
		fmt.Printf("  %s: fp %d, fn %d, unsure %d (%.2f%%), mean (1-AUC)%% %.4f; chosen %v\n",
			pr.name, out.fp, out.fn, out.uns, 100*float64(out.uns)/float64(out.n), 100*(1-mean), out.chosen)
	}
	return nil
}

// printMisfiled lists the messages of msgs (named by names) that p
// misfiles: training messages, scored on folds their parameters were not
// chosen on.
func printMisfiled(what string, names []string, msgs []cvMessage, p classifier.Params) {
	for k, m := range msgs {
		r := m.score(p, false)
		if m.spam && r.Verdict == classifier.VerdictHam || !m.spam && r.Verdict == classifier.VerdictSpam {
			fmt.Printf("  misfiled (%s): %s spam=%v score=%.4f tokens %.2f\n", what, names[k], m.spam, r.Spamicity, logisticOf(r.TokenLogOdds))
		}
	}
}

func logisticOf(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// countFunc counts the points for which f is true.
func countFunc(pts []cvPoint, f func(cvPoint) bool) int {
	n := 0
	for _, p := range pts {
		if f(p) {
			n++
		}
	}
	return n
}

// gridSearch evaluates every point of the grid on msgs.
func gridSearch(msgs []cvMessage, tg targets) []cvPoint {
	var pts []classifier.Params
	for _, x := range gridRobX {
		for _, s := range gridRobS {
			for _, d := range gridMinDev {
				p := defaultsFor()
				p.RobX, p.RobS, p.MinDev = x, s, d
				pts = append(pts, p)
			}
		}
	}
	results := make([]cvPoint, len(pts))
	parallel(len(pts), runtime.GOMAXPROCS(0), func(i int) error {
		results[i] = evaluate(pts[i], msgs, tg)
		results[i].scores = nil
		return nil
	})
	return results
}

// evaluateAt scores msgs with p, cutoffs included.
func evaluateAt(p classifier.Params, msgs []cvMessage) cvPoint {
	pt := cvPoint{p: p, nTotal: len(msgs)}
	res := make([]scored, len(msgs))
	for k, m := range msgs {
		r := m.score(p, false)
		res[k] = scored{spam: m.spam, score: r.Spamicity, rank: r.LogOdds}
		switch {
		case m.spam:
			pt.spam++
			if r.Verdict == classifier.VerdictHam {
				pt.fn++
			}
		case r.Verdict == classifier.VerdictSpam:
			pt.fp++
		}
		if r.Verdict == classifier.VerdictUnsure {
			pt.uns++
		}
	}
	pt.cost = costFN*pt.fn + costUnsure*pt.uns
	pt.auc = auc(res, func(s scored) float64 { return s.rank })
	return pt
}

// evaluate scores every message with p's robx, robs and min_dev, and picks
// the cutoffs of the grid that are best for them (see targets.order).
func evaluate(p classifier.Params, msgs []cvMessage, tg targets) cvPoint {
	res := make([]scored, len(msgs))
	nSpam := 0
	for k, m := range msgs {
		r := m.score(p, false)
		res[k] = scored{spam: m.spam, score: r.Spamicity, rank: r.LogOdds}
		if m.spam {
			nSpam++
		}
	}
	best := chooseCutoffs(p, res, nSpam, tg)
	best.auc = auc(res, func(s scored) float64 { return s.rank })
	best.scores = res
	return best
}

// printDiag lists the training messages that cross-validation misfiled or
// left unsure with the chosen parameters, to look at when working on the
// tokenizer, and the ham that ranks highest and the spam that ranks lowest.
// Only training messages: the test set is never looked at.
func printDiag(train []sample, msgs []cvMessage, p classifier.Params) {
	type item struct {
		k int
		r classifier.Result
	}
	var items []item
	for k, m := range msgs {
		r := m.score(p, true)
		items = append(items, item{k, r})
	}
	show := func(it item) {
		m := msgs[it.k]
		var clues []string
		for _, c := range it.r.Clues[:min(len(it.r.Clues), 12)] {
			clues = append(clues, fmt.Sprintf("%s(%d/%d)", c.Token, c.Spam, c.Ham))
		}
		fmt.Printf("diag %s spam=%v score=%.4f logodds=%.1f used=%d/%d %v\n", train[it.k].rel, m.spam,
			it.r.Spamicity, it.r.LogOdds, it.r.Used, it.r.Tokens, clues)
	}
	for _, it := range items {
		m := msgs[it.k]
		if it.r.Verdict == classifier.VerdictUnsure || m.spam && it.r.Verdict == classifier.VerdictHam ||
			!m.spam && it.r.Verdict == classifier.VerdictSpam {
			show(it)
		}
	}
	// Each message's share of the misordered (spam, ham) pairs that make
	// up 1-AUC: for a ham, the spam ranked at or below it; for a spam,
	// the ham ranked at or above it.
	slices.SortFunc(items, func(a, b item) int { return cmp.Compare(b.r.LogOdds, a.r.LogOdds) })
	type share struct {
		it    item
		pairs float64
	}
	var shares []share
	for _, it := range items {
		pairs := 0.0
		for _, o := range items {
			if msgs[o.k].spam == msgs[it.k].spam {
				continue
			}
			ham, spam := it, o
			if msgs[it.k].spam {
				ham, spam = o, it
			}
			switch {
			case ham.r.LogOdds > spam.r.LogOdds:
				pairs++
			case ham.r.LogOdds == spam.r.LogOdds:
				pairs += 0.5
			}
		}
		if pairs > 0 {
			shares = append(shares, share{it, pairs})
		}
	}
	slices.SortFunc(shares, func(a, b share) int { return cmp.Compare(b.pairs, a.pairs) })
	total := 0.0
	for _, s := range shares {
		total += s.pairs
	}
	fmt.Printf("diag: %d messages in misordered pairs (%.0f pairs counted from both sides); the largest shares:\n", len(shares), total)
	for _, s := range shares[:min(len(shares), 25)] {
		fmt.Printf("%6.0f ", s.pairs)
		show(s.it)
	}
}

// cvBogofilter runs bogofilter through the same 5-fold cross-validation on
// the training set: for each fold, a fresh word list learned from the other
// four folds scores the fold with bogofilter's default parameters. It puts
// the cross-validation figures of sluice's parameters next to what
// bogofilter does on the same folds, as a second comparison that does not
// depend on the one test split.
func cvBogofilter(train []sample) (targets, error) {
	dir, err := os.MkdirTemp("", "sluice-accuracy-cv-")
	if err != nil {
		return targets{}, err
	}
	defer os.RemoveAll(dir)
	var all []scored
	for o := range 5 {
		var in, out []sample
		for _, s := range train {
			if s.fold == o {
				out = append(out, s)
			} else {
				in = append(in, s)
			}
		}
		fold := filepath.Join(dir, strconv.Itoa(o))
		if _, err := trainBogofilter(fold, in); err != nil {
			return targets{}, err
		}
		res, _, err := scoreBogofilter(fold, out)
		if err != nil {
			return targets{}, err
		}
		all = append(all, res...)
	}
	var r report
	r.summarise(all)
	fmt.Printf("bogofilter, same folds, its defaults: fp %d, fn %d, unsure %d (%.2f%%), (1-AUC)%% %.4f\n",
		r.fp, r.fn, r.unsure, 100*float64(r.unsure)/float64(len(all)), 100*(1-r.auc))
	n := float64(len(all))
	return targets{set: true, fnRate: float64(r.fn) / n, unsRt: float64(r.unsure) / 2 / n}, nil
}

// chooseCutoffs returns the point of the grid's cutoffs that is best for
// the scores res of parameters p (see targets.order), without its AUC.
func chooseCutoffs(p classifier.Params, res []scored, nSpam int, tg targets) cvPoint {
	best := cvPoint{fp: len(res) + 1}
	for _, sc := range gridSpamCut {
		for _, hc := range gridHamCut {
			pt := cvPoint{p: p, spam: nSpam, nTotal: len(res)}
			pt.p.SpamCutoff, pt.p.HamCutoff = sc, hc
			// With a margin, the misfiled are counted by log-odds
			// against cutoffs moved inwards (see targets.margin).
			spamAt, hamAt := logit(sc)-tg.margin, logit(hc)+tg.margin
			for _, r := range res {
				if r.score > hc && r.score < sc {
					pt.uns++
				}
				var fp, fn bool
				if tg.margin == 0 {
					fp, fn = r.score >= sc, r.score <= hc
				} else {
					fp, fn = r.rank >= spamAt, r.rank <= hamAt
				}
				switch {
				case fp && !r.spam:
					pt.fp++
				case fn && r.spam:
					pt.fn++
				}
			}
			pt.cost = costFN*pt.fn + costUnsure*pt.uns
			if tg.order(pt, best) < 0 {
				best = pt
			}
		}
	}
	return best
}

// logit is the log-odds of probability p.
func logit(p float64) float64 { return math.Log(p / (1 - p)) }
