package classifier

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/classifier/redistest"
)

// A store with more common tokens than the cache may hold is scanned once
// to find that out, not at every later load: only once it has fewer tokens
// in all, or the floor is lower, is it scanned again.
func TestRedisLoadTooBig(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	s, err := OpenRedis(RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "toobig", CacheTokens: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Four tokens in every message, and one more in each.
	var ops []LearnOp
	for i := range 6 {
		op := LearnOp{Class: Spam, Tokens: []string{"a", "b", "c", "d", fmt.Sprintf("once%d", i)}, Date: 20240101}
		op.Digest[0] = byte(i + 1)
		ops = append(ops, op)
	}
	if _, err := s.Learn(ctx, ops); err != nil {
		t.Fatal(err)
	}
	scans := func() int {
		for _, f := range strings.Split(srv.Info(t, "commandstats")["cmdstat_hscan"], ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				n, _ := strconv.Atoi(v)
				return n
			}
		}
		return 0
	}
	load := func(step string, floor uint64, wantScan bool) {
		t.Helper()
		before := scans()
		if err := s.load(ctx, floor); !errors.Is(err, errCacheTooSmall) {
			t.Errorf("%s: load: %v, want %v", step, err, errCacheTooSmall)
		}
		if scanned := scans() > before; scanned != wantScan {
			t.Errorf("%s: scanned the store: %v, want %v", step, scanned, wantScan)
		}
	}
	load("first", 4, true)
	load("again", 4, false)
	load("higher floor", 5, false)
	load("lower floor", 3, true)
	load("again at the lower floor", 3, false)
	if _, err := s.Prune(ctx, PruneOptions{MaxCount: 1}); err != nil {
		t.Fatal(err)
	}
	load("after a prune", 3, true)
}
