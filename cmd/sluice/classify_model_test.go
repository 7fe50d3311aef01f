package main

import (
	"context"
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
)

// damageModel replaces the n-gram model of the bbolt store at db with one
// whose last weight is no number, as a bad disk block or a foreign write
// leaves it: the classifier refuses such a model whole.
func damageModel(t *testing.T, db string) {
	t.Helper()
	ctx := context.Background()
	st, err := classifier.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	blob, err := st.Meta(ctx, classifier.MetaModel)
	if err != nil || blob == "" {
		t.Fatalf("model: %d bytes, %v", len(blob), err)
	}
	bad := []byte(blob)
	binary.LittleEndian.PutUint32(bad[len(bad)-4:], math.Float32bits(float32(math.Inf(1))))
	// A generation past any fit's, so that the write is taken.
	if ok, err := st.SetModel(ctx, math.MaxUint64, string(bad), "damaged"); err != nil || !ok {
		t.Fatalf("set model: %v, %v", ok, err)
	}
}

// A model that the store holds but that cannot be used leaves the
// verdicts to the token counts alone, as in the daemon, which logs why.
// classify says so on standard error too: an admin comparing its verdict
// with the one in a message's header must not be left to guess why they
// differ. The exit status stays the verdict, as with a half-imported
// store.
func TestClassifyWarnsOfUnusableModel(t *testing.T) {
	db := trainedDB(t)
	msg := fixture("check", "spam.eml")
	whole := runCLI(t, "", "classify", "--db", db, "--explain", msg)
	if whole.code != statusSpam || whole.stderr != "" || !strings.Contains(whole.stdout, "ngram alone") {
		t.Fatalf("classify on a sound store: %+v", whole)
	}
	damageModel(t, db)
	for _, format := range []string{"text", "tsv", "json"} {
		r := runCLI(t, "", "classify", "--db", db, "--format", format, msg)
		if r.code > statusUnsure {
			t.Errorf("%s: exit status %d, want the verdict\n%+v", format, r.code, r)
		}
		for _, want := range []string{"sluice classify: warning:", db, "n-gram model", "token counts alone"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%s: stderr %q does not say %q", format, r.stderr, want)
			}
		}
	}
}
