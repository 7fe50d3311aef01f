package classifier_test

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/classifier/redistest"
)

// An import into a Redis store whose reply to the script that marks the
// store (the import mark, set before the first write) is lost has
// written nothing of its input, and fails. It must not leave its mark
// behind: a trained store so marked refuses train, prune, export and
// every later import, and every daemon sharing it stops auto-learning,
// all for an import of which nothing is in the store.
func TestRedisImportLostMarkReplyLeavesNoMark(t *testing.T) {
	srv := redistest.Start(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := &replyDropper{ln: ln, target: srv.Addr}
	go p.serve()
	ctx := context.Background()
	export := "sluice-classifier-export 3\ndialect sluice\ntotals 1 0\nt cheap 1 0 20240101\nend 1 0 0\n"
	importInto := func(st classifier.Store) error {
		in, err := classifier.CheckImport(strings.NewReader(export))
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		_, err = in.Into(ctx, st)
		return err
	}

	// Another store of the same server: its import loads the scripts,
	// so that the reply dropped below is that of the mark itself, not
	// a NOSCRIPT refusal.
	other := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}})
	defer other.Close()
	if err := importInto(other); err != nil {
		t.Fatal(err)
	}

	st := openRedisStore(t, classifier.RedisOptions{Addrs: []string{ln.Addr().String()}})
	defer st.Close()
	op := classifier.LearnOp{Digest: classifier.Digest{1}, Class: classifier.Ham, Tokens: []string{"meeting"}, Date: 20240101}
	if _, err := st.Learn(ctx, []classifier.LearnOp{op}); err != nil {
		t.Fatal(err)
	}
	p.armed.Store(true)
	err = importInto(st)
	if p.drops.Load() != 1 {
		t.Fatalf("%d replies dropped, want 1", p.drops.Load())
	}
	if err == nil {
		t.Fatal("an import whose mark's reply was lost reported success")
	}
	t.Logf("import: %v", err)
	m, err := classifier.IncompleteImport(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if m.Began != "" {
		t.Errorf("after an import that wrote nothing, the store is marked as holding part of one begun %s (pid %d)", m.Began, m.PID)
	}
	op.Digest = classifier.Digest{2}
	if _, err := st.Learn(ctx, []classifier.LearnOp{op}); err != nil {
		t.Errorf("learn after the failed import: %v", err)
	}
	if err := importInto(st); err != nil {
		t.Errorf("the import run again: %v", err)
	}
	tot, c, err := st.Lookup(ctx, []string{"cheap", "meeting"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Began == "" && (tot != (classifier.Totals{Spam: 1, Ham: 2}) || c[0].Spam != 1 || c[1].Ham != 2) {
		t.Errorf("totals %+v, cheap %+v, meeting %+v; want 1 spam and 2 ham, cheap in 1 spam, meeting in 2 ham", tot, c[0], c[1])
	}
}
