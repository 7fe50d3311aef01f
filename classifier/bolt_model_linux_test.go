package classifier_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
)

// Learning a message writes its tokens, digest and totals, not the n-gram
// model stored beside them: the model is about 4 MB, and a store that
// rewrote it at every commit would write 4 MB per auto-learned message
// and need 4 MB of free disk to learn anything. With 1 MB free, well
// above what a message's tokens take, messages are learned one by one,
// and the model reads back as it was.
func TestLearnDoesNotRewriteModel(t *testing.T) {
	if childOpen() {
		return
	}
	ctx := context.Background()
	dir := smallTmpfs(t, "16m")
	st, err := classifier.OpenBolt(filepath.Join(dir, "bayes.db"), classifier.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := classifier.New(st, classifier.Params{})
	message := func(n int) []byte {
		return fmt.Appendf(nil, "From: a%d@example.org\nSubject: offer %d\n\ncheap pills casino bonus %d winner\n", n, n, n)
	}
	if _, err := c.Train(ctx, strings.NewReader(string(message(0))), classifier.Spam); err != nil {
		t.Fatal(err)
	}
	model := strings.Repeat("model bytes ", 4<<20/12)
	if _, err := st.SetModel(ctx, 1, model, "id-1"); err != nil {
		t.Fatal(err)
	}

	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := filler.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	fi, err := filler.Stat()
	if err != nil {
		t.Fatal(err)
	}
	filler.Close()
	if err := os.Truncate(filler.Name(), fi.Size()-1<<20); err != nil {
		t.Fatal(err)
	}

	for n := 1; n <= 20; n++ {
		class := classifier.Spam
		if n%2 == 0 {
			class = classifier.Ham
		}
		if out, err := c.Train(ctx, strings.NewReader(string(message(n))), class); err != nil || out != classifier.Learned {
			t.Fatalf("message %d, 1 MB free: %v, %v", n, out, err)
		}
	}
	if got, err := st.Meta(ctx, classifier.MetaModel); err != nil || got != model {
		t.Errorf("model after learning: %d bytes, %v; want the %d written", len(got), err, len(model))
	}
	if id, err := st.Meta(ctx, classifier.MetaModelID); err != nil || id != "id-1" {
		t.Errorf("model id after learning: %q, %v", id, err)
	}
}
