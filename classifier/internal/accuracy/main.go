// Command accuracy measures the classifier on the SpamAssassin public corpus
// and, in the same run, bogofilter on the same split, and prints both side
// by side.
//
// The split is fixed: a message is in the test set iff the SHA-1 of its path
// relative to the corpus data directory (e.g. "spam-1/00001.<md5>.txt"),
// read as a 160-bit number, is 0 modulo 5. The rest is the training set.
// Parameters are only ever chosen on the training set: with -cv, a 5-fold
// cross-validation inside it searches robx, robs and min_dev and picks the
// cutoffs; the test set is scored once, with the chosen (or given)
// parameters.
//
// Usage:
//
//	go run ./classifier/internal/accuracy [-data DIR] [-cv] [-bogofilter=false]
//
// Without -data, testdata/corpus/fetch-spamassassin.sh fetches the corpus
// into testdata/cache/.
package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-mail/sluice/classifier"
)

// groups of the corpus and whether they are spam.
var groups = []struct {
	name string
	spam bool
}{
	{"easy-ham-1", false},
	{"easy-ham-2", false},
	{"hard-ham-1", false},
	{"spam-1", true},
	{"spam-2", true},
}

type sample struct {
	rel  string // path relative to the data directory
	path string
	spam bool
	test bool
	fold int // cross-validation fold inside the training set
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "accuracy:", err)
		os.Exit(1)
	}
}

func run() error {
	data := flag.String("data", "", "corpus data directory (default: fetch into testdata/cache)")
	cv := flag.Bool("cv", false, "choose parameters by 5-fold cross-validation on the training set")
	diag := flag.Bool("diag", false, "with -cv, list training messages misfiled in cross-validation")
	bogo := flag.Bool("bogofilter", true, "also run bogofilter on the same split")
	robx := flag.Float64("robx", 0, "robx (0: default)")
	robs := flag.Float64("robs", 0, "robs (0: default)")
	minDev := flag.Float64("min-dev", 0, "min_dev (0: default)")
	spamCut := flag.Float64("spam-cutoff", 0, "spam cutoff (0: default)")
	hamCut := flag.Float64("ham-cutoff", 0, "ham cutoff (0: default)")
	workers := flag.Int("workers", runtime.GOMAXPROCS(0), "parallel scoring workers")
	flag.Parse()

	if *data == "" {
		d, err := fetchCorpus()
		if err != nil {
			return err
		}
		*data = d
	}
	samples, err := loadSplit(*data)
	if err != nil {
		return err
	}
	var train, test []sample
	for _, s := range samples {
		if s.test {
			test = append(test, s)
		} else {
			train = append(train, s)
		}
	}
	fmt.Printf("corpus %s: %d messages, %d training (%d spam), %d test (%d spam)\n",
		*data, len(samples), len(train), countSpam(train), len(test), countSpam(test))

	p := classifier.DefaultParams()
	p.MinHam, p.MinSpam = -1, -1
	if *cv {
		p, err = crossValidate(train, *diag)
		if err != nil {
			return err
		}
	}
	setIf(&p.RobX, *robx)
	setIf(&p.RobS, *robs)
	setIf(&p.MinDev, *minDev)
	setIf(&p.SpamCutoff, *spamCut)
	setIf(&p.HamCutoff, *hamCut)
	fmt.Printf("parameters: robx=%g robs=%g min_dev=%g spam_cutoff=%g ham_cutoff=%g\n",
		p.RobX, p.RobS, p.MinDev, p.SpamCutoff, p.HamCutoff)

	ours, err := runSluice(train, test, p, *workers)
	if err != nil {
		return err
	}
	var bog *report
	if *bogo {
		bog, err = runBogofilter(train, test)
		if err != nil {
			return err
		}
	}
	printReports(ours, bog)
	return nil
}

func setIf(dst *float64, v float64) {
	if v != 0 {
		*dst = v
	}
}

func countSpam(ss []sample) int {
	n := 0
	for _, s := range ss {
		if s.spam {
			n++
		}
	}
	return n
}

// fetchCorpus runs the fetch script, found relative to the module root.
func fetchCorpus() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	out, err := exec.Command("bash", filepath.Join(root, "testdata/corpus/fetch-spamassassin.sh")).Output()
	if err != nil {
		return "", fmt.Errorf("fetch corpus: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for range 20 {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("go.mod not found above the working directory")
}

// loadSplit lists the corpus and assigns each message to the test or the
// training set, and training messages to a cross-validation fold.
func loadSplit(data string) ([]sample, error) {
	var out []sample
	five := big.NewInt(5)
	for _, g := range groups {
		names, err := filepath.Glob(filepath.Join(data, g.name, "*.txt"))
		if err != nil {
			return nil, err
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("no messages in %s/%s", data, g.name)
		}
		for _, name := range names {
			rel := g.name + "/" + filepath.Base(name)
			sum := sha1.Sum([]byte(rel))
			v := new(big.Int).SetBytes(sum[:])
			q, r := new(big.Int).QuoRem(v, five, new(big.Int))
			fold := new(big.Int).Mod(q, five)
			out = append(out, sample{
				rel:  rel,
				path: name,
				spam: g.spam,
				test: r.Sign() == 0,
				fold: int(fold.Int64()),
			})
		}
	}
	return out, nil
}

// report is the outcome of one classifier on the test set.
type report struct {
	name               string
	auc                float64
	fp, fn, unsure     int
	ham, spam          int
	trainRate, rate    float64 // messages per second
	trainSecs, scoreSe float64
}

// scored is one test message's score.
type scored struct {
	spam    bool
	score   float64
	verdict classifier.Verdict
}

func summarise(name string, res []scored) *report {
	r := &report{name: name}
	for _, s := range res {
		if s.spam {
			r.spam++
			if s.verdict == classifier.VerdictHam {
				r.fn++
			}
		} else {
			r.ham++
			if s.verdict == classifier.VerdictSpam {
				r.fp++
			}
		}
		if s.verdict == classifier.VerdictUnsure {
			r.unsure++
		}
	}
	r.auc = auc(res)
	return r
}

// auc is the area under the ROC curve: the probability that a random spam
// scores above a random ham, ties counting half (Mann-Whitney U).
func auc(res []scored) float64 {
	sorted := slices.Clone(res)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].score < sorted[j].score })
	var rankSum float64
	nSpam, nHam := 0, 0
	for i := 0; i < len(sorted); {
		j := i
		for j < len(sorted) && sorted[j].score == sorted[i].score {
			j++
		}
		avg := float64(i+1+j) / 2 // average 1-based rank of the tie group
		for k := i; k < j; k++ {
			if sorted[k].spam {
				rankSum += avg
				nSpam++
			} else {
				nHam++
			}
		}
		i = j
	}
	if nSpam == 0 || nHam == 0 {
		return 0
	}
	u := rankSum - float64(nSpam*(nSpam+1))/2
	return u / float64(nSpam*nHam)
}

// runSluice trains a fresh bbolt store on the training set and scores the
// test set, timing both with file reads included, as bogofilter's are.
func runSluice(train, test []sample, p classifier.Params, workers int) (*report, error) {
	dir, err := os.MkdirTemp("", "sluice-accuracy-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	store, err := classifier.OpenBolt(filepath.Join(dir, "db"), classifier.BoltOptions{})
	if err != nil {
		return nil, err
	}
	defer store.Close()
	c := classifier.New(store, p)
	ctx := context.Background()

	start := time.Now()
	const batch = 500
	for i := 0; i < len(train); i += batch {
		chunk := train[i:min(i+batch, len(train))]
		ops := make([]classifier.LearnOp, len(chunk))
		err := parallel(len(chunk), workers, func(k int) error {
			raw, err := os.ReadFile(chunk[k].path)
			if err != nil {
				return err
			}
			class := classifier.Ham
			if chunk[k].spam {
				class = classifier.Spam
			}
			ops[k], err = c.Prepare(bytes.NewReader(raw), class, false)
			return err
		})
		if err != nil {
			return nil, err
		}
		if _, err := c.Learn(ctx, ops); err != nil {
			return nil, err
		}
	}
	trainSecs := time.Since(start).Seconds()

	res := make([]scored, len(test))
	start = time.Now()
	err = parallel(len(test), workers, func(k int) error {
		raw, err := os.ReadFile(test[k].path)
		if err != nil {
			return err
		}
		r, err := c.ClassifyBytes(ctx, raw, false)
		if err != nil {
			return fmt.Errorf("%s: %w", test[k].rel, err)
		}
		res[k] = scored{spam: test[k].spam, score: r.Spamicity, verdict: r.Verdict}
		return nil
	})
	if err != nil {
		return nil, err
	}
	scoreSecs := time.Since(start).Seconds()
	rep := summarise(fmt.Sprintf("sluice (%d workers)", workers), res)
	rep.trainSecs, rep.scoreSe = trainSecs, scoreSecs
	rep.trainRate = float64(len(train)) / trainSecs
	rep.rate = float64(len(test)) / scoreSecs
	return rep, nil
}

// parallel runs fn(0..n-1) on workers goroutines and returns the first
// error.
func parallel(n, workers int, fn func(int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w; k < n; k += workers {
				if err := fn(k); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runBogofilter trains bogofilter in bulk mode (-B) on the training set and
// scores the test set in bulk mode (-b, names on stdin), with its default
// parameters.
func runBogofilter(train, test []sample) (*report, error) {
	if _, err := exec.LookPath("bogofilter"); err != nil {
		root, rerr := moduleRoot()
		if rerr != nil {
			return nil, rerr
		}
		cmd := exec.Command("bash", filepath.Join(root, "testdata/install-deps.sh"), "bogofilter")
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("install bogofilter: %w", err)
		}
	}
	dir, err := os.MkdirTemp("", "bogofilter-accuracy-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var spamFiles, hamFiles []string
	for _, s := range train {
		if s.spam {
			spamFiles = append(spamFiles, s.path)
		} else {
			hamFiles = append(hamFiles, s.path)
		}
	}
	start := time.Now()
	for _, reg := range []struct {
		flag  string
		files []string
	}{{"-s", spamFiles}, {"-n", hamFiles}} {
		// Chunks keep the argument list under the system limit.
		for i := 0; i < len(reg.files); i += 1000 {
			args := append([]string{"-d", dir, reg.flag, "-B"}, reg.files[i:min(i+1000, len(reg.files))]...)
			if out, err := exec.Command("bogofilter", args...).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("bogofilter %s: %w: %s", reg.flag, err, out)
			}
		}
	}
	trainSecs := time.Since(start).Seconds()

	var list strings.Builder
	byPath := map[string]sample{}
	for _, s := range test {
		list.WriteString(s.path + "\n")
		byPath[s.path] = s
	}
	start = time.Now()
	cmd := exec.Command("bogofilter", "-d", dir, "-b", "-T")
	cmd.Stdin = strings.NewReader(list.String())
	out, err := cmd.Output()
	// bogofilter's exit status is the verdict of the last message.
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() <= 2) {
		return nil, fmt.Errorf("bogofilter -b: %w", err)
	}
	scoreSecs := time.Since(start).Seconds()
	var res []scored
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("bogofilter output %q", line)
		}
		s, ok := byPath[f[0]]
		if !ok {
			return nil, fmt.Errorf("bogofilter output for unknown path %q", f[0])
		}
		score, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			return nil, fmt.Errorf("bogofilter output %q: %w", line, err)
		}
		v := classifier.VerdictUnsure
		switch f[1] {
		case "S":
			v = classifier.VerdictSpam
		case "H":
			v = classifier.VerdictHam
		}
		res = append(res, scored{spam: s.spam, score: score, verdict: v})
	}
	if len(res) != len(test) {
		return nil, fmt.Errorf("bogofilter scored %d of %d messages", len(res), len(test))
	}
	rep := summarise("bogofilter -b", res)
	rep.trainSecs, rep.scoreSe = trainSecs, scoreSecs
	rep.trainRate = float64(len(train)) / trainSecs
	rep.rate = float64(len(test)) / scoreSecs
	return rep, nil
}

func printReports(reps ...*report) {
	var rs []*report
	for _, r := range reps {
		if r != nil {
			rs = append(rs, r)
		}
	}
	row := func(label string, f func(r *report) string) {
		fmt.Printf("%-22s", label)
		for _, r := range rs {
			fmt.Printf(" %22s", f(r))
		}
		fmt.Println()
	}
	row("", func(r *report) string { return r.name })
	row("ROC AUC", func(r *report) string { return fmt.Sprintf("%.6f", r.auc) })
	row("(1-AUC)%", func(r *report) string { return fmt.Sprintf("%.4f", 100*(1-r.auc)) })
	row("false positives", func(r *report) string {
		return fmt.Sprintf("%d (%.2f%%)", r.fp, 100*float64(r.fp)/float64(r.ham))
	})
	row("false negatives", func(r *report) string {
		return fmt.Sprintf("%d (%.2f%%)", r.fn, 100*float64(r.fn)/float64(r.spam))
	})
	row("unsure", func(r *report) string {
		return fmt.Sprintf("%d (%.2f%%)", r.unsure, 100*float64(r.unsure)/float64(r.ham+r.spam))
	})
	row("training msgs/s", func(r *report) string { return fmt.Sprintf("%.0f", r.trainRate) })
	row("scoring msgs/s", func(r *report) string { return fmt.Sprintf("%.0f", r.rate) })
	slog.Debug("done")
}
