package classifier_test

import (
	"bytes"
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
)

// needBogofilter installs bogofilter through the project's installer. Under
// CI=true a missing bogofilter fails the test; elsewhere it skips.
func needBogofilter(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("bogofilter"); err == nil {
		return
	}
	out, err := exec.Command("bash", filepath.Join("..", "testdata", "install-deps.sh"), "bogofilter").CombinedOutput()
	if _, lerr := exec.LookPath("bogofilter"); err != nil || lerr != nil {
		msg := "bogofilter not available (install-deps.sh bogofilter: " + strings.TrimSpace(string(out)) + ")"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// TestImportBogoutil trains real bogofilter on the fixtures, dumps its word
// list with bogoutil -d, imports the dump, and checks that sluice then gives
// every fixture the verdict bogofilter gives it.
func TestImportBogoutil(t *testing.T) {
	needBogofilter(t)
	ctx := context.Background()
	fix := filepath.Join("..", "testdata", "classifier")
	spam, _ := filepath.Glob(filepath.Join(fix, "train", "spam", "*.eml"))
	ham, _ := filepath.Glob(filepath.Join(fix, "train", "ham", "*.eml"))
	check, _ := filepath.Glob(filepath.Join(fix, "check", "*.eml"))
	if len(spam) < 10 || len(ham) < 10 || len(check) < 5 {
		t.Fatalf("fixtures missing: %d spam, %d ham, %d check", len(spam), len(ham), len(check))
	}
	bdir := t.TempDir()
	run := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		out, err := cmd.Output()
		if ee, ok := err.(*exec.ExitError); ok && args[0] == "bogofilter" && ee.ExitCode() <= 2 {
			err = nil // exit status is the verdict
		}
		if err != nil {
			t.Fatalf("%s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	run(append([]string{"bogofilter", "-d", bdir, "-s", "-B"}, spam...)...)
	run(append([]string{"bogofilter", "-d", bdir, "-n", "-B"}, ham...)...)
	dump := run("bogoutil", "-d", filepath.Join(bdir, "wordlist.db"))

	all := append(append(append([]string{}, spam...), ham...), check...)
	verdicts := map[string]string{}
	scores := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSpace(string(run(append([]string{"bogofilter", "-d", bdir, "-T", "-B"}, all...)...))), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("bogofilter output %q", line)
		}
		verdicts[f[0]] = map[string]string{"S": "spam", "H": "ham", "U": "unsure"}[f[1]]
		scores[f[0]], _ = strconv.ParseFloat(f[2], 64)
	}

	store := openTestStore(t, filepath.Join(t.TempDir(), "db"))
	defer store.Close()
	st, err := classifier.ImportBogoutil(ctx, store, bytes.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	if st.Totals != (classifier.Totals{Spam: uint32(len(spam)), Ham: uint32(len(ham))}) || st.Tokens < 50 {
		t.Fatalf("import: %+v, want totals %d/%d and tokens", st, len(spam), len(ham))
	}
	c, err := classifier.NewForStore(ctx, store, classifier.BogofilterParams())
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := store.Meta(ctx, classifier.MetaDialect); d != string(classifier.DialectBogofilter) {
		t.Errorf("store dialect after bogoutil import: %q", d)
	}
	kinds := map[string]int{}
	maxDiff := 0.0
	for _, path := range all {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Classify(ctx, bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		want := verdicts[path]
		maxDiff = max(maxDiff, math.Abs(res.Spamicity-scores[path]))
		kinds[want]++
		if res.Verdict.String() != want {
			t.Errorf("%s: sluice %s (%.6f), bogofilter %s (%.6f)", filepath.Base(path), res.Verdict, res.Spamicity, want, scores[path])
		}
	}
	t.Logf("verdicts %v, largest spamicity difference to bogofilter %.6f", kinds, maxDiff)
	if kinds["spam"] == 0 || kinds["ham"] == 0 {
		t.Errorf("fixtures do not exercise both verdicts: %v", kinds)
	}
	// A sluice-dialect store refuses a bogofilter word list.
	other := openTestStore(t, filepath.Join(t.TempDir(), "db2"))
	defer other.Close()
	if _, err := other.Learn(ctx, []classifier.LearnOp{{Class: classifier.Ham, Tokens: []string{"x"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := classifier.ImportBogoutil(ctx, other, bytes.NewReader(dump)); err == nil {
		t.Error("bogoutil import into a store with sluice tokens: no error")
	}
}
