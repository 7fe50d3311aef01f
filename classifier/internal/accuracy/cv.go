package main

import (
	"fmt"
	"math"
	"os"
	"runtime"

	"github.com/sluice-mail/sluice/classifier"
)

// Costs used to pick cutoffs in cross-validation: a lost ham (false
// positive) is far worse than a spam let through, which is worse than an
// unsure verdict that a human or a later rule handles.
const (
	costFP     = 50
	costFN     = 5
	costUnsure = 1
)

// Candidate values searched by crossValidate.
var (
	gridRobX    = []float64{0.4, 0.45, 0.5, 0.52, 0.55, 0.6}
	gridRobS    = []float64{0.0178, 0.05, 0.1, 0.2, 0.5, 1}
	gridMinDev  = []float64{0.1, 0.2, 0.3, 0.375, 0.4, 0.45}
	gridSpamCut = []float64{0.9, 0.95, 0.99, 0.995, 0.999}
	gridHamCut  = []float64{0.05, 0.1, 0.2, 0.3, 0.45, 0.5}
)

// cvMessage is a training message with its out-of-fold token counts.
type cvMessage struct {
	spam   bool
	tokens []string
	counts []classifier.Counts
	totals classifier.Totals
}

// crossValidate picks parameters by 5-fold cross-validation on the training
// set only: every training message is scored against counts learned from
// the other four folds, for each point of a grid; the point with the lowest
// cost (then the highest AUC) wins.
func crossValidate(train []sample, diag bool) (classifier.Params, error) {
	tok := classifier.NewTokenizer(classifier.TokenizerOptions{})
	toks := make([][]string, len(train))
	err := parallel(len(train), runtime.GOMAXPROCS(0), func(k int) error {
		raw, err := os.ReadFile(train[k].path)
		if err != nil {
			return err
		}
		toks[k] = tok.TokenizeBytes(raw).Tokens
		return nil
	})
	if err != nil {
		return classifier.Params{}, err
	}

	// All-training counts, and per-fold counts to subtract.
	type sh struct{ s, h uint32 }
	total := map[string]sh{}
	var folds [5]map[string]sh
	var foldTot [5]classifier.Totals
	var allTot classifier.Totals
	for i := range folds {
		folds[i] = map[string]sh{}
	}
	for k, s := range train {
		f := folds[s.fold]
		for _, t := range toks[k] {
			a, b := total[t], f[t]
			if s.spam {
				a.s++
				b.s++
			} else {
				a.h++
				b.h++
			}
			total[t], f[t] = a, b
		}
		if s.spam {
			foldTot[s.fold].Spam++
			allTot.Spam++
		} else {
			foldTot[s.fold].Ham++
			allTot.Ham++
		}
	}
	msgs := make([]cvMessage, len(train))
	for k, s := range train {
		m := cvMessage{spam: s.spam, tokens: toks[k], counts: make([]classifier.Counts, len(toks[k]))}
		f := folds[s.fold]
		for i, t := range toks[k] {
			a, b := total[t], f[t]
			m.counts[i] = classifier.Counts{Spam: a.s - b.s, Ham: a.h - b.h}
		}
		m.totals = classifier.Totals{Spam: allTot.Spam - foldTot[s.fold].Spam, Ham: allTot.Ham - foldTot[s.fold].Ham}
		msgs[k] = m
	}

	type point struct {
		p    classifier.Params
		cost int
		auc  float64
		fp   int
		fn   int
		uns  int
	}
	var pts []classifier.Params
	for _, x := range gridRobX {
		for _, s := range gridRobS {
			for _, d := range gridMinDev {
				p := classifier.DefaultParams()
				p.RobX, p.RobS, p.MinDev = x, s, d
				p.MinHam, p.MinSpam = -1, -1
				pts = append(pts, p)
			}
		}
	}
	results := make([]point, len(pts))
	err = parallel(len(pts), runtime.GOMAXPROCS(0), func(i int) error {
		p := pts[i]
		res := make([]scored, len(msgs))
		for k, m := range msgs {
			r := classifier.Score(p, m.totals, m.tokens, m.counts, false)
			res[k] = scored{spam: m.spam, score: r.Spamicity}
		}
		best := point{cost: math.MaxInt}
		for _, sc := range gridSpamCut {
			for _, hc := range gridHamCut {
				fp, fn, uns := 0, 0, 0
				for _, r := range res {
					switch {
					case r.score >= sc:
						if !r.spam {
							fp++
						}
					case r.score <= hc:
						if r.spam {
							fn++
						}
					default:
						uns++
					}
				}
				cost := costFP*fp + costFN*fn + costUnsure*uns
				if cost < best.cost {
					q := p
					q.SpamCutoff, q.HamCutoff = sc, hc
					best = point{p: q, cost: cost, fp: fp, fn: fn, uns: uns}
				}
			}
		}
		best.auc = auc(res)
		results[i] = best
		return nil
	})
	if err != nil {
		return classifier.Params{}, err
	}
	best := results[0]
	for _, r := range results[1:] {
		if r.cost < best.cost || r.cost == best.cost && r.auc > best.auc {
			best = r
		}
	}
	fmt.Printf("cross-validation on %d training messages, %d grid points: best cost %d (fp %d, fn %d, unsure %d), (1-AUC)%% %.4f\n",
		len(msgs), len(pts), best.cost, best.fp, best.fn, best.uns, 100*(1-best.auc))
	if diag {
		printDiag(train, msgs, best.p)
	}
	return best.p, nil
}

// printDiag lists the training messages that cross-validation misfiled or
// left unsure with the chosen parameters, to look at when working on the
// tokenizer. Only training messages: the test set is never looked at.
func printDiag(train []sample, msgs []cvMessage, p classifier.Params) {
	for k, m := range msgs {
		r := classifier.Score(p, m.totals, m.tokens, m.counts, true)
		bad := r.Verdict == classifier.VerdictUnsure ||
			m.spam && r.Verdict == classifier.VerdictHam ||
			!m.spam && r.Verdict == classifier.VerdictSpam
		if !bad {
			continue
		}
		var clues []string
		for _, c := range r.Clues[:min(len(r.Clues), 12)] {
			clues = append(clues, fmt.Sprintf("%s(%d/%d)", c.Token, c.Spam, c.Ham))
		}
		fmt.Printf("diag %s spam=%v score=%.4f used=%d/%d %v\n", train[k].rel, m.spam, r.Spamicity, r.Used, r.Tokens, clues)
	}
}
