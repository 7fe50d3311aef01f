package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
)

// writeHook calls hook at the first write, then keeps what is written.
type writeHook struct {
	hook func()
	buf  bytes.Buffer
}

func (w *writeHook) Write(p []byte) (int, error) {
	if w.hook != nil {
		w.hook()
		w.hook = nil
	}
	return w.buf.Write(p)
}

// A dump whose output is read slowly (a pager, "sluice db dump | less")
// holds no writer out. It read the whole store in one read transaction,
// and a writer (sluice train, the daemon's auto-learning) that came while
// the output was stalled waited for the dump and failed with "store
// busy"; meanwhile the writer held the store's turnstile, so the daemon
// classified nothing either. Here the writer comes while the dump's
// output is stalled, midway through the store, and must get in.
func TestDBDumpHoldsNoWriterOut(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "bayes.db")
	st, err := classifier.OpenBolt(db, classifier.BoltOptions{NoSync: true, LockTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const n = 50_000
	b := classifier.Batch{Totals: classifier.Totals{Spam: 1}}
	for i := range n {
		b.Records = append(b.Records, classifier.Record{Token: fmt.Sprintf("tok%06d", i), Counts: classifier.Counts{Spam: 1, LastSeen: 20240101}})
	}
	if err := st.Add(ctx, b); err != nil {
		t.Fatal(err)
	}

	var writeErr error
	wrote := false
	out := &writeHook{hook: func() {
		// The dump's output is stalled here, after its first few
		// kilobytes: a writer comes.
		writeErr = st.Add(ctx, classifier.Batch{Records: []classifier.Record{{Token: "zzz-new", Counts: classifier.Counts{Ham: 1, LastSeen: 20240101}}}})
		wrote = true
	}}
	root := newRootCmd(testRegistry())
	var errb bytes.Buffer
	root.SetOut(out)
	root.SetErr(&errb)
	root.SetIn(strings.NewReader(""))
	if err := run(root, []string{"db", "dump", "--db", db}); err != nil {
		t.Fatalf("dump: %v\n%s", err, errb.String())
	}
	if !wrote {
		t.Fatal("the dump wrote nothing")
	}
	if writeErr != nil {
		t.Errorf("a write while the dump's output was stalled: %v", writeErr)
	}
	lines := strings.Split(strings.TrimSuffix(out.buf.String(), "\n"), "\n")
	if len(lines) < n || lines[0] != "tok000000\t1\t0\t20240101" || lines[n-1] != "tok049999\t1\t0\t20240101" {
		t.Errorf("dump of %d lines, first %q, want %d tokens in order", len(lines), lines[0], n)
	}
	for i, l := range lines[:n] {
		if want := fmt.Sprintf("tok%06d\t", i); !strings.HasPrefix(l, want) {
			t.Fatalf("line %d: %q, want %s...", i+1, l, want)
		}
	}
}
