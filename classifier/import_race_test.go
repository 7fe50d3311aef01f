package classifier

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier/redistest"
)

// claimStore is a store whose import mark is set in one atomic step.
type claimStore interface {
	Store
	metaClaimer
}

// holdAdd holds an import's writes until the other import of a race has
// returned, or a while has passed: an import of a few lines would
// otherwise be whole, its mark gone, before the other one looks, and the
// other would rightly add to the store as to any.
type holdAdd struct {
	claimStore
	other <-chan struct{}
}

func (h holdAdd) Add(ctx context.Context, b Batch) error {
	select {
	case <-h.other:
	case <-time.After(2 * time.Second):
	}
	return h.claimStore.Add(ctx, b)
}

// raceImports starts two imports of text into one store, each through a
// handle of its own (as two processes have), at the same instant, and
// checks that exactly one wrote and the other refused, naming the import
// that runs. Both pass the early check for an import in progress when
// they start together; only the mark's check-and-set, one atomic step,
// tells them apart. The race is run many times: with the check and the
// set apart, both get through within a few rounds.
func raceImports(t *testing.T, rounds int, text string, bogoutil bool, open func(round int) claimStore) {
	t.Helper()
	ctx := context.Background()
	want := Totals{Spam: 3, Ham: 2}
	for round := range rounds {
		var (
			stores [2]claimStore
			inputs [2]*ImportInput
			errs   [2]error
			done   = [2]chan struct{}{make(chan struct{}), make(chan struct{})}
		)
		for i := range 2 {
			stores[i] = open(round)
			var err error
			if bogoutil {
				inputs[i], err = CheckBogoutil(strings.NewReader(text))
			} else {
				inputs[i], err = CheckImport(strings.NewReader(text))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() {
				defer close(done[i])
				<-start
				_, errs[i] = inputs[i].Into(ctx, holdAdd{stores[i], done[1-i]})
			})
		}
		close(start)
		wg.Wait()
		s, err := stores[0].Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m, err := IncompleteImport(ctx, stores[0])
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			inputs[i].Close()
			stores[i].Close()
		}
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("round %d: errors %v and %v, want exactly one import to refuse; the store counts %+v", round, errs[0], errs[1], s.Totals)
		}
		refusal := errs[0]
		if refusal == nil {
			refusal = errs[1]
		}
		if msg := refusal.Error(); !strings.Contains(msg, "has not finished (it is still running, as pid") || strings.Contains(msg, "line") {
			t.Errorf("round %d: refusal %q, want it to name the import that runs, and no line of the input", round, msg)
		}
		if s.Totals != want {
			t.Fatalf("round %d: the store counts %+v, want one import's %+v", round, s.Totals, want)
		}
		if m.Began != "" {
			t.Errorf("round %d: the store is left marked: %+v", round, m)
		}
	}
}

const (
	raceExport = "sluice-classifier-export 2\ndialect sluice\ntotals 3 2\nt a 1 0 20240101\nt b 0 1 20240101\nend 2 0\n"
	raceBogo   = ".MSG_COUNT 3 2 20240101\na 1 0 20240101\nb 0 1 20240101\n"
)

func TestImportsAtOnceBolt(t *testing.T) {
	for _, bogoutil := range []bool{false, true} {
		t.Run(fmt.Sprintf("bogoutil=%v", bogoutil), func(t *testing.T) {
			dir := t.TempDir()
			text := raceExport
			if bogoutil {
				text = raceBogo
			}
			raceImports(t, 50, text, bogoutil, func(round int) claimStore {
				st, err := OpenBolt(filepath.Join(dir, fmt.Sprintf("%d.db", round)), BoltOptions{NoSync: true})
				if err != nil {
					t.Fatal(err)
				}
				return st
			})
		})
	}
}

func TestImportsAtOnceRedis(t *testing.T) {
	srv := redistest.Start(t)
	for _, bogoutil := range []bool{false, true} {
		t.Run(fmt.Sprintf("bogoutil=%v", bogoutil), func(t *testing.T) {
			text := raceExport
			if bogoutil {
				text = raceBogo
			}
			raceImports(t, 50, text, bogoutil, func(round int) claimStore {
				st, err := OpenRedis(RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: fmt.Sprintf("race-%v-%d", bogoutil, round)})
				if err != nil {
					t.Fatal(err)
				}
				return st
			})
		})
	}
}

// claimMeta sets a value only where there is none, and otherwise returns
// the one there, in both stores.
func TestClaimMeta(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	bs, err := OpenBolt(filepath.Join(t.TempDir(), "db"), BoltOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := OpenRedis(RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "claim"})
	if err != nil {
		t.Fatal(err)
	}
	for name, st := range map[string]claimStore{"bolt": bs, "redis": rs} {
		if held, err := st.claimMeta(ctx, "k", "first"); err != nil || held != "" {
			t.Errorf("%s: first claim: %q, %v", name, held, err)
		}
		if held, err := st.claimMeta(ctx, "k", "second"); err != nil || held != "first" {
			t.Errorf("%s: second claim: %q, %v, want the first's value", name, held, err)
		}
		if v, err := st.Meta(ctx, "k"); err != nil || v != "first" {
			t.Errorf("%s: value %q, %v after two claims", name, v, err)
		}
		st.Close()
	}
}

// holdClaim holds an import before it marks the store, until release is
// closed, and says on arrived that it is there.
type holdClaim struct {
	claimStore
	digestFinder
	arrived chan<- struct{}
	release <-chan struct{}
}

func (h holdClaim) claimMeta(ctx context.Context, key, value string) (string, error) {
	close(h.arrived)
	<-h.release
	return h.claimStore.claimMeta(ctx, key, value)
}

// Two imports of one export begun at once both find the store without
// its messages when they begin. The look for messages the store learned
// already is made under the import's mark, before the first write: the
// import that marks the store second, once the first is whole, finds
// the first's messages and refuses, where a look made as it began would
// have let it count the export a second time.
func TestImportAfterImportBegunAtOnce(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	text := fmt.Sprintf("sluice-classifier-export 2\ndialect sluice\ntotals 1 0\nt a 1 0 20240101\nd %s spam\nend 1 1\n", MessageDigest([]byte("a")))
	type store interface {
		claimStore
		digestFinder
	}
	dir := t.TempDir()
	for name, open := range map[string]func() store{
		"bolt": func() store {
			st, err := OpenBolt(filepath.Join(dir, "db"), BoltOptions{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
		"redis": func() store {
			st, err := OpenRedis(RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "atonce"})
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
	} {
		t.Run(name, func(t *testing.T) {
			first, second := open(), open()
			defer first.Close()
			defer second.Close()
			var inputs [2]*ImportInput
			for i := range inputs {
				var err error
				if inputs[i], err = CheckImport(strings.NewReader(text)); err != nil {
					t.Fatal(err)
				}
				defer inputs[i].Close()
			}
			arrived, release := make(chan struct{}), make(chan struct{})
			var errSecond error
			done := make(chan struct{})
			go func() {
				defer close(done)
				_, errSecond = inputs[1].Into(ctx, holdClaim{second, second, arrived, release})
			}()
			<-arrived
			if _, err := inputs[0].Into(ctx, first); err != nil {
				t.Fatal(err)
			}
			close(release)
			<-done
			if !errors.As(errSecond, new(errAlreadyLearned)) {
				t.Errorf("second import: %v, want a refusal for messages learned already", errSecond)
			}
			s, err := first.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if s.Spam != 1 || s.Digests != 1 {
				t.Errorf("the store counts %+v, want one import's 1 spam and 1 digest", s)
			}
			if m, err := IncompleteImport(ctx, first); err != nil || m.Began != "" {
				t.Errorf("the store is left marked: %+v, %v", m, err)
			}
		})
	}
}
