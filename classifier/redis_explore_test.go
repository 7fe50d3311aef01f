package classifier_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/classifier/redistest"
)

func TestRedisExploreLog(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	st := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "x"})
	defer st.Close()
	obs := &timingObserver{t: t}
	st2 := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "x", Observer: obs})
	defer st2.Close()
	st.Learn(ctx, []classifier.LearnOp{{Class: classifier.Spam, Tokens: []string{"a"}}})
	st2.Lookup(ctx, []string{"a"})
	for i := 0; i < 60; i++ {
		op := classifier.LearnOp{Class: classifier.Spam, Date: 20240101}
		op.Digest[0], op.Digest[1] = byte(i), 1
		for j := range 20000 {
			op.Tokens = append(op.Tokens, fmt.Sprintf("w%02d%06d", i, j))
		}
		if _, err := st.Learn(ctx, []classifier.LearnOp{op}); err != nil {
			t.Fatal(err)
		}
	}
	mem := srv.Client(t).MemoryUsage(ctx, "{x}:log").Val()
	t.Logf("log memory after 60: %d", mem)
	start := time.Now()
	_, _, err := st2.Lookup(ctx, []string{"a"})
	t.Logf("lookup 60 behind: %v %v", time.Since(start), err)
}

type timingObserver struct{ t *testing.T }

func (o *timingObserver) RedisRoundTrip(op string, took time.Duration, err error) {
	o.t.Logf("round trip %s %v %v", op, took, err)
}
